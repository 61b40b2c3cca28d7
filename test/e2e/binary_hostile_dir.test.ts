import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, test } from "bun:test";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { binary_builds, file_temp_dirs, run } from "./binary_fixture.ts";

/**
 * A device's working directory is not trusted: the binary is compiled with
 * .env and bunfig.toml autoloading off. The same hostile files are shown to
 * take effect on `bun src/cli.ts`, so the test would notice if they stopped
 * being ignored.
 */
const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let bin = "";
beforeAll(async () => {
  bin = await binaries.get();
}, 120_000);

const from_source = [process.execPath, path.join(import.meta.dir, "..", "..", "src", "cli.ts")];
const token_config = `name: hostile\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n  token_env: INTERLOG_ADMIN_TOKEN\n`;
const open_config = `name: hostile\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n`;

/** A directory with an .env that sets the admin token and a bunfig.toml that preloads code leaving a marker file. */
function hostile_dir(): { dir: string; marker: string } {
  const dir = temp_dir("interlog-hostile-");
  const marker = path.join(dir, "preload-ran");
  fs.writeFileSync(path.join(dir, ".env"), "INTERLOG_ADMIN_TOKEN=hostile-token\nNODE_ENV=hostile\n");
  fs.writeFileSync(path.join(dir, "bunfig.toml"), `preload = ["./hostile-preload.ts"]\n`);
  fs.writeFileSync(
    path.join(dir, "hostile-preload.ts"),
    `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\nconsole.error("HOSTILE PRELOAD RAN");\n`,
  );
  return { dir, marker };
}

describe("the compiled binary started in a directory with a hostile .env and bunfig.toml", () => {
  test("control: run from source, bun loads both (the files are really hostile)", async () => {
    const { dir, marker } = hostile_dir();
    const replica = await ServeProcess.start(write_config(dir, "interlog.yaml", token_config), { command: from_source, cwd: dir });
    try {
      expect(fs.existsSync(marker)).toBe(true);
      expect((await replica.fetch("/api/status")).status).toBe(401);
      expect((await replica.fetch("/api/status", { headers: { authorization: "Bearer hostile-token" } })).status).toBe(200);
    } finally {
      expect(await replica.stop()).toBe(0);
    }
  });

  test("ignores the .env: a token it sets is not set, so serve refuses the config and names the variable", async () => {
    const { dir, marker } = hostile_dir();
    const config = write_config(dir, "interlog.yaml", token_config);
    const out = await run([bin, "serve", "--config", config], { cwd: dir });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("CONFIG_INVALID");
    expect(out.stderr).toContain("INTERLOG_ADMIN_TOKEN is not set");
    expect(`${out.stdout}${out.stderr}`).not.toContain("HOSTILE");
    expect(fs.existsSync(marker)).toBe(false);
  });

  test("ignores the bunfig.toml: no preload runs, and serve, append, read and version behave as anywhere else", async () => {
    const { dir, marker } = hostile_dir();
    const replica = await ServeProcess.start(write_config(dir, "interlog.yaml", open_config), { command: [bin], cwd: dir });
    try {
      expect((await replica.fetch("/api/status")).status).toBe(200);
      const res = await replica.fetch("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "safe" });
      expect(res.status).toBe(201);
    } finally {
      expect(await replica.stop()).toBe(0);
    }
    const cli_dir = path.join(dir, "cli-data");
    expect((await run([bin, "append", "--data-dir", cli_dir], { cwd: dir, stdin: "one\ntwo\n" })).code).toBe(0);
    const read = await run([bin, "read", "--data-dir", cli_dir], { cwd: dir });
    expect(read.code).toBe(0);
    expect(read.stdout.trim().split("\n").map((l) => Buffer.from((JSON.parse(l) as { payload: string }).payload, "base64").toString())).toEqual(["one", "two"]);
    const elsewhere = await run([bin, "version"], { cwd: temp_dir() });
    const here = await run([bin, "version"], { cwd: dir });
    expect(here).toEqual(elsewhere);
    expect(fs.existsSync(marker)).toBe(false);
    expect(replica.lines.some((l) => JSON.stringify(l).includes("HOSTILE"))).toBe(false);
  });
});
