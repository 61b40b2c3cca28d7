/**
 * Records the bytecode-order profiles the firmware build lays its bytecode
 * out by (scripts/firmware/compile.ts, issue 16):
 *
 *   bun scripts/firmware/record-bytecode-order.ts
 *
 * Builds this machine's binary without a profile, then runs it the way a
 * device does with BUN_BYTECODE_ORDER_OUT set, and writes
 * firmware/bytecode-order/serve.order (serve synced through a mosquitto
 * started here: start, connect, a few admin requests, stop) and cli.order
 * (`interlog append` of 1 000 lines). Commit the result. A profile only
 * changes where functions sit in the executable, never what it does; one
 * recorded on an older commit still applies (re-record when many functions
 * changed: `bytecodeOrderStats()` of bun:jsc counts the ones it missed).
 * Not recorded on purpose: /metrics, the dashboard pages and the commands a
 * technician runs by hand, so what they load stays out of the hot front.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Mosquitto } from "../../test/support/mosquitto.ts";
import { bytecode_order_dir, compile_interlog, source_commit } from "./compile.ts";
import { start_serve, stop_serve, write_serve_config } from "./serve_run.ts";
import { host_target } from "./targets.ts";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-order-"));
const broker = await Mosquitto.start();
try {
  const binary = path.join(work, "interlog");
  await compile_interlog({ target: host_target(), outfile: binary, commit: source_commit(), bytecode_order: false });
  fs.mkdirSync(bytecode_order_dir, { recursive: true });
  await record_serve(binary, path.join(bytecode_order_dir, "serve.order"));
  record_cli_append(binary, path.join(bytecode_order_dir, "cli.order"));
  for (const f of ["serve.order", "cli.order"]) {
    const lines = fs.readFileSync(path.join(bytecode_order_dir, f), "utf8").split("\n").filter((l) => l.startsWith("F ")).length;
    process.stdout.write(`firmware/bytecode-order/${f}: ${lines} functions\n`);
  }
} finally {
  await broker.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

async function record_serve(binary: string, out: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(work, "serve-"));
  // Ready means connected: /readyz answers 200 only once the broker is.
  const running = await start_serve([binary], write_serve_config(dir, "order", broker.url), { env: { BUN_BYTECODE_ORDER_OUT: out } });
  const { admin_url } = running;
  const expect_ok = async (response: Promise<Response>, what: string) => {
    const r = await response;
    if (!r.ok) throw new Error(`${what}: HTTP ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  };
  for (let i = 0; i < 20; i++) {
    await expect_ok(fetch(`${admin_url}/readyz`), "readyz");
    await expect_ok(fetch(`${admin_url}/api/events`, { method: "POST", body: `{"n":${i}}`, headers: { "content-type": "application/octet-stream" } }), "append");
    await expect_ok(fetch(`${admin_url}/api/status`), "status");
    await expect_ok(fetch(`${admin_url}/api/events?limit=10`), "read");
  }
  // Idle for a while, as a device mostly is: keep-alives and timers run.
  await Bun.sleep(3000);
  await stop_serve(running);
  if (!fs.existsSync(out)) throw new Error(`serve wrote no profile to ${out}`);
}

function record_cli_append(binary: string, out: string): void {
  const input = Buffer.from(Array.from({ length: 1000 }, (_, i) => `{"lat":53.5461,"lon":9.9661,"n":${i}}\n`).join(""));
  const append = Bun.spawnSync([binary, "append", "--data-dir", path.join(work, "cli-data"), "--sync", "always"], {
    stdin: input,
    stdout: "ignore",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", BUN_BYTECODE_ORDER_OUT: out },
  });
  if (append.exitCode !== 0) throw new Error(`append failed: ${append.stderr.toString()}`);
  if (!fs.existsSync(out)) throw new Error(`append wrote no profile to ${out}`);
}
