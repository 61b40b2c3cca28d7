import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "bun:test";
import { compile_interlog, source_commit } from "../../scripts/firmware/compile.ts";
import { type FirmwareTarget, find_target, host_target } from "../../scripts/firmware/targets.ts";

/**
 * Compiled interlog binaries for one e2e test file: each is built on first
 * use into a temp dir that is removed after the file's tests. (bun test runs
 * no exit hook, so a dir shared across files would never be removed.)
 * INTERLOG_BIN, a binary built elsewhere (e.g. by `npm run build`), is used
 * for this machine's target and commit instead of compiling.
 */
export function binary_builds(): { get(target?: FirmwareTarget, commit?: string): Promise<string> } {
  const built = new Map<string, Promise<string>>();
  let dir: string | null = null;
  afterAll(async () => {
    await Promise.allSettled(built.values());
    if (dir !== null) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    get(target = host_target(), commit = source_commit()) {
      const from_env = process.env.INTERLOG_BIN;
      if (target.name === host_target().name && commit === source_commit() && from_env !== undefined && from_env !== "") {
        return Promise.resolve(path.resolve(from_env));
      }
      const key = `${target.name}@${commit}`;
      let binary = built.get(key);
      if (binary === undefined) {
        dir ??= fs.mkdtempSync(path.join(os.tmpdir(), "interlog-e2e-bin-"));
        const outfile = path.join(dir, `interlog-${target.name}-${built.size}`);
        binary = compile_interlog({ target, outfile, commit }).then((r) => r.outfile);
        built.set(key, binary);
      }
      return binary;
    },
  };
}

/**
 * A temp_dir for one test file, removed after its tests. Call at the top
 * level of the test file. (test/support/temp_dir.ts registers its afterAll
 * once per process, so in a multi-file run it cleans up only the first
 * file's dirs; these hold 100+ MiB binaries and must not pile up.)
 */
export function file_temp_dirs(): (prefix?: string) => string {
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  });
  return (prefix = "interlog-e2e-") => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

export const arm64 = (): FirmwareTarget => find_target("linux-arm64");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with stdin text; never throws on a non-zero exit. */
export async function run(command: string[], options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  const proc = Bun.spawn(command, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "", ...options.env },
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

export { wait_for } from "../support/wait_for.ts";
