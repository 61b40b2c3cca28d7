import fs from "node:fs";
import path from "node:path";
import { describe, expect, test } from "bun:test";
import { check_page_app_dir, page_app_files_required, resolve_page_app_dir } from "../../src/admin/routes/page_app.ts";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * Where serve finds the browser page without admin.app_dir. A compiled
 * binary's modules lie in its own /$bunfs, never in a project: module_dir
 * says so here, and exec_path stands for the binary.
 */
const compiled_module_dir = "/$bunfs/root/src/admin/routes";
const repo_root = path.join(import.meta.dir, "..", "..");

/** A device root: usr/local/bin/interlog and, unless `page` is false, usr/local/share/interlog/app with the page's files. */
function device_root(page = true): { root: string; exec_path: string; app: string } {
  const root = temp_dir("interlog-page-dir-");
  const exec_path = path.join(root, "usr/local/bin/interlog");
  fs.mkdirSync(path.dirname(exec_path), { recursive: true });
  fs.writeFileSync(exec_path, "");
  const app = path.join(root, "usr/local/share/interlog/app");
  if (page) {
    fs.mkdirSync(app, { recursive: true });
    for (const name of page_app_files_required) fs.writeFileSync(path.join(app, name), name);
  }
  return { root, exec_path, app };
}

describe("resolve_page_app_dir", () => {
  test("a compiled binary finds the page the firmware bundle installed beside it: /usr/local/bin -> /usr/local/share/interlog/app", () => {
    const { exec_path, app } = device_root();
    const cwd = temp_dir("interlog-cwd-");
    fs.mkdirSync(path.join(cwd, "dist/browser"), { recursive: true });
    // Before the working directory's dist/browser, even when that exists.
    expect(resolve_page_app_dir(undefined, cwd, exec_path, compiled_module_dir)).toBe(app);
    expect(() => check_page_app_dir(app)).not.toThrow();
  });

  test("without an installed page a compiled binary falls back to dist/browser of the working directory", () => {
    const { exec_path } = device_root(false);
    expect(resolve_page_app_dir(undefined, "/srv/interlog", exec_path, compiled_module_dir)).toBe("/srv/interlog/dist/browser");
  });

  test("admin.app_dir wins over the installed page; from the project source the project's dist/browser does", () => {
    const { exec_path } = device_root();
    expect(resolve_page_app_dir("web", "/srv/interlog", exec_path, compiled_module_dir)).toBe("/srv/interlog/web");
    expect(resolve_page_app_dir("/opt/page", "/srv/interlog", exec_path, compiled_module_dir)).toBe("/opt/page");
    expect(resolve_page_app_dir(undefined, "/srv/interlog", exec_path)).toBe(path.join(repo_root, "dist", "browser"));
  });

  test("an installed page missing a file is CONFIG_INVALID naming that directory and how the firmware installs it", () => {
    const { exec_path, app } = device_root();
    fs.rmSync(path.join(app, "sw.js"));
    const dir = resolve_page_app_dir(undefined, "/srv/interlog", exec_path, compiled_module_dir);
    expect(dir).toBe(app);
    let thrown: unknown;
    try {
      check_page_app_dir(dir);
    } catch (err) {
      thrown = err;
    }
    expect(is_interlog_error(thrown, "CONFIG_INVALID")).toBe(true);
    const message = (thrown as Error).message;
    expect(message).toContain(`${app} lacks sw.js`);
    expect(message).toContain("/usr/local/share/interlog/app");
    expect(message).toContain("npm run browser");
    expect(message).toContain("admin.app_dir");
  });
});
