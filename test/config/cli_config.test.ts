import path from "node:path";
import { describe, expect, test } from "bun:test";
import { config_files } from "./config_files.ts";

const repo = path.join(import.meta.dir, "..", "..");
const bun = path.join(repo, "node_modules", ".bin", "bun");
const cli = path.join(repo, "src", "cli.ts");
const { dir, write: write_config } = config_files();
/** Lines to wait for before giving up on a started serve process. */
const serve_output_lines_max = 50;

async function run_serve(file: string, env: Record<string, string> = {}) {
  const proc = Bun.spawn([bun, cli, "serve", "--config", file], { cwd: dir, env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("interlog serve with a bad config", () => {
  test("exits 2 and says on stderr which file, line and key are wrong", async () => {
    const file = write_config(`
      data_dir: ./data
      log:
        sync: sometimes
    `);
    const { code, stderr, stdout } = await run_serve(file);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe(`interlog serve: CONFIG_INVALID: ${file}:3:3: log.sync: expected one of always, interval, never; got "sometimes"\n`);
  });

  test("a missing secret environment variable exits 2 and names the variable", async () => {
    const file = write_config(`
      data_dir: ./data
      admin:
        token_env: INTERLOG_TEST_ADMIN_TOKEN
    `);
    const { code, stderr } = await run_serve(file);
    expect(code).toBe(2);
    expect(stderr).toContain(`${file}:3:3: admin.token_env: the environment variable INTERLOG_TEST_ADMIN_TOKEN is not set`);
  });

  test("bad YAML exits 2", async () => {
    const file = write_config("data_dir: [./data\n");
    const { code, stderr } = await run_serve(file);
    expect(code).toBe(2);
    expect(stderr).toStartWith(`interlog serve: CONFIG_INVALID: ${file}:`);
    expect(stderr).toContain("YAML syntax:");
  });
});

describe("interlog serve with a good config", () => {
  test("opens the log from the config, and stops cleanly on SIGTERM", async () => {
    const file = write_config(`
      name: bench-truck
      data_dir: ./serve-data
      log:
        segment_size: 1MiB
        sync: interval
        sync_interval: 5ms
      admin:
        listen: 127.0.0.1:0
    `);
    const proc = Bun.spawn([bun, cli, "serve", "--config", file], { cwd: dir, env: { PATH: process.env.PATH ?? "" }, stdout: "pipe", stderr: "pipe" });
    const lines: string[] = [];
    const reader = proc.stdout.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    while (!lines.some((line) => line.includes("replica started")) && lines.length < serve_output_lines_max) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      lines.push(...parts);
    }
    const started = lines.find((line) => line.includes("replica started"));
    expect(started).toBeDefined();
    const fields = JSON.parse(started ?? "{}");
    expect(fields.name).toBe("bench-truck");
    expect(fields.data_dir).toBe(path.join(dir, "serve-data"));
    proc.kill("SIGTERM");
    let rest = pending;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
    }
    expect(await proc.exited).toBe(0);
    expect(rest).toContain('"msg":"stopped"');
  });
});
