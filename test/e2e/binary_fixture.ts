import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { compile_interlog, source_commit } from "../../scripts/firmware/compile.ts";
import { type FirmwareTarget, find_target, host_target } from "../../scripts/firmware/targets.ts";

/**
 * Compiled interlog binaries for the e2e tests, built once per test process
 * into a temp dir that is removed when the process exits. INTERLOG_BIN (a
 * binary built elsewhere, e.g. by `npm run build`) is used for this
 * machine's target instead of compiling.
 */
const built = new Map<string, Promise<string>>();
let build_dir: string | null = null;

function dir(): string {
  if (build_dir === null) {
    build_dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-e2e-bin-"));
    const remove = build_dir;
    process.once("exit", () => fs.rmSync(remove, { recursive: true, force: true }));
  }
  return build_dir;
}

export function compiled_interlog(target: FirmwareTarget = host_target(), commit = source_commit()): Promise<string> {
  const from_env = process.env.INTERLOG_BIN;
  if (target.name === host_target().name && from_env !== undefined && from_env !== "" && commit === source_commit()) {
    return Promise.resolve(path.resolve(from_env));
  }
  const key = `${target.name}@${commit}`;
  let binary = built.get(key);
  if (binary === undefined) {
    const outfile = path.join(dir(), `interlog-${target.name}-${built.size}`);
    binary = compile_interlog({ target, outfile, commit }).then((r) => r.outfile);
    built.set(key, binary);
  }
  return binary;
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

export async function wait_for<T>(what: string, probe: () => Promise<T | null>, timeout_ms = 30_000): Promise<T> {
  const deadline = Date.now() + timeout_ms;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(50);
  }
}
