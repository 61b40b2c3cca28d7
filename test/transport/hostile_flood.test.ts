import { heapStats } from "bun:jsc";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import path from "node:path";
import { sync_defaults } from "../../src/sync/sync_options.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { LiveReplica, converged, describe_vvs, wait_until } from "./live_replica.ts";
import { vvs_per_round } from "./vv_flooder.ts";

/**
 * Issue #12, lying version vectors, with the real transport and a real
 * mosquitto: the flood comes from another process, so what the heap holds
 * afterwards is the replicas' own. Retained memory must not grow with the
 * number of lies, only up to the limits.
 */
let broker: Mosquitto;
const open: LiveReplica[] = [];
const flooder = path.join(import.meta.dir, "vv_flooder.ts");

beforeAll(async () => {
  broker = await Mosquitto.start();
});

afterAll(async () => {
  for (const r of open) await r.close().catch(() => {});
  await broker.stop();
});

function heap_bytes(): number {
  Bun.gc(true);
  Bun.gc(true);
  const h = heapStats();
  return h.heapSize + h.extraMemorySize;
}

async function flood(round: number | "clear", count = vvs_per_round): Promise<void> {
  const proc = Bun.spawn([process.execPath, flooder, broker.url, "it", String(round), String(count)], { stdout: "pipe", stderr: "pipe" });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`flooder failed: ${await new Response(proc.stderr).text()}`);
}

describe("lying version vectors through a real mosquitto", () => {
  test("three floods of 100 retained vvs (2.4 million made-up origins): retained heap stops growing at the limits, the event loop keeps turning, honest replicas converge", async () => {
    const a = await LiveReplica.open(temp_dir(), broker.url, { name: "a" });
    const b = await LiveReplica.open(temp_dir(), broker.url, { name: "b" });
    open.push(a, b);
    await wait_until(() => a.transport.status().connected && b.transport.status().connected, () => describe_vvs([a, b]), 10_000);
    await Promise.all([a.append(200), b.append(200)]);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
    const before = heap_bytes();
    let worst_lag_ms = 0;
    let last = performance.now();
    const lag = setInterval(() => {
      const now = performance.now();
      worst_lag_ms = Math.max(worst_lag_ms, now - last - 10);
      last = now;
    }, 10);
    const after: number[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all([flood(round), a.append(100), b.append(100)]);
        const liars = (round + 1) * vvs_per_round;
        await wait_until(
          () => a.rep.status(Date.now()).peers.length > liars && b.rep.status(Date.now()).peers.length > liars,
          () => `peers: ${a.rep.status(Date.now()).peers.length}`,
          60_000,
          200,
        );
        await wait_until(() => converged([a, b]), () => describe_vvs([a, b]), 60_000, 200);
        after.push(heap_bytes());
        last = performance.now(); // the forced collections above are the test's, not the replicas
      }
    } finally {
      clearInterval(lag);
    }
    const mib = (n: number) => (n / 1048576).toFixed(1);
    const s = a.rep.status(Date.now());
    console.log(
      `vv floods through mosquitto (two replicas in this process): heap +${mib(after[0] - before)} MiB after the first, then ${after
        .slice(1)
        .map((h, i) => `${h >= after[i] ? "+" : ""}${mib(h - after[i])}`)
        .join(", ")} MiB; worst event-loop lag ${worst_lag_ms.toFixed(0)} ms; ${s.origins_tracked} origins tracked`,
    );
    expect(s.origins_tracked).toBeLessThanOrEqual(sync_defaults.origins_max);
    // Two replicas' tables (about 20 MiB each at the default limits), then flat.
    expect(after[0] - before).toBeLessThan(96 * 1024 * 1024);
    expect(after[2] - after[0]).toBeLessThan(16 * 1024 * 1024);
    expect(worst_lag_ms).toBeLessThan(1000);
    expect(a.rep.counters.forgotten.origins_max).toBeGreaterThan(0);
    // Still syncing both ways.
    await Promise.all([a.append(50), b.append(50)]);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
    expect(a.log.held(b.id)).toBe(200 + 300 + 50);
    await flood("clear", 3);
  }, 300_000);
});
