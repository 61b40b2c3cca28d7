/**
 * Where an idle replica's resident memory goes, layer by layer (issue 16):
 *
 *   bun scripts/firmware/memory-by-layer.ts [--runs N]
 *
 * Compiles, with the firmware's flags for this machine, programs that each
 * add one layer of `serve` to a bare Bun.serve: Ed25519 keys (node:crypto),
 * the config (yaml + zod), the log opened on a data directory, then the real
 * binary offline (admin API) and synced to a mosquitto started here. Each
 * runs idle for 10 s; the table gives RSS (median of --runs) split into
 * anonymous memory (the JavaScriptCore heap, malloc) and the binary's own
 * pages (machine code, read-only data, the embedded bundle), and what each
 * layer adds to the one before.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { Mosquitto } from "../../test/support/mosquitto.ts";
import { compile_interlog, repo_root, source_commit } from "./compile.ts";
import { type RssBreakdown, rss_breakdown } from "./rss.ts";
import { start_serve, stop_serve, write_serve_config } from "./serve_run.ts";
import { host_target } from "./targets.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { runs: { type: "string" } }, strict: true });
const runs = Number(values.runs ?? 3);
const idle_ms = 10_000;
const src = (file: string) => JSON.stringify(path.join(repo_root, "src", file));
const serve_tail = `
const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ ok: true }) });
process.stdout.write(JSON.stringify({ admin_url: "http://127.0.0.1:" + server.port }) + "\\n");
process.once("SIGTERM", () => process.exit(0));
`;

interface Layer {
  name: string;
  /** Source of a program to compile, or null: the real binary. */
  program: string | null;
  mqtt: boolean;
}

const layers: Layer[] = [
  { name: "bare Bun.serve", program: serve_tail, mqtt: false },
  {
    name: "+ Ed25519 keys (node:crypto)",
    program: `import { generateKeyPairSync, sign, createHash } from "node:crypto";
const k = generateKeyPairSync("ed25519"); sign(null, createHash("sha256").update("x").digest(), k.privateKey);${serve_tail}`,
    mqtt: false,
  },
  {
    name: "+ config (yaml, zod, validators)",
    program: `import { generateKeyPairSync, sign } from "node:crypto";
import { load_config } from ${src("config/load.ts")};
const k = generateKeyPairSync("ed25519"); sign(null, new Uint8Array(32), k.privateKey);
load_config(process.argv[process.argv.indexOf("--config") + 1]);${serve_tail}`,
    mqtt: false,
  },
  {
    name: "+ log opened (keys, segments, recovery)",
    program: `import { load_config } from ${src("config/load.ts")};
import { Log } from ${src("log/log.ts")};
const config = load_config(process.argv[process.argv.indexOf("--config") + 1]);
const log = await Log.open({ dir: config.data_dir, name: config.name, sync: config.log.sync });
(globalThis as { keep?: unknown }).keep = log;${serve_tail}`,
    mqtt: false,
  },
  { name: "+ admin API = serve offline (real binary)", program: null, mqtt: false },
  { name: "+ sync connected to mosquitto = serve (real binary)", program: null, mqtt: true },
];

const work = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-layers-"));
const broker = await Mosquitto.start();
const children: Subprocess[] = [];
try {
  const commit = source_commit();
  const target = host_target();
  const real = path.join(work, "interlog");
  await compile_interlog({ target, outfile: real, commit });
  let before: RssBreakdown | null = null;
  process.stdout.write(`commit ${commit}; RSS after ${idle_ms / 1000} s idle, median of ${runs}, MiB\n`);
  process.stdout.write(`${"layer".padEnd(52)} ${"RSS".padStart(6)} ${"+RSS".padStart(6)} ${"anon".padStart(6)} ${"+anon".padStart(6)} ${"code".padStart(6)} ${"rodata".padStart(6)} ${"bundle".padStart(6)}\n`);
  for (const [i, layer] of layers.entries()) {
    let binary = real;
    if (layer.program !== null) {
      const entry = path.join(repo_root, "scripts", "firmware", `.layer-${i}.ts`);
      fs.writeFileSync(entry, layer.program);
      binary = path.join(work, `layer-${i}`);
      try {
        await compile_interlog({ target, outfile: binary, commit, entry });
      } finally {
        fs.rmSync(entry, { force: true });
      }
    }
    const samples: RssBreakdown[] = [];
    for (let r = 0; r < runs; r++) samples.push(await idle_rss(binary, layer.mqtt));
    const m = median_by_rss(samples);
    const plus = (now: number, was: number | undefined) => (was === undefined ? "" : (now - was).toFixed(1));
    process.stdout.write(
      `${layer.name.padEnd(52)} ${m.rss_mib.toFixed(1).padStart(6)} ${plus(m.rss_mib, before?.rss_mib).padStart(6)} ${m.anon_mib.toFixed(1).padStart(6)} ${plus(m.anon_mib, before?.anon_mib).padStart(6)} ` +
        `${m.binary_code_mib.toFixed(1).padStart(6)} ${m.binary_rodata_mib.toFixed(1).padStart(6)} ${m.binary_data_mib.toFixed(1).padStart(6)}\n`,
    );
    before = m;
  }
} finally {
  for (const child of children) child.kill("SIGKILL");
  await broker.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

async function idle_rss(binary: string, mqtt: boolean): Promise<RssBreakdown> {
  const dir = fs.mkdtempSync(path.join(work, "run-"));
  // Ready means connected when synced: /readyz answers 200 only once the broker is (the layer programs answer it at once).
  const running = await start_serve([binary], write_serve_config(dir, "layer", mqtt ? broker.url : undefined), {
    stderr: "ignore",
    on_spawn: (proc) => children.push(proc),
  });
  await Bun.sleep(idle_ms);
  const b = rss_breakdown(running.proc.pid, fs.realpathSync(binary));
  await stop_serve(running);
  fs.rmSync(dir, { recursive: true, force: true });
  return b;
}

function median_by_rss(xs: RssBreakdown[]): RssBreakdown {
  return [...xs].sort((a, b) => a.rss_mib - b.rss_mib)[Math.floor(xs.length / 2)];
}
