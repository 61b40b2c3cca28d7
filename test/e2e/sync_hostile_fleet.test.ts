import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { encode } from "cbor2";
import mqtt from "mqtt";
import { encode_message } from "../../src/sync/messages.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * Issue #12 against the real parts: `interlog serve` processes syncing
 * through a real mosquitto while a hostile client floods them. Bounds are
 * stated per test and printed with what was measured.
 */

const prefix = "e2e-hostile";
let broker: Mosquitto;
const running: ServeProcess[] = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
});

afterAll(async () => {
  for (const p of running) await p.stop().catch(() => 0);
  await broker.stop();
});

const id = (n: number): string => n.toString(16).padStart(16, "0");

function config(dir: string, name: string, replication = ""): string {
  return write_config(
    dir,
    `${name}.yaml`,
    `name: ${name}\ndata_dir: ./${name}\nlog:\n  sync: always\nmqtt:\n  url: ${broker.url}\n  prefix: ${prefix}\nadmin:\n  listen: 127.0.0.1:0\nreplication:\n  pull: ["*"]\n${replication}`,
  );
}

async function serve(file: string): Promise<ServeProcess> {
  const p = await ServeProcess.start(file);
  running.push(p);
  return p;
}

async function stop(p: ServeProcess): Promise<void> {
  expect(await p.stop()).toBe(0);
  running.splice(running.indexOf(p), 1);
}

/** Resident memory of a process (bytes), from /proc. */
function rss_bytes(p: ServeProcess): number {
  const status = fs.readFileSync(`/proc/${p.proc.pid}/status`, "utf8");
  const kib = /VmRSS:\s+(\d+) kB/.exec(status);
  if (kib === null) throw new Error("no VmRSS");
  return Number(kib[1]) * 1024;
}

/** RSS once it has not fallen for 3 s (sampled every 500 ms, at most 20 s): the baseline before a flood. */
async function settled_rss_bytes(p: ServeProcess): Promise<number> {
  let low = rss_bytes(p);
  let steady = 0;
  for (let i = 0; i < 40 && steady < 6; i++) {
    await Bun.sleep(500);
    const now = rss_bytes(p);
    if (now < low - 1024 * 1024) {
      low = now;
      steady = 0;
    } else steady++;
  }
  return low;
}

/**
 * How long RSS takes to come back under `limit` bytes (sampled every
 * 500 ms, at most timeout_ms), and where it got to. After a burst of
 * garbage Bun's allocator keeps the freed pages for a while (measured:
 * about 20 s at the peak level, then a drop to +40-50 MiB), so this waits
 * instead of reading RSS once.
 */
async function rss_falls_under(p: ServeProcess, limit: number, timeout_ms = 60_000): Promise<{ ms: number; rss: number }> {
  const start = performance.now();
  let rss = rss_bytes(p);
  while (rss > limit && performance.now() - start < timeout_ms) {
    await Bun.sleep(500);
    rss = rss_bytes(p);
  }
  return { ms: performance.now() - start, rss };
}

/** The highest RSS seen, sampled every 50 ms while `during` runs. */
async function peak_rss_bytes(p: ServeProcess, during: Promise<unknown>): Promise<number> {
  let peak = rss_bytes(p);
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, rss_bytes(p));
      await Bun.sleep(50);
    }
  })();
  await during;
  done = true;
  await sampler;
  return peak;
}

interface Status {
  vv: Record<string, number>;
  sync: { connected: boolean; peers: { id: string; vv: Record<string, number> }[] };
}

async function status(p: ServeProcess): Promise<{ status: Status; ms: number; bytes: number }> {
  const t0 = performance.now();
  const text = await (await p.fetch("/api/status")).text();
  return { status: JSON.parse(text) as Status, ms: performance.now() - t0, bytes: text.length };
}

/** Polls `ok` every 500 ms (each poll reads /api/status, which is not free on a replica that hears 100 peers). */
async function wait_until(what: string, ok: () => Promise<boolean>, timeout_ms = 60_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(500);
  }
}

/** Appends `count` payloads of `size` bytes as CBOR batches of 500. */
async function append(p: ServeProcess, count: number, size = 64, tag = "x"): Promise<void> {
  for (let done = 0; done < count; done += 500) {
    const n = Math.min(500, count - done);
    const batch = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`${tag}-${done + i}|`.padEnd(size, "~")));
    const res = await p.fetch("/api/events", { method: "POST", headers: { "content-type": "application/cbor" }, body: encode(batch) });
    expect(res.status).toBe(201);
  }
}

/** Whether every replica holds what every other one wrote (own seq = what the others hold of it). */
async function converged(ps: ServeProcess[]): Promise<boolean> {
  const vvs = await Promise.all(ps.map(async (p) => (await status(p)).status.vv));
  return ps.every((p, i) => ps.every((_, j) => (vvs[j][p.id] ?? 0) === (vvs[i][p.id] ?? 0)));
}

/** /healthz round trips every 25 ms while `during` runs: the worst is a bound on how long the replica's event loop was held. */
async function worst_health_ms(p: ServeProcess, during: Promise<unknown>): Promise<number> {
  let worst = 0;
  let done = false;
  const probe = (async () => {
    while (!done) {
      const t0 = performance.now();
      await p.fetch("/healthz");
      worst = Math.max(worst, performance.now() - t0);
      await Bun.sleep(25);
    }
  })();
  await during;
  done = true;
  await probe;
  return worst;
}

function flooder(client_id: string): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.url, { clientId: client_id, protocolVersion: 5, clean: true });
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

describe("a hostile fleet against real serve processes and mosquitto", () => {
  test("two floods of 100 retained vvs of 128 KiB (800 000 made-up origins each): RSS, /api/status and the event loop stay bounded, honest replicas converge, also after a restart", async () => {
    const dir = temp_dir();
    const a_file = config(dir, "a");
    let a = await serve(a_file);
    const b = await serve(config(dir, "b"));
    await append(a, 500, 64, "a");
    await append(b, 500, 64, "b");
    await wait_until("a and b to converge", () => converged([a, b]));
    const rss_before = await settled_rss_bytes(a);
    const status_before = await status(a);

    const client = await flooder("mallory");
    const liars: string[] = [];
    /** What RSS must come back under after a flood (the tables at their limits, about 20 MiB of heap, and the allocator's slack). */
    const settled_growth_max = 96 * 1024 * 1024;
    const mib = (n: number) => (n / 1048576).toFixed(0);
    /** 100 retained vvs from 100 new liar ids, 8 000 new made-up origins each, while a and b keep appending; then a and b converge. */
    const flood = async (round: number) => {
      const work = (async () => {
        for (let n = 0; n < 100; n++) {
          const liar = id(0xbad0_0000 + round * 100 + n);
          liars.push(liar);
          const vv = new Map<string, number>();
          for (let k = 0; k < 8000; k++) vv.set(id(0x5000_0000_0000 + (round * 100 + n) * 8000 + k), 1 + ((n * 7919 + k) % 1_000_000));
          const payload = Buffer.from(encode_message({ kind: "vv", from: liar, name: "mallory", vv, pull: "*" }));
          expect(payload.length).toBeLessThanOrEqual(128 * 1024 - 64);
          await client.publishAsync(`${prefix}/${liar}/vv`, payload, { qos: 1, retain: true });
        }
        await Promise.all([append(a, 300, 64, `a-${round}`), append(b, 300, 64, `b-${round}`)]);
        await wait_until("a to hear all the liars", async () => (await status(a)).status.sync.peers.length >= liars.length + 1);
        await wait_until("a and b to converge again", () => converged([a, b]), 120_000);
      })();
      let worst_ms = 0;
      const peak = await peak_rss_bytes(
        a,
        worst_health_ms(a, work).then((ms) => (worst_ms = ms)),
      );
      const settled = await rss_falls_under(a, rss_before + settled_growth_max);
      const after = await status(a);
      console.log(
        `vv flood ${round + 1} on serve: RSS peak ${mib(peak)}, then ${mib(settled.rss)} MiB after ${(settled.ms / 1000).toFixed(0)} s, /api/status ${after.ms.toFixed(0)} ms and ${(after.bytes / 1024).toFixed(0)} KiB, worst /healthz ${worst_ms.toFixed(0)} ms`,
      );
      return { peak, settled: settled.rss, after, worst_ms };
    };
    const first = await flood(0);
    const second = await flood(1);
    console.log(`vv floods on serve: RSS before ${mib(rss_before)} MiB, /api/status before ${status_before.ms.toFixed(0)} ms and ${(status_before.bytes / 1024).toFixed(0)} KiB`);
    // Before: ~350 MB more heap kept per 100 such vvs, a 29 MB status taking 1.4 s, 0.5 s ticks.
    // The peak is garbage from decoding 12.5 MB of vvs (a Map of 8 000 new strings each) before the GC catches up: it
    // varies from run to run (measured +170 to +360 MiB); the settled RSS includes pages the allocator keeps.
    for (const f of [first, second]) {
      expect(f.peak - rss_before).toBeLessThan(512 * 1024 * 1024);
      expect(f.after.bytes).toBeLessThan(4 * 1024 * 1024);
      expect(f.after.ms).toBeLessThan(1000);
      expect(f.worst_ms).toBeLessThan(2000);
    }
    // The retained heap is measured exactly, and shown flat flood after flood, in test/transport/hostile_flood.test.ts.
    expect(first.settled - rss_before).toBeLessThan(settled_growth_max);
    expect(second.settled - rss_before).toBeLessThan(settled_growth_max);
    const metrics = await (await a.fetch("/metrics")).text();
    expect(metrics).toMatch(/interlog_sync_messages_dropped_total\{reason="limit_origins_max"\} [1-9]/);

    // The flood is retained: a restart gets all of it again, and still holds.
    await stop(a);
    await append(b, 200, 64, "b3");
    a = await serve(a_file);
    const restart = (async () => {
      await wait_until("a to hear the liars again", async () => (await status(a)).status.sync.peers.length >= liars.length + 1);
      await wait_until("a and b to converge after the restart", () => converged([a, b]), 120_000);
    })();
    const worst_after_restart_ms = await worst_health_ms(a, restart);
    const rss_restarted = (await rss_falls_under(a, rss_before + settled_growth_max)).rss;
    const restarted = await status(a);
    console.log(
      `after a restart into the retained floods (200 vvs): RSS settled ${mib(rss_restarted)} MiB, /api/status ${restarted.ms.toFixed(0)} ms and ${(restarted.bytes / 1024).toFixed(0)} KiB, worst /healthz ${worst_after_restart_ms.toFixed(0)} ms`,
    );
    expect(rss_restarted).toBeLessThan(rss_before + settled_growth_max);
    expect(restarted.ms).toBeLessThan(1000);
    expect(worst_after_restart_ms).toBeLessThan(2000);
    expect(restarted.status.vv[a.id]).toBe(500 + 300 + 300);
    expect(restarted.status.vv[b.id]).toBe(500 + 300 + 300 + 200);
    // Retained junk off the broker for the next test.
    for (const liar of liars) await client.publishAsync(`${prefix}/${liar}/vv`, Buffer.alloc(0), { qos: 1, retain: true });
    await client.endAsync();
    await stop(a);
    await stop(b);
  }, 300_000);

  test("repair requests in a victim's name: answers stay within the requester's byte rate, a real replica is sent only what it lacks, honest catch-up goes on", async () => {
    const dir = temp_dir();
    const rate = 256 * 1024;
    const burst = 4 * 1024 * 1024;
    const limits = `  answer_rate_per_requester: 256KiB\n  answer_burst_per_requester: 4MiB\n`;
    const a = await serve(config(dir, "a", limits));
    await append(a, 32_000, 256, "a"); // about 8.5 MB of events
    const victim = id(0x7777_0001);
    const client = await flooder("mallory-2");
    let received = 0;
    const to_victim = `${prefix}/${a.id}/to/${victim}`;
    client.on("message", (topic, payload) => {
      if (topic === to_victim) received += payload.length;
    });
    await client.subscribeAsync(to_victim, { qos: 1 });
    // An honest replica starts from nothing at the same time.
    const b = await serve(config(dir, "b", limits));
    const want = (to: string, from: string, req: number, after: number) =>
      Buffer.from(encode_message({ kind: "want", from, to, req, max_bytes: 64 * 1024 * 1024, ranges: [{ origin: a.id, after, upto: 32_000 }] }));
    const start = performance.now();
    for (let req = 1; performance.now() - start < 6000; req++) {
      await client.publishAsync(`${prefix}/${victim}/want/${a.id}`, want(a.id, victim, req, (req * 997) % 31_000), { qos: 1 });
      await Bun.sleep(20);
    }
    await Bun.sleep(1000);
    const seconds = (performance.now() - start) / 1000;
    const allowed = burst + rate * seconds + 128 * 1024;
    console.log(`forged requests: ${received} answer bytes to the named requester in ${seconds.toFixed(1)} s (allowed ${allowed.toFixed(0)})`);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(allowed);
    // The honest replica got everything anyway (its own budget), within its burst plus its rate.
    await wait_until("b to catch up with a", async () => (await status(b)).status.vv[a.id] === 32_000, 120_000);
    // Requests in b's name now: its own vv says it holds everything, so nothing is sent again.
    let to_b = 0;
    const b_topic = `${prefix}/${a.id}/to/${b.id}`;
    client.on("message", (topic, payload) => {
      if (topic === b_topic) to_b += payload.length;
    });
    await client.subscribeAsync(b_topic, { qos: 1 });
    for (let req = 1; req <= 50; req++) {
      await client.publishAsync(`${prefix}/${b.id}/want/${a.id}`, want(a.id, b.id, 1_000_000 + req, 0), { qos: 1 });
      await Bun.sleep(20);
    }
    await Bun.sleep(1000);
    console.log(`forged requests in a caught-up replica's name: ${to_b} answer bytes`);
    expect(to_b).toBeLessThan(50 * 200);
    const metrics = await (await a.fetch("/metrics")).text();
    expect(metrics).toMatch(/interlog_sync_messages_dropped_total\{reason="(answer_rate|want_repeated)"\} [1-9]/);
    await client.endAsync();
    await stop(a);
    await stop(b);
  }, 300_000);
});
