import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { load_config } from "../../src/config/load.ts";
import { ReplicaNode } from "../../src/node.ts";
import { type AnswerMessage, type WantMessage, decode_message } from "../../src/sync/messages.ts";
import { Topics } from "../../src/sync/topics.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * Issue 13 against the real parts: replicas wired from YAML by node.ts (the
 * same as `interlog serve`) on real files, syncing through a real mosquitto.
 * A device with a 4 MiB budget of 1 MiB segments records continuously while
 * a hub pulls it: it prunes only what the hub holds and never refuses an
 * append. A replica that joins later asks the device for events it pruned,
 * is told they are gone, and gets them from the hub; a client watching the
 * broker counts the requests, which stay bounded.
 */

const prefix = "e2e-retention";
const topics = new Topics(prefix);
const MiB = 1024 * 1024;
let broker: Mosquitto;
const running: ReplicaNode[] = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
});

afterEach(async () => {
  for (const node of running.splice(0)) await node.stop().catch(() => 0);
});

afterAll(async () => {
  await broker.stop();
});

async function start(dir: string, name: string, extra = ""): Promise<ReplicaNode> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `name: ${name}\ndata_dir: ${path.join(dir, name)}\nlog:\n  segment_size: 1MiB\n  sync: always\nmqtt:\n  url: ${broker.url}\n  prefix: ${prefix}\nadmin:\n  listen: 127.0.0.1:0\n${extra}`,
  );
  const lines: string[] = [];
  const node = await ReplicaNode.start(load_config(file, {}), (level, msg) => {
    if (level !== "info") lines.push(`${level}: ${msg}`);
  });
  running.push(node);
  return node;
}

async function wait_until(what: string, ok: () => boolean, timeout_ms = 60_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await Bun.sleep(50);
  }
}

/** A client that records every repair request and answer on the broker (what any subscriber of the prefix sees). */
async function watch_requests(): Promise<{ client: MqttClient; wants: WantMessage[]; answers: AnswerMessage[] }> {
  const client = mqtt.connect(broker.url, { clientId: `watcher-${process.pid}`, protocolVersion: 5, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  const seen = { client, wants: [] as WantMessage[], answers: [] as AnswerMessage[] };
  client.on("message", (topic, payload) => {
    const parsed = topics.parse(topic);
    if (parsed === null) return;
    const m = decode_message(new Uint8Array(payload), parsed);
    if (m.kind === "want") seen.wants.push(m);
    if (m.kind === "to") seen.answers.push({ ...m, events: new Uint8Array(0) });
  });
  await client.subscribeAsync([`${prefix}/+/want/+`, `${prefix}/+/to/+`], { qos: 1 });
  return seen;
}

/** Payloads of origin's events held, from the first held one. */
function payloads(node: ReplicaNode, origin: string, after = 0): string[] {
  return [...node.log.events_after(origin, after)].map((e) => new TextDecoder().decode(e.payload));
}

describe("retention with sync through mosquitto", () => {
  test("the device prunes only what the hub holds; a late replica told the pruned events are gone gets them from the hub, without asking in a loop", async () => {
    const dir = temp_dir("retention-e2e-");
    const hub = await start(dir, "hub", "replication:\n  pull: [\"*\"]\n");
    // The device's upstream is the hub alone: a replica joining later must not hold its pruning back.
    const device = await start(dir, "device", `retention:\n  max_bytes: 4MiB\n  policy: drop-acked\n  upstreams: ["${hub.log.id}"]\n  reserve_own: 1MiB\n`);
    const me = device.log.id;
    expect(device.log.retention_status()).toMatchObject({ policy: "drop-acked", max_bytes: 4 * MiB, reserve_own_bytes: MiB });
    let written = 0;
    let refused: string | null = null;
    let checks = 0;
    /** Writes a lot of 1 KiB events and checks what the device pruned against what the hub holds. */
    const record_lot = async (pause_ms = 5): Promise<void> => {
      const lot: Uint8Array[] = [];
      for (let i = 0; i < 64; i++) lot.push(new TextEncoder().encode(`event ${++written} `.padEnd(1024, ".")));
      try {
        device.log.append_batch(lot);
        await device.log.durable();
      } catch (err) {
        refused ??= `${(err as { code?: string }).code}: ${(err as Error).message}`;
        written -= lot.length;
      }
      // Nothing the hub lacks was ever pruned (the hub's holdings only grow, so this holds whenever it is checked).
      expect(device.log.pruned_through(me)).toBeLessThanOrEqual(hub.log.durable_held(me));
      expect(device.log.retention_status().pruned.unacked_events).toBe(0);
      checks++;
      await Bun.sleep(pause_ms);
    };
    // About 12 MiB recorded through a 4 MiB budget while the hub keeps up.
    const total = 64 * 188;
    const deadline = Date.now() + 90_000;
    while (written < total && Date.now() < deadline) await record_lot();
    expect(refused).toBeNull();
    expect(written).toBe(total);
    await wait_until("the hub holds every device event", () => hub.log.durable_held(me) === device.log.durable_held(me));
    await wait_until("the device prunes what the hub acknowledged", () => device.log.retention_status().pruned.segments >= 6, 30_000);
    // The hub's acknowledgement (its vv, rate-limited) follows its last events: until it arrives, pruning may be held back by it.
    await wait_until("nothing blocks pruning once the hub's vv arrived", () => device.log.retention_status().blocked === null, 30_000);
    const status = device.log.retention_status();
    expect(status.pruned.acked_events).toBeGreaterThan(5000);
    expect(status.pruned.unacked_events).toBe(0);
    expect(status.used_bytes).toBeLessThanOrEqual(4 * MiB + MiB); // a rotation may run one segment over while pruning catches up
    expect(status.blocked).toBeNull();
    expect(hub.log.held(me)).toBe(total);
    const floor = device.log.pruned_through(me);
    expect(floor).toBeGreaterThan(0);
    // The hub keeps the whole history, in order.
    expect(payloads(hub, me).length).toBe(total);

    // A replica joins: the device claims the most of its own events and is asked first.
    const watcher = await watch_requests();
    try {
      const late = await start(dir, "late", "replication:\n  pull: [\"*\"]\n");
      // The device keeps recording meanwhile (about 0.6 MB/s, a rate the late replica's catch-up outruns even in a
      // process slowed by the tests before it), and never refuses an append.
      while (late.log.held(me) < device.log.durable_held(me) && Date.now() < deadline + 60_000) await record_lot(100);
      await wait_until("the late replica holds every device event", () => late.log.durable_held(me) === device.log.durable_held(me));
      expect(refused).toBeNull();
      // What it holds is the device's history, the pruned part included (it came from the hub).
      expect(payloads(late, me)).toEqual(payloads(hub, me));
      expect(payloads(late, me).length).toBe(written);
      // The device answered the request below its floor with gone, and served nothing of it. It keeps pruning while
      // it records: when that outpaces a slowed catch-up (run after the cluster tests in one process, at 8503cf3 as
      // now), the late replica, past the first floor, asks it again below the new one and is told again; never more
      // than a few times.
      const to_device = watcher.wants.filter((w) => w.from === late.log.id && w.to === me);
      const below_floor = to_device.filter((w) => w.ranges.some((r) => r.origin === me && r.after < floor));
      expect(below_floor.length).toBe(1);
      const gone = watcher.answers.filter((a) => a.from === me && a.to === late.log.id && a.gone !== undefined && a.gone !== null);
      expect(gone.length).toBeGreaterThanOrEqual(1);
      expect(gone.length).toBeLessThanOrEqual(3);
      expect(gone.length).toBeLessThanOrEqual(to_device.length);
      for (const [i, answer] of gone.entries()) {
        expect(answer.gone?.get(me)).toBeGreaterThanOrEqual(i === 0 ? floor : (gone[i - 1].gone?.get(me) ?? 0));
      }
      // The rest came from the hub, without a loop: each request to a peer asks from where the last left off or further
      // (one that timed out may be asked once more), never going back. Answers may come short of a window while the
      // device's live pushes and the hub's answers interleave: 5-6 requests alone, 11-15 after the cluster tests, the
      // same at 8503cf3 and now, so the count is bounded by the device's lots (64 events), not by windows.
      const late_wants = watcher.wants.filter((w) => w.from === late.log.id);
      for (const peer of new Set(late_wants.map((w) => w.to))) {
        const afters = late_wants.filter((w) => w.to === peer).map((w) => w.ranges.find((r) => r.origin === me)?.after ?? -1);
        expect(afters).toEqual([...afters].sort((x, y) => x - y));
        expect(afters.filter((after) => afters.filter((a) => a === after).length > 2)).toEqual([]);
      }
      expect(late_wants.length).toBeLessThanOrEqual(Math.ceil(written / 64));
      const counters = late.replicator?.status(Date.now()).counters;
      expect(counters?.ranges_gone_received).toBe(gone.length);
      // At most one request may come back with nothing new when the device's pruning races a slowed catch-up (once in
      // a clean-clone CI run after the cluster tests); a loop would show many.
      expect(counters?.wants_unproductive).toBeLessThanOrEqual(1);
      expect(late.replicator?.status(Date.now()).unavailable).toEqual([]);
      expect(device.replicator?.status(Date.now()).counters.ranges_gone_sent).toBe(gone.length);
      expect(checks).toBeGreaterThan(0);
      // Events no peer could supply would be counted in the metrics; here there are none.
      const metrics = await (await fetch(`${late.admin.url}/metrics`)).text();
      expect(metrics).toContain('interlog_sync_messages_dropped_total{reason="event_unavailable"} 0');
    } finally {
      await watcher.client.endAsync();
    }
  }, 240_000);
});
