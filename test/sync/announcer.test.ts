import { describe, expect, test } from "bun:test";
import { Log, type SyncMode } from "../../src/log/log.ts";
import { Announcer } from "../../src/sync/announcer.ts";
import { type EntryMessage, type SyncMessage, type VvMessage, decode_message, encode_message } from "../../src/sync/messages.ts";
import { Peer } from "../../src/sync/peers.ts";
import { type Outbound, type ReplicatorOptions, resolve_sync_options } from "../../src/sync/sync_options.ts";
import { Topics } from "../../src/sync/topics.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { many_origins, mem_log, write_range } from "../support/forgery.ts";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
// Origins whose events a log here holds are real (signed events of their own key); one never held may be any id.
const writer_a = await mem_log({ clock: { now_ms: () => 1 } });
const writer_b = await mem_log({ clock: { now_ms: () => 1 } });
const origin_a = writer_a.id;
const origin_b = writer_b.id;
const a1 = write_range(writer_a, "a1");
const b1 = write_range(writer_b, "b1");
const never_held = "00000000000000c3";

/** A log on an in-memory disk; with sync "interval", events become durable only when the test calls fsync(). */
async function open_log(sync: SyncMode = "always"): Promise<{ log: Log; fsync: () => void }> {
  const timers = new ManualTimers();
  const log = await Log.open({ dir: "/data", io: new MemFileIO(), sync, segment_size_bytes: 1024 * 1024, clock: { now_ms: () => 1 }, timers });
  return { log, fsync: () => timers.fire_every() };
}

/** An announcer whose publications are encoded and decoded again: the test sees what a subscriber would. */
function announcer_for(log: Log, options: Partial<ReplicatorOptions> = {}, peers: Peer[] = []) {
  const settings = resolve_sync_options({ prefix: "t", ...options, log });
  const topics = new Topics("t");
  const warnings: string[] = [];
  settings.on_warning = (message) => warnings.push(message);
  const seen: { topic: string; message: SyncMessage; bytes: number; at_ms: number }[] = [];
  let now = 0;
  const announcer = new Announcer(
    {
      log,
      topics,
      pulls: (origin) => origin !== log.id && (settings.pull_set === null || settings.pull_set.has(origin)),
      publish: (out: Outbound[], topic: string, m: VvMessage | EntryMessage) => {
        const payload = encode_message(m);
        out.push({ topic, payload, retain: true, qos: 1 });
        const parsed = topics.parse(topic);
        if (parsed === null) throw new Error(`unparseable topic ${topic}`);
        seen.push({ topic, message: decode_message(payload, parsed), bytes: payload.length + topic.length, at_ms: now });
      },
    },
    settings,
  );
  const at = (now_ms: number): number => {
    now = now_ms;
    return now_ms;
  };
  // What the replicator does as each peer's vv arrives.
  for (const peer of peers) announcer.peer_pull_changed(peer, null, peer.pull);
  const vvs = () => seen.filter((s) => s.message.kind === "vv").map((s) => ({ at_ms: s.at_ms, vv: (s.message as VvMessage).vv }));
  const entries = () => seen.filter((s) => s.message.kind === "entry").map((s) => ({ at_ms: s.at_ms, ...(s.message as EntryMessage) }));
  return { announcer, settings, seen, warnings, at, vvs, entries };
}

describe("vv publication", () => {
  test("a vv that changes every ms is published at most every vv_interval_ms, and still published", async () => {
    const { log } = await open_log();
    const a = announcer_for(log, { vv_interval_ms: 200 });
    a.announcer.publish_all([], a.at(0));
    for (let t = 1; t <= 1000; t++) {
      log.append(enc(`e${t}`));
      await log.durable();
      a.announcer.maybe_publish([], a.at(t));
    }
    const times = a.vvs().map((v) => v.at_ms);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(200);
    expect(times).toEqual([0, 200, 400, 600, 800, 1000]);
    // The last one carries the latest durable seq.
    expect(a.vvs().at(-1)?.vv.get(log.id)).toBe(1000);
  });

  test("a vv listing many origins waits vv_ms_per_origin per origin between publications", async () => {
    const { log } = await open_log();
    const origins = await many_origins(500);
    expect(log.accept_frames(origins.frames).appended).toBe(500);
    await log.durable();
    const a = announcer_for(log, { vv_interval_ms: 200, vv_ms_per_origin: 2 });
    a.announcer.publish_all([], a.at(0));
    for (let t = 10; t <= 3000; t += 10) {
      log.append(enc(`e${t}`));
      await log.durable();
      a.announcer.maybe_publish([], a.at(t));
    }
    const times = a.vvs().map((v) => v.at_ms);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(1000);
    // 500 origins, then 501 once the own one appears: 1000 ms, then 1002 ms (ticks every 10 ms).
    expect(times).toEqual([0, 1000, 2010]);
  });

  test("an unchanged vv is republished every vv_refresh_ms, so a lost one is made good", async () => {
    const { log } = await open_log();
    const a = announcer_for(log, { vv_refresh_ms: 1000 });
    a.announcer.publish_all([], a.at(0));
    for (let t = 100; t <= 3500; t += 100) a.announcer.maybe_publish([], a.at(t));
    expect(a.vvs().map((v) => v.at_ms)).toEqual([0, 1000, 2000, 3000]);
  });

  test("events not yet durable are not announced, in the vv nor in entries", async () => {
    const { log, fsync } = await open_log("interval");
    const a = announcer_for(log, { vv_interval_ms: 10 });
    log.append(enc("not yet on disk"));
    a.announcer.publish_all([], a.at(0));
    a.announcer.maybe_publish([], a.at(100));
    expect(a.vvs().every((v) => (v.vv.get(log.id) ?? 0) === 0)).toBe(true);
    expect(a.entries()).toEqual([]);
    fsync();
    await log.durable();
    a.announcer.maybe_publish([], a.at(200));
    expect(a.vvs().at(-1)?.vv.get(log.id)).toBe(1);
    expect(a.entries().map((e) => [e.origin, e.seq])).toEqual([[log.id, 1]]);
  });

  test("a vv with more origins than fit in one message keeps the own entry, fits the packet and warns once", async () => {
    const { log } = await open_log();
    const origins = await many_origins(400);
    expect(log.accept_frames(origins.frames).appended).toBe(400);
    log.append(enc("own"));
    await log.durable();
    const a = announcer_for(log, { max_packet_bytes: 4096, vv_refresh_ms: 1000 });
    a.announcer.publish_all([], a.at(0));
    a.announcer.maybe_publish([], a.at(5000));
    const vvs = a.vvs();
    expect(vvs.length).toBe(2);
    for (const v of vvs) {
      expect(v.vv.size).toBe(a.settings.vv_entries_per_message_max);
      expect(v.vv.get(log.id)).toBe(1);
    }
    for (const s of a.seen) expect(s.bytes).toBeLessThanOrEqual(4096);
    expect(a.warnings.length).toBe(1);
  });
});

describe("vv entries", () => {
  test("a partial replica publishes entries for what it holds of its pull list, never for origins it has not held", async () => {
    const { log } = await open_log();
    expect(log.accept_frames(a1).appended).toBe(1);
    log.append(enc("own"));
    await log.durable();
    const a = announcer_for(log, { pull: [origin_a, never_held] });
    a.announcer.publish_all([], a.at(0));
    expect(a.entries().map((e) => [e.origin, e.seq, e.pulls])).toEqual([
      [log.id, 1, true],
      [origin_a, 1, true],
    ]);
  });

  test("a full replica publishes entries only for what known partial peers follow, and only origins it holds", async () => {
    const { log } = await open_log();
    expect(log.accept_frames(new Uint8Array(Buffer.concat([a1, b1]))).appended).toBe(2);
    await log.durable();
    const spoke = new Peer("00000000000000d4");
    spoke.pull = new Set([origin_a, never_held]);
    const hub = new Peer("00000000000000e5");
    hub.pull = "*";
    const a = announcer_for(log, {}, [spoke, hub]);
    a.announcer.publish_all([], a.at(0));
    // The spoke holds nothing yet, b is followed by nobody, never_held is held by nobody here, nothing own is held.
    expect(a.entries().map((e) => e.origin)).toEqual([origin_a]);
  });

  test("entries are republished when they change or a refresh is due, no more often than vv_interval_ms", async () => {
    const { log } = await open_log();
    log.append(enc("own-1"));
    await log.durable();
    const a = announcer_for(log, { pull: [origin_a], vv_interval_ms: 200, vv_refresh_ms: 10_000 });
    a.announcer.publish_all([], a.at(0));
    expect(a.entries().length).toBe(1);
    log.append(enc("own-2"));
    await log.durable();
    a.announcer.maybe_publish([], a.at(100)); // too soon
    expect(a.entries().length).toBe(1);
    a.announcer.maybe_publish([], a.at(200));
    expect(a.entries().map((e) => [e.at_ms, e.seq])).toEqual([
      [0, 1],
      [200, 2],
    ]);
    a.announcer.maybe_publish([], a.at(5000)); // unchanged: nothing
    expect(a.entries().length).toBe(2);
    a.announcer.maybe_publish([], a.at(10_200)); // refresh: everything again
    expect(a.entries().map((e) => [e.at_ms, e.seq])).toEqual([
      [0, 1],
      [200, 2],
      [10_200, 2],
    ]);
  });
});
