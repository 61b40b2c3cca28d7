/**
 * Figures for the firmware notes, measured on the compiled binaries:
 *
 *   bun scripts/measure-firmware.ts [--json] [--runs N] [--load-seconds S]
 *
 * - binary size per target (and gzip -6 size, about the bundle's size)
 * - time from process start to the first 200 from /readyz (offline replica,
 *   sync always), on a fresh data dir and on a restart; median of --runs
 * - RSS of `serve` idle, and its peak while a separate process appends
 *   10 000 events/s over HTTP (single-event POSTs, then CBOR batches of 100)
 * - under qemu-user: start-up and `interlog append --sync never` of 100 000
 *   lines for the arm64 binary (and natively for x64, for scale)
 *
 * Timings depend on the machine and its load: compare figures from one run.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { compile_interlog, repo_root, source_commit } from "./firmware/compile.ts";
import { firmware_targets, host_target } from "./firmware/targets.ts";

interface Figure {
  name: string;
  value: number | string;
  unit: string;
  note?: string;
}

const figures: Figure[] = [];
function record(name: string, value: number | string, unit: string, note?: string): void {
  figures.push({ name, value, unit, note });
  if (!json) process.stdout.write(`${name.padEnd(52)} ${String(value).padStart(8)} ${unit.padEnd(8)} ${note ?? ""}\n`);
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean" }, runs: { type: "string" }, "load-seconds": { type: "string" } },
  strict: true,
});
const json = values.json === true;
const runs = Number(values.runs ?? 5);
const load_seconds = Number(values["load-seconds"] ?? 10);
const mib = (bytes: number) => Number((bytes / 1024 / 1024).toFixed(1));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-measure-"));
if (!json) process.stdout.write(`commit ${source_commit()}, ${os.cpus().length} cpus, load average ${os.loadavg()[0].toFixed(1)} at start\n`);
const children: { kill(signal?: number | NodeJS.Signals): void }[] = [];
try {
  await main();
} finally {
  for (const child of children) child.kill("SIGKILL");
  fs.rmSync(work, { recursive: true, force: true });
}
if (json) process.stdout.write(`${JSON.stringify({ commit: source_commit(), cpus: os.cpus().length, load_avg: os.loadavg()[0], figures }, null, 2)}\n`);

async function main(): Promise<void> {
  const binaries = new Map<string, string>();
  for (const target of firmware_targets) {
    const outfile = path.join(work, `interlog-${target.name}`);
    try {
      const { bytes } = await compile_interlog({ target, outfile, commit: source_commit() });
      binaries.set(target.name, outfile);
      const gz = gzipSync(fs.readFileSync(outfile), { level: 6 }).length;
      record(`binary size ${target.name}`, mib(bytes), "MiB", `gzip -6: ${mib(gz)} MiB`);
    } catch (err) {
      record(`binary size ${target.name}`, "n/a", "", (err as Error).message.split("\n")[0]);
    }
  }
  const host = binaries.get(host_target().name);
  if (host === undefined) throw new Error("no binary for this machine");

  await measure_start([host], "x64");
  await measure_load(host);
  const arm = binaries.get("linux-arm64");
  const qemu = qemu_prefix();
  if (arm !== undefined && qemu !== null) {
    await measure_cli_append([...qemu, arm], "arm64 under qemu");
    await measure_start([...qemu, arm], "arm64 under qemu", 1);
  } else {
    record("arm64 under qemu", "n/a", "", "qemu-aarch64-static or the arm64 libraries are missing");
  }
  await measure_cli_append([host], "x64 native");
}

function qemu_prefix(): string[] | null {
  const qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"].find((f) => fs.existsSync(f));
  if (qemu === undefined) return null;
  for (const root of ["/usr/aarch64-linux-gnu", "/"]) if (fs.existsSync(path.join(root, "lib/ld-linux-aarch64.so.1"))) return [qemu, "-L", root];
  return null;
}

/** User + system CPU seconds of a process so far. */
function cpu_s(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rss_kib(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m === null ? 0 : Number(m[1]);
}

interface Running {
  proc: ReturnType<typeof Bun.spawn>;
  admin_url: string;
  ready_ms: number;
}

/** Starts serve on `data_dir` and resolves once /readyz answers 200, with the time that took. */
async function start_serve(command: string[], dir: string, timeout_ms = 120_000): Promise<Running> {
  const config = path.join(dir, "interlog.yaml");
  fs.writeFileSync(config, "name: measure\ndata_dir: ./data\nlog:\n  sync: always\nadmin:\n  listen: 127.0.0.1:0\n");
  const t0 = performance.now();
  const proc = Bun.spawn([...command, "serve", "--config", config], { cwd: dir, stdout: "pipe", stderr: "inherit", env: { PATH: process.env.PATH ?? "" } });
  children.push(proc);
  let admin_url = "";
  void (async () => {
    let pending = "";
    for await (const chunk of proc.stdout) {
      pending += new TextDecoder().decode(chunk);
      const m = /"admin_url":"([^"]+)"/.exec(pending);
      if (m !== null && admin_url === "") admin_url = m[1];
      pending = pending.slice(-4096);
    }
  })();
  for (;;) {
    if (performance.now() - t0 > timeout_ms || proc.exitCode !== null) throw new Error(`serve did not become ready (exit ${proc.exitCode})`);
    if (admin_url !== "") {
      const ok = await fetch(`${admin_url}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) return { proc, admin_url, ready_ms: performance.now() - t0 };
    }
    await Bun.sleep(2);
  }
}

async function stop(running: Running): Promise<void> {
  running.proc.kill("SIGTERM");
  await running.proc.exited;
}

async function measure_start(command: string[], label: string, count = runs): Promise<void> {
  const fresh: number[] = [];
  const restart: number[] = [];
  for (let i = 0; i < count; i++) {
    const dir = fs.mkdtempSync(path.join(work, "start-"));
    const first = await start_serve(command, dir);
    fresh.push(first.ready_ms);
    await stop(first);
    const again = await start_serve(command, dir);
    restart.push(again.ready_ms);
    await stop(again);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const runs_note = `median of ${count}`;
  record(`start to /readyz ${label}, fresh data dir`, Math.round(median(fresh)), "ms", `${runs_note}; creates the first 64MiB segment`);
  record(`start to /readyz ${label}, restart`, Math.round(median(restart)), "ms", runs_note);
}

async function measure_load(bin: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(work, "load-"));
  const running = await start_serve([bin], dir);
  const pid = running.proc.pid;
  await Bun.sleep(3000);
  record("RSS idle (serve, offline, after 3 s)", mib(rss_kib(pid) * 1024), "MiB");
  for (const batch of [1, 100]) {
    let peak = 0;
    const cpu_before = cpu_s(pid);
    const t_load = performance.now();
    const sampler = setInterval(() => (peak = Math.max(peak, rss_kib(pid))), 100);
    // Single-event POSTs need more client CPU than one load process has: split the rate over two.
    const processes = batch === 1 ? 2 : 1;
    const concurrency = batch === 1 ? 32 : 4;
    const loads = Array.from({ length: processes }, () => {
      const load = Bun.spawn(
        [
          process.execPath,
          path.join(repo_root, "scripts", "firmware", "http_load.ts"),
          running.admin_url,
          String(10_000 / processes),
          String(load_seconds),
          String(batch),
          String(concurrency),
        ],
        { stdout: "pipe", stderr: "inherit" },
      );
      children.push(load);
      return new Response(load.stdout).text().then((text) => JSON.parse(text) as { events_per_s: number; p50_ms: number; p99_ms: number; failed: number });
    });
    const parts = await Promise.all(loads);
    const result = {
      events_per_s: parts.reduce((sum, r) => sum + r.events_per_s, 0),
      p50_ms: Math.max(...parts.map((r) => r.p50_ms)),
      p99_ms: Math.max(...parts.map((r) => r.p99_ms)),
      failed: parts.reduce((sum, r) => sum + r.failed, 0),
    };
    clearInterval(sampler);
    const serve_cpu_percent = Math.round((100 * (cpu_s(pid) - cpu_before)) / ((performance.now() - t_load) / 1000));
    const shape = batch === 1 ? "single-event POSTs" : `CBOR batches of ${batch}`;
    record(
      `RSS peak, 10k events/s offered, ${shape}`,
      mib(peak * 1024),
      "MiB",
      `reached ${result.events_per_s} events/s for ${load_seconds} s, p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, ${result.failed} failed; serve used ${serve_cpu_percent}% of a core`,
    );
    await Bun.sleep(2000);
    record(`RSS 2 s after the load (${shape})`, mib(rss_kib(pid) * 1024), "MiB");
  }
  await stop(running);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function measure_cli_append(command: string[], label: string): Promise<void> {
  const t_version = performance.now();
  const version = Bun.spawnSync([...command, "version"]);
  const startup_ms = performance.now() - t_version;
  if (version.exitCode !== 0) throw new Error(`${label}: version failed: ${version.stderr.toString()}`);
  record(`CLI start-up (interlog version) ${label}`, Math.round(startup_ms), "ms");
  const lines = 100_000;
  const input = Buffer.from(Array.from({ length: lines }, (_, i) => `{"lat":53.5461,"lon":9.9661,"n":${i}}\n`).join(""));
  const data = fs.mkdtempSync(path.join(work, "append-"));
  const t0 = performance.now();
  const append = Bun.spawnSync([...command, "append", "--data-dir", path.join(data, "d"), "--sync", "never"], { stdin: input, stdout: "pipe" });
  const total_ms = performance.now() - t0;
  if (append.exitCode !== 0) throw new Error(`${label}: append failed: ${append.stderr.toString()}`);
  record(
    `append --sync never of 100k lines, ${label}`,
    Math.round(lines / (total_ms / 1000)),
    "events/s",
    `${(total_ms / 1000).toFixed(1)} s in all; ${Math.round(lines / ((total_ms - startup_ms) / 1000))} events/s without start-up`,
  );
  fs.rmSync(data, { recursive: true, force: true });
}
