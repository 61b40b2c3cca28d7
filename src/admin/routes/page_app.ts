import fs from "node:fs";
import path from "node:path";
import type { Context, Hono } from "hono";
import { InterlogError } from "../../lib/errors.ts";

/**
 * The browser replica page (issue 15) at /app/: the files scripts/browser.ts
 * builds, served as they are on disk (a rebuild is seen on the next load).
 * Static and holding no data of this replica, so it is served without the
 * admin token; the host guard still applies.
 */

/** What the page cannot load without; serve refuses to start when one is missing. */
export const page_app_files_required = ["index.html", "app.js", "ui.js", "sw.js"] as const;

/** What `npm run browser` writes, relative to the project root. */
export const page_app_dir_default = "dist/browser";

const content_types: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** A file name of the build's flat directory: no path, no dotfile. */
const file_name_pattern = "[A-Za-z0-9][A-Za-z0-9._-]*";

/**
 * Scripts only from this server; sockets to any broker (MQTT over
 * WebSocket); workers from this server (the service worker) and from
 * blob: (mqtt.js runs its keepalive timers in one, which a background tab
 * does not throttle); the page's own <style> by hash (style_hashes),
 * nothing inline else. Sent with every file: a service worker script runs under the
 * policy of its own response.
 */
export function page_app_csp(style_hashes: readonly string[] = []): string {
  const styles = ["'self'", ...style_hashes.map((h) => `'sha256-${h}'`)].join(" ");
  return `default-src 'self'; script-src 'self'; style-src ${styles}; connect-src 'self' ws: wss:; worker-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}

/** Base64 SHA-256 of each inline <style> block, as CSP names them. */
export function style_hashes_of(html: string): string[] {
  const hashes: string[] = [];
  for (const m of html.matchAll(/<style>([\s\S]*?)<\/style>/g)) {
    hashes.push(new Bun.CryptoHasher("sha256").update(m[1]).digest("base64"));
  }
  return hashes;
}

/** Where the firmware bundle's install.sh puts the page, relative to the directory of the binary (/usr/local/bin). */
export const page_app_dir_installed = "../share/interlog/app";

/**
 * Where the page's files are: admin.app_dir (relative to the working
 * directory), else dist/browser of the project this source lies in, else (a
 * compiled binary, whose sources are not on disk) the page installed beside
 * the binary (/usr/local/share/interlog/app for /usr/local/bin/interlog) when
 * that directory exists, else dist/browser of the working directory.
 * `module_dir` is where this module lies (in a compiled binary a path inside
 * its own /$bunfs, never a project); tests pass it with `exec_path`.
 */
export function resolve_page_app_dir(
  app_dir: string | undefined,
  cwd: string = process.cwd(),
  exec_path: string = process.execPath,
  module_dir: string = import.meta.dir,
): string {
  if (app_dir !== undefined) return path.resolve(cwd, app_dir);
  const project_root = path.resolve(module_dir, "..", "..", "..");
  if (fs.existsSync(path.join(project_root, "package.json"))) return path.join(project_root, page_app_dir_default);
  const installed = path.resolve(path.dirname(exec_path), page_app_dir_installed);
  if (fs.existsSync(installed)) return installed;
  return path.resolve(cwd, page_app_dir_default);
}

/** Throws CONFIG_INVALID naming what is missing and how to build it. */
export function check_page_app_dir(dir: string): void {
  const missing = page_app_files_required.filter((name) => !is_file(path.join(dir, name)));
  if (missing.length === 0) return;
  throw new InterlogError(
    "CONFIG_INVALID",
    `admin.app is on but the browser page is not built: ${dir} lacks ${missing.join(", ")}; run \`npm run browser\` in the project (it writes ${page_app_dir_default}), install a firmware bundle (its install.sh puts the page in /usr/local/share/interlog/app), or set admin.app_dir to the directory holding its files`,
    { dir, missing },
  );
}

/** GET /app -> /app/, /app/ -> index.html, /app/FILE -> the built file. Checks the files first (check_page_app_dir). */
export function mount_page_app_route(app: Hono, dir: string): void {
  check_page_app_dir(dir);
  // Relative, so the page also works behind a proxy that mounts the API under a prefix.
  app.get("/app", (c) => c.redirect("app/", 301));
  app.get("/app/", (c) => serve_file(c, dir, "index.html"));
  app.get(`/app/:file{${file_name_pattern}}`, (c) => serve_file(c, dir, c.req.param("file")));
}

async function serve_file(c: Context, dir: string, name: string): Promise<Response> {
  const type = content_types[path.extname(name)];
  const file = path.join(dir, name);
  const stat = type === undefined ? null : stat_file(file);
  if (type === undefined || stat === null) return c.notFound();
  // no-cache: the browser asks again every load, and the tag keeps that to a 304 when nothing changed.
  const etag = `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
  const headers: Record<string, string> = {
    "Content-Type": type,
    "Cache-Control": "no-cache",
    ETag: etag,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": page_app_csp(),
  };
  // Only what a 304 must carry: a cache merges its headers into the stored response, and a CSP here without the page's style hash would replace the one with it.
  if (c.req.header("if-none-match") === etag) return new Response(null, { status: 304, headers: { ETag: etag, "Cache-Control": "no-cache" } });
  if (name.endsWith(".html")) {
    const html = await Bun.file(file).text();
    headers["Content-Security-Policy"] = page_app_csp(style_hashes_of(html));
    return new Response(html, { headers });
  }
  return new Response(Bun.file(file), { headers });
}

function stat_file(file: string): fs.Stats | null {
  try {
    const stat = fs.statSync(file);
    return stat.isFile() ? stat : null;
  } catch {
    return null;
  }
}

function is_file(file: string): boolean {
  return stat_file(file) !== null;
}
