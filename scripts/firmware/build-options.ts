/**
 * Bun's build options for a compiled binary, one added at a time, and what
 * each does to `serve` (issue 16):
 *
 *   bun scripts/firmware/build-options.ts [--runs N]
 *
 * For each variant, built for this machine: the binary's size over a bare
 * compiled Bun.serve (scripts/firmware/bare_serve.ts), the start to /readyz
 * on a restart, and RSS after 10 s idle with sync connected to a mosquitto
 * started here (median of --runs), with anonymous memory and the binary's
 * code and bundle pages apart (scripts/firmware/rss.ts). The firmware uses
 * the variant marked "(firmware)".
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { Mosquitto } from "../../test/support/mosquitto.ts";
import { type BuildFlags, compile_interlog, repo_root, source_commit } from "./compile.ts";
import { type RssBreakdown, rss_breakdown } from "./rss.ts";
import { start_serve, stop_serve, write_serve_config } from "./serve_run.ts";
import { host_target } from "./targets.ts";

interface Variant {
  name: string;
  flags: BuildFlags;
  bytecode_order: boolean;
}

const plain: BuildFlags = { bytecode: true, minify: false, bytecode_depth: null, jit_policy: 1, exec_argv: [] };
const variants: Variant[] = [
  { name: "source only (no --bytecode)", flags: { ...plain, bytecode: false }, bytecode_order: false },
  { name: "--bytecode (the session 6 build)", flags: plain, bytecode_order: false },
  { name: "+ --minify --keep-names", flags: { ...plain, minify: true }, bytecode_order: false },
  { name: "+ --bytecode-order (recorded profiles)", flags: { ...plain, minify: true }, bytecode_order: true },
  { name: "+ --compile-jit-policy=10 until ready", flags: { ...plain, minify: true, jit_policy: 10 }, bytecode_order: true },
  { name: "+ --bytecode-depth=1 (firmware)", flags: { ...plain, minify: true, jit_policy: 10, bytecode_depth: 1 }, bytecode_order: true },
  { name: "+ --compile-exec-argv=--smol", flags: { ...plain, minify: true, jit_policy: 10, bytecode_depth: 1, exec_argv: ["--smol"] }, bytecode_order: true },
];

const { values } = parseArgs({ args: process.argv.slice(2), options: { runs: { type: "string" } }, strict: true });
const runs = Number(values.runs ?? 3);
const idle_ms = 10_000;
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-options-"));
const broker = await Mosquitto.start();
const children: Subprocess[] = [];
try {
  const commit = source_commit();
  const target = host_target();
  const bare = path.join(work, "bare");
  const bare_bytes = (await compile_interlog({ target, outfile: bare, commit, entry: path.join(repo_root, "scripts", "firmware", "bare_serve.ts") })).bytes;
  process.stdout.write(`commit ${commit}; bare program ${mib(bare_bytes)} MiB; start and RSS: median of ${runs}\n`);
  process.stdout.write(`${"variant".padEnd(44)} ${"over bare MiB".padStart(13)} ${"start ms".padStart(8)} ${"RSS".padStart(6)} ${"anon".padStart(6)} ${"code".padStart(6)} ${"bundle".padStart(6)}\n`);
  for (const [i, v] of variants.entries()) {
    const binary = path.join(work, `interlog-${i}`);
    const { bytes } = await compile_interlog({ target, outfile: binary, commit, flags: v.flags, bytecode_order: v.bytecode_order });
    const starts: number[] = [];
    const memory: RssBreakdown[] = [];
    for (let r = 0; r < runs; r++) {
      const run = await start_and_idle(binary);
      starts.push(run.restart_ms);
      memory.push(run.rss);
    }
    const m = [...memory].sort((a, b) => a.rss_mib - b.rss_mib)[Math.floor(memory.length / 2)];
    process.stdout.write(
      `${v.name.padEnd(44)} ${mib(bytes - bare_bytes).padStart(13)} ${Math.round(median(starts)).toString().padStart(8)} ${m.rss_mib.toFixed(1).padStart(6)} ` +
        `${m.anon_mib.toFixed(1).padStart(6)} ${m.binary_code_mib.toFixed(1).padStart(6)} ${m.binary_data_mib.toFixed(1).padStart(6)}\n`,
    );
  }
} finally {
  for (const child of children) child.kill("SIGKILL");
  await broker.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

/** Starts serve once to make its data directory, then again (timed to /readyz, which means connected), and keeps it idle. */
async function start_and_idle(binary: string): Promise<{ restart_ms: number; rss: RssBreakdown }> {
  const dir = fs.mkdtempSync(path.join(work, "run-"));
  const config = write_serve_config(dir, "options", broker.url);
  const options = { stderr: "ignore" as const, on_spawn: (proc: Subprocess) => children.push(proc) };
  await stop_serve(await start_serve([binary], config, options));
  const again = await start_serve([binary], config, options);
  await Bun.sleep(idle_ms);
  const rss = rss_breakdown(again.proc.pid, fs.realpathSync(binary));
  await stop_serve(again);
  fs.rmSync(dir, { recursive: true, force: true });
  return { restart_ms: again.ready_ms, rss };
}
