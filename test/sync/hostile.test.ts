import { describe, expect, test } from "bun:test";
import { frame_header_bytes, frame_size_of_len, without_local_marks } from "../../src/log/frame.ts";
import type { DropReason } from "../../src/sync/counters.ts";
import { type AnswerMessage, type WantMessage, decode_message, encode_message, protocol_version } from "../../src/sync/messages.ts";
import { DecodedEvents, decode_events, encode_frames, event_region_max_bytes } from "../../src/sync/wire_events.ts";
import { forge, make_events, overflow_events } from "../sim/hostile.ts";
import { forge_payload, frames_of_log, mem_log, relabel, write_range } from "../support/forgery.ts";
import { for_seeds } from "../support/seeded.ts";
import { TestNet, type TestNode, dec, enc } from "./net.ts";

const evil = "00000000000000ee";

/** Has evil claim a's events beyond what b holds, so b sends evil a repair request; returns its req. */
function asked_of_evil(net: TestNet, a: TestNode, b: TestNode): number {
  const claim = encode_message({ kind: "vv", from: evil, name: "e", vv: new Map([[a.id, b.log.held(a.id) + 1]]), pull: "*" });
  net.now += 1;
  const out = [...b.rep.on_message(`t/${evil}/vv`, claim, net.now), ...b.rep.tick(net.now)];
  const want = out.find((o) => o.topic === `t/${b.id}/want/${evil}`);
  if (want === undefined) throw new Error("b did not ask evil");
  const parsed = net.topics.parse(want.topic);
  return (decode_message(want.payload, parsed as NonNullable<typeof parsed>) as WantMessage).req;
}

async function victim_with_history(): Promise<{ net: TestNet; a: TestNode; b: TestNode }> {
  const net = new TestNet();
  const a = await net.add({ max_packet_bytes: 8192 });
  const b = await net.add({ max_packet_bytes: 8192 });
  net.connect(a);
  net.connect(b);
  for (let i = 1; i <= 10; i++) a.log.append(enc(`a-${i}`));
  await net.run();
  expect(b.log.held(a.id)).toBe(10);
  return { net, a, b };
}

/** b still works: its data is intact and it keeps syncing with the honest a. */
async function still_healthy(net: TestNet, a: TestNode, b: TestNode): Promise<void> {
  for (let i = 11; i <= 20; i++) a.log.append(enc(`a-${i}`));
  await net.run();
  expect([...b.log.events_after(a.id, 0)].map((e) => dec(e.payload))).toEqual(Array.from({ length: 20 }, (_, i) => `a-${i + 1}`));
  expect(b.log.verify().ok).toBe(true);
  expect(Object.keys(b.log.vv())).toEqual([a.id]);
}

describe("hostile input", () => {
  test("each kind of bad message on each topic a replica listens on is dropped and counted by reason", async () => {
    const { net, a, b } = await victim_with_history();
    const me = b.id;
    const base = { from: evil };
    const cases: { topic: string; payload: Uint8Array; reason: DropReason }[] = [];
    const topics = {
      vv: `t/${evil}/vv`,
      entry: `t/${evil}/vv/${me}`,
      status: `t/${evil}/status`,
      events: `t/${evil}/events`,
      want: `t/${evil}/want/${me}`,
      to: `t/${evil}/to/${me}`,
    };
    const valid: Record<keyof typeof topics, Uint8Array> = {
      vv: encode_message({ kind: "vv", from: evil, name: "e", vv: new Map([[evil, 3]]), pull: "*" }),
      entry: encode_message({ kind: "entry", from: evil, name: "e", origin: me, seq: 3, pulls: true }),
      status: encode_message({ kind: "status", from: evil, online: true, session: 1 }),
      events: encode_message({ kind: "events", from: evil, events: make_events(evil, 1, enc("x")), part: null }),
      want: encode_message({ kind: "want", from: evil, to: me, req: 1, max_bytes: 1000, ranges: [{ origin: a.id, after: 0, upto: 5 }] }),
      to: encode_message({ kind: "to", from: evil, to: me, req: 1, events: new Uint8Array(0), part: null, last: true, held: null }),
    };
    for (const kind of Object.keys(topics) as (keyof typeof topics)[]) {
      const topic = topics[kind];
      cases.push({ topic, payload: new Uint8Array([0xff, 0x00, 0x13, 0x37, 0xde, 0xad]), reason: "unknown_version" });
      cases.push({ topic, payload: new Uint8Array([protocol_version, valid[kind][1], 3, 0, 0, 0, 0xff, 0x00, 0x13]), reason: "bad_cbor" });
      cases.push({ topic, payload: valid[kind].subarray(0, 8), reason: "bad_cbor" });
      cases.push({ topic, payload: valid[kind].subarray(0, 3), reason: "bad_cbor" });
      cases.push({ topic, payload: forge(kind, base, null, 1), reason: "unknown_version" });
      cases.push({ topic, payload: new Uint8Array(8192 + 1), reason: "oversize" });
      cases.push({ topic, payload: forge(kind, { from: a.id }), reason: "impersonation" });
      cases.push({ topic, payload: forge(kind === "vv" ? "status" : "vv", base), reason: "bad_shape" });
      cases.push({ topic, payload: forge(kind, [1, 2, 3]), reason: "bad_cbor" });
    }
    cases.push({ topic: `t/not-an-id/vv`, payload: valid.vv, reason: "bad_topic" });
    cases.push({ topic: `t/${evil}/want/${a.id}`, payload: valid.want, reason: "not_for_me" });
    cases.push({ topic: `t/${me}/vv`, payload: valid.vv, reason: "own_echo" });
    // Answers are read only from a peer that was asked, to the request outstanding: the frame checks below are reached with that req.
    const req = asked_of_evil(net, a, b);
    cases.push({ topic: topics.to, payload: forge("to", { ...base, to: me, req: req + 1 }, make_events(a.id, 11, enc("x"))), reason: "unsolicited_answer" });
    cases.push({ topic: topics.to, payload: forge("to", { ...base, to: me, req }, make_events(evil, 1, enc("x"))), reason: "unsolicited_answer" });
    const to = { ...base, to: me, req };
    const bad_crc = make_events(a.id, 11, enc("forged"));
    bad_crc[bad_crc.length - 1] ^= 0x40;
    cases.push({ topic: topics.to, payload: forge("to", to, bad_crc), reason: "bad_frame" });
    cases.push({ topic: topics.to, payload: forge("to", to, overflow_events(a.id, enc("x"))), reason: "seq_overflow" });
    const whole = make_events(a.id, 11, enc("xyz"));
    for (let cut = 1; cut < whole.length; cut++) cases.push({ topic: topics.to, payload: forge("to", to, whole.subarray(0, cut)), reason: "bad_frame" });
    const bad_flags = make_events(a.id, 11, enc("x"));
    bad_flags[20 + 1 + 4] |= 0x10;
    cases.push({ topic: topics.to, payload: forge("to", to, bad_flags), reason: "bad_frame" });
    // A receiver's own mark (rejected) never travels: a wire flag of 2 is not in the format.
    const rejected_flag = make_events(a.id, 11, enc("x"));
    rejected_flag[20 + 1 + 4] |= 0x02;
    cases.push({ topic: topics.to, payload: forge("to", to, rejected_flag), reason: "bad_frame" });
    cases.push({ topic: topics.to, payload: forge("to", to, new Uint8Array(20)), reason: "bad_frame" });
    cases.push({ topic: topics.events, payload: forge("events", base, make_events(a.id, 11, enc("x"))), reason: "wrong_origin" });
    cases.push({ topic: topics.events, payload: forge("events", { ...base, part: [5, 3, 1] }, make_events(evil, 1, enc("x"))), reason: "bad_part" });
    // A "fragmented range" larger than any signed range can be: refused, so it cannot inflate the reassembly's memory.
    cases.push({ topic: topics.to, payload: forge("to", { ...to, part: [0, event_region_max_bytes + 1, 9] }, new Uint8Array(2048)), reason: "bad_part" });
    // Tiny fragments (all but the last must be at least 1 KiB).
    cases.push({ topic: topics.to, payload: forge("to", { ...to, part: [0, 5000, 9] }, enc("x")), reason: "bad_part" });
    cases.push({ topic: topics.vv, payload: forge("vv", { ...base, name: "e", vv: new Uint8Array(0), pull: "*" }, enc("trailing")), reason: "bad_shape" });
    cases.push({ topic: topics.entry, payload: forge("entry", { ...base, name: "e", seq: 2n ** 63n, pulls: true }), reason: "seq_overflow" });
    cases.push({ topic: topics.entry, payload: forge("entry", { ...base, name: "e", seq: -1, pulls: true }), reason: "bad_shape" });
    const huge_range = new Uint8Array(24);
    new DataView(huge_range.buffer).setUint32(20, 0xffffffff, true);
    new DataView(huge_range.buffer).setUint32(4, 1, true);
    cases.push({ topic: topics.want, payload: forge("want", { ...base, to: me, req: 3, max: 100, ranges: huge_range }), reason: "seq_overflow" });
    cases.push({ topic: topics.to, payload: forge("to", { ...to, part: "not a part" }), reason: "bad_shape" });

    const held_before = b.log.count;
    for (const c of cases) {
      const before = b.rep.counters.dropped[c.reason];
      expect(() => b.rep.on_message(c.topic, c.payload, net.now)).not.toThrow();
      const after = b.rep.counters.dropped[c.reason];
      if (after !== before + 1) throw new Error(`expected ${c.reason} for ${c.topic}: ${JSON.stringify(b.rep.counters.dropped)}`);
    }
    expect(b.log.count).toBe(held_before);
    await still_healthy(net, a, b);
  });

  test("random and mutated messages never crash a replica nor corrupt its log", async () => {
    await for_seeds(20, async (rng) => {
      const { net, a, b } = await victim_with_history();
      const captured = a.sent.map((s) => s.topic.replace(a.id, evil));
      const payloads = a.sent.map((s) => encode_message(s.message));
      for (let i = 0; i < 300; i++) {
        const k = rng.int(0, payloads.length - 1);
        const topic = rng.chance(0.2) ? rng.pick(b.rep.subscriptions()).replace("+", evil) : captured[k].replace(/\/(want|to)\/[0-9a-f]{16}$/, `/$1/${b.id}`);
        let payload: Uint8Array = payloads[k].slice();
        const mutation = rng.int(0, 3);
        if (mutation === 0) payload = rng.bytes(rng.int(0, 200));
        else if (mutation === 1) payload = payload.subarray(0, rng.int(0, payload.length));
        else for (let f = rng.int(1, 4); f > 0; f--) payload[rng.int(0, payload.length - 1)] ^= 1 << rng.int(0, 7);
        b.rep.on_message(topic, payload, net.now);
      }
      const dropped = Object.values(b.rep.counters.dropped).reduce((x, y) => x + y, 0);
      expect(dropped).toBeGreaterThan(100);
      await still_healthy(net, a, b);
    });
  });
});

/**
 * Answers a replica did not ask for, and crc-valid forgeries of signed
 * events, through real replicas: an origin a, a relay m that holds a's next
 * event (and may be compromised: its answers are rewritten on the way out),
 * and a victim b that lacks it and can get it only from m.
 */
describe("forged and unsolicited answers", () => {
  async function relay_setup(): Promise<{ net: TestNet; a: TestNode; m: TestNode; b: TestNode }> {
    const net = new TestNet();
    const a = await net.add();
    const m = await net.add();
    const b = await net.add();
    for (const n of [a, m, b]) net.connect(n);
    for (let i = 1; i <= 10; i++) a.log.append(enc(`a-${i}`));
    await net.run();
    expect(b.log.held(a.id)).toBe(10);
    net.disconnect(b);
    a.log.append(enc("a-11"));
    await net.run();
    expect(m.log.held(a.id)).toBe(11);
    net.disconnect(a); // from now on only m can serve a:11
    return { net, a, m, b };
  }

  /** Rewrites the frames an answer message carries (decoded to the frames as their origin stored them, then encoded again). */
  function rewrite_answer(net: TestNet, topic: string, payload: Uint8Array, change: (frames: Uint8Array) => Uint8Array): Uint8Array {
    const parsed = net.topics.parse(topic);
    const message = decode_message(payload, parsed as NonNullable<typeof parsed>) as AnswerMessage;
    const d = new DecodedEvents();
    decode_events(message.events, d);
    const last = d.count - 1;
    const end = d.start[last] - frame_header_bytes + frame_size_of_len(frame_header_bytes + d.end[last] - d.start[last]);
    return encode_message({ ...message, events: encode_frames(change(d.frames.slice(0, end))) });
  }

  /** Makes m's first answer to b that carries events go out changed; returns how many were changed. */
  function compromise(net: TestNet, m: TestNode, b: TestNode, change: (frames: Uint8Array) => Uint8Array): () => number {
    let changed = 0;
    m.tamper_out = (topic, payload) => {
      if (changed > 0 || topic !== `t/${m.id}/to/${b.id}`) return payload;
      const parsed = net.topics.parse(topic);
      const message = decode_message(payload, parsed as NonNullable<typeof parsed>) as AnswerMessage;
      if (message.events.length === 0 || message.part !== null) return payload;
      changed++;
      return rewrite_answer(net, topic, payload, change);
    };
    return () => changed;
  }

  /** Steps the network until `done` (at most `steps` steps). */
  async function until(net: TestNet, done: () => boolean, steps = 500): Promise<void> {
    for (let i = 0; i < steps && !done(); i++) await net.step();
    expect(done()).toBe(true);
  }

  test("a crc-valid forgery of another origin's next event in an answer is dropped as bad_signature and never stored; the real event still arrives", async () => {
    const { net, a, m, b } = await relay_setup();
    const real_11 = frames_of_log(a.log, a.id, 10, 11);
    // The relay changes one payload byte of a:11 and recomputes the crc: every frame check passes.
    const changed = compromise(net, m, b, (frames) => {
      expect(frames).toEqual(real_11);
      const forged = forge_payload(frames);
      expect(forged).not.toEqual(frames);
      return forged;
    });
    net.connect(b);
    await until(net, () => changed() === 1 && b.rep.counters.events_dropped.bad_signature > 0);
    expect(b.rep.counters.events_dropped.bad_signature).toBe(1);
    expect(b.rep.counters.dropped.bad_frame).toBe(0);
    expect(b.log.held(a.id)).toBe(10);
    expect(b.log.get(a.id, 11)).toBeNull();
    expect(b.rep.status(net.now).gap_buffer_events).toBe(0);
    // The relay's next answer is honest: the real event arrives, and the forgery never was stored.
    await net.run();
    expect(b.log.held(a.id)).toBe(11);
    expect(dec((b.log.get(a.id, 11) as NonNullable<ReturnType<typeof b.log.get>>).payload)).toBe("a-11");
    expect(without_local_marks((b.log.get(a.id, 11) as NonNullable<ReturnType<typeof b.log.get>>).frame)).toEqual(real_11);
    expect(b.rep.counters.events_dropped.bad_signature).toBe(1);
    expect(b.rep.counters.conflicts).toBe(0);
    expect(b.log.verify().ok).toBe(true);
  });

  test("an answer from a peer that was not asked, or to another request, or with origins not asked of it, is dropped as unsolicited_answer, even with real signed events", async () => {
    const { net, a, m, b } = await relay_setup();
    net.connect(b);
    await net.run();
    expect(b.log.held(a.id)).toBe(11);
    // a writes on while offline; the test holds its real, signed frame of a:12.
    a.log.append(enc("a-12"));
    const real_12 = encode_frames(frames_of_log(a.log, a.id, 11, 12));
    const to_b = `t/${m.id}/to/${b.id}`;
    const answer = (req: number, events: Uint8Array) => encode_message({ kind: "to", from: m.id, to: b.id, req, events, part: null, last: true, held: null });
    // No request out to m: not taken.
    expect(b.rep.status(net.now).peers.find((p) => p.id === m.id)?.want_outstanding).toBe(false);
    const dropped = () => b.rep.counters.dropped.unsolicited_answer;
    net.inject(to_b, answer(1, real_12));
    await net.step();
    expect(dropped()).toBe(1);
    expect(b.log.held(a.id)).toBe(11);
    // m gets a:12; b asks m for it, and m's answers are lost on the way: the request stays out.
    m.drop_out = (topic) => topic === to_b;
    expect(m.log.accept_frames(frames_of_log(a.log, a.id, 11, 12)).appended).toBe(1);
    const wants_before = b.sent.filter((s) => s.topic === `t/${b.id}/want/${m.id}`).length;
    await until(net, () => b.sent.filter((s) => s.topic === `t/${b.id}/want/${m.id}`).length > wants_before);
    const want = b.sent.filter((s) => s.topic === `t/${b.id}/want/${m.id}`).at(-1)?.message as WantMessage;
    expect(want.ranges.map((r) => [r.origin, r.after])).toEqual([[a.id, 11]]);
    // Another req: not taken.
    net.inject(to_b, answer(want.req + 1, real_12));
    await net.step();
    expect(dropped()).toBe(2);
    // The right req, but also events of an origin b did not ask m for (real and signed, too): not taken, not even a's.
    const c = await mem_log();
    const other = encode_frames(write_range(c, "c-1"));
    net.inject(to_b, answer(want.req, new Uint8Array(Buffer.concat([real_12, other]))));
    await net.step();
    expect(dropped()).toBe(3);
    expect(b.log.held(a.id)).toBe(11);
    expect(b.log.held(c.id)).toBe(0);
    // Once m's answers get through again, a:12 comes from it.
    m.drop_out = null;
    await net.run();
    expect(b.log.held(a.id)).toBe(12);
    expect(dec((b.log.get(a.id, 12) as NonNullable<ReturnType<typeof b.log.get>>).payload)).toBe("a-12");
    expect(b.log.held(c.id)).toBe(0);
    expect(b.log.verify().ok).toBe(true);
    await c.close();
  });

  test("a signed range relabelled with another origin's id is dropped as unknown_key, whether that origin's key is pinned or not", async () => {
    const { net, a, m, b } = await relay_setup();
    // c signs a range at seq 11, the seq b expects of a next.
    const c = await mem_log();
    write_range(c, ...Array.from({ length: 10 }, (_, i) => `c-${i + 1}`));
    const c_11 = write_range(c, "c-11");
    const changed = compromise(net, m, b, () => relabel(c_11, a.id));
    net.connect(b);
    await until(net, () => changed() === 1 && b.rep.counters.events_dropped.unknown_key > 0);
    expect(b.rep.counters.events_dropped.unknown_key).toBe(1);
    expect(b.rep.counters.events_dropped.bad_signature).toBe(0);
    expect(b.log.held(a.id)).toBe(10);
    await net.run();
    expect(b.log.held(a.id)).toBe(11);
    expect(dec((b.log.get(a.id, 11) as NonNullable<ReturnType<typeof b.log.get>>).payload)).toBe("a-11");
    expect(b.rep.counters.events_dropped.unknown_key).toBe(1);
    // An origin b has never seen: the key in the proof is not the one its id stands for.
    net.inject(`t/${evil}/events`, encode_message({ kind: "events", from: evil, events: encode_frames(relabel(c_11, evil)), part: null }));
    await net.run();
    expect(b.rep.counters.events_dropped.unknown_key).toBe(2);
    expect(b.log.held(evil)).toBe(0);
    expect(b.log.vv()[evil]).toBeUndefined();
    expect(b.rep.counters.dropped.bad_frame + b.rep.counters.dropped.wrong_origin).toBe(0);
    expect(b.log.verify().ok).toBe(true);
    await c.close();
  });
});

describe("ranges cut and stitched by a peer", () => {
  test("a signed range a sender cut into two wire runs still merges, and the next message merges too", async () => {
    const net = new TestNet();
    const a = await net.add({ max_packet_bytes: 8192 });
    const b = await net.add({ max_packet_bytes: 8192 });
    net.connect(a);
    net.connect(b);
    const evil = await mem_log();
    const r1 = write_range(evil, "e1", "e2");
    const r2 = write_range(evil, "e3", "e4", "e5");
    const view = new DataView(r2.buffer, r2.byteOffset, r2.byteLength);
    const cut = frame_size_of_len(view.getUint32(0, true)) + frame_size_of_len(view.getUint32(frame_size_of_len(view.getUint32(0, true)), true));
    // Its own valid ranges, the second sent as runs [3..4] and [5]: the frames are the same, only the wire runs differ.
    const region = new Uint8Array(Buffer.concat([encode_frames(r1), encode_frames(r2.subarray(0, cut)), encode_frames(r2.subarray(cut))]));
    b.rep.on_message(`t/${evil.id}/events`, encode_message({ kind: "events", from: evil.id, events: region, part: null }), net.now);
    expect(b.log.held(evil.id)).toBe(5);
    for (let i = 1; i <= 5; i++) a.log.append(enc(`a-${i}`));
    await net.run();
    expect(b.log.held(a.id)).toBe(5);
    expect(b.log.verify().ok).toBe(true);
  });

  test("parked frames of two holders of one key are never stitched into one stored range", async () => {
    const { clone_replica } = await import("../support/forgery.ts");
    const net = new TestNet();
    const b = await net.add({ max_packet_bytes: 16384, gap_buffer_max_bytes: 4000, gap_buffer_per_peer_max_bytes: 2000 });
    net.connect(b);
    const o = await mem_log();
    const c = await clone_replica((o as unknown as { options: { io: Parameters<typeof clone_replica>[0] } }).options.io, "/origin");
    expect(c.id).toBe(o.id);
    const r1 = write_range(o, "x1");
    const range_a = write_range(o, "o2", "o".repeat(2500), "o4");
    write_range(c, "c1");
    const range_b = write_range(c, "c2", "c3");
    const push = (frames: Uint8Array) => b.rep.on_message(`t/${o.id}/events`, encode_message({ kind: "events", from: o.id, events: encode_frames(frames), part: null }), net.now);
    push(range_a); // o2 parked, o3 refused (the sender's share of the gap buffer), o4 parked
    push(range_b); // c2's seq is taken, c3 parked
    push(r1); // seq 1 appended; the drain finds o2 then c3
    expect([...b.log.events_after(o.id, 0)].map((e) => dec(e.payload))).toEqual(["x1"]);
    expect(b.rep.counters.conflicts).toBeGreaterThanOrEqual(1);
    expect(b.log.verify().ok).toBe(true);
  });

  test("a fragmented region holds one range: one of many tiny events is refused before it is decoded, and nothing is stored", async () => {
    const { make_frame } = await import("../sim/hostile.ts");
    const { region_events_max } = await import("../../src/sync/wire_events.ts");
    const net = new TestNet();
    const b = await net.add({ max_packet_bytes: 8192 });
    net.connect(b);
    const evil = "00000000000000ee";
    const count = region_events_max * 20;
    const frames = new Uint8Array(Buffer.concat(Array.from({ length: count }, (_, i) => make_frame(evil, i + 1, new Uint8Array(0)))));
    const region = encode_frames(frames);
    const piece = 6000;
    const started = performance.now();
    for (let at = 0; at < region.length; at += piece) {
      const events = region.subarray(at, Math.min(region.length, at + piece));
      b.rep.on_message(`t/${evil}/events`, encode_message({ kind: "events", from: evil, events, part: { at, total: region.length, id: 7 } }), net.now);
    }
    const ms = performance.now() - started;
    expect(b.rep.counters.dropped.bad_part).toBe(1);
    expect(b.log.held(evil)).toBe(0);
    console.log(`a reassembled region of ${count} tiny events refused in ${ms.toFixed(0)} ms`);
  });

  test("a clone that only announces its vv is found: its head event's crc differs from the one held, counted once", async () => {
    const { clone_replica } = await import("../support/forgery.ts");
    const net = new TestNet();
    const b = await net.add();
    net.connect(b);
    const o = await mem_log();
    const c = await clone_replica((o as unknown as { options: { io: Parameters<typeof clone_replica>[0] } }).options.io, "/origin");
    b.rep.on_message(`t/${o.id}/events`, encode_message({ kind: "events", from: o.id, events: encode_frames(write_range(o, "original")), part: null }), net.now);
    expect(b.log.held(o.id)).toBe(1);
    write_range(c, "the copy's");
    const head = c.get(c.id, 1);
    if (head === null) throw new Error("the clone holds its event");
    const vv = encode_message({ kind: "vv", from: c.id, name: "clone", vv: new Map([[c.id, 1]]), pull: "*", head: { seq: 1, crc: head.crc } });
    // Heads are compared with what is durable here (reading a staged event would flush the log on every vv): the next vv after that finds it.
    b.rep.on_message(`t/${c.id}/vv`, vv, net.now);
    expect(b.rep.counters.conflicts).toBe(0);
    await b.log.durable();
    b.rep.on_message(`t/${c.id}/vv`, vv, net.now);
    b.rep.on_message(`t/${c.id}/vv`, vv, net.now);
    expect(b.rep.counters.conflicts).toBe(1);
    expect(b.rep.conflicts.list().map((x) => x.origin)).toEqual([o.id]);
    // The original's own vv names the event held: no conflict.
    const original = b.log.get(o.id, 1);
    b.rep.on_message(`t/${o.id}/vv`, encode_message({ kind: "vv", from: o.id, name: "o", vv: new Map([[o.id, 1]]), pull: "*", head: { seq: 1, crc: original?.crc ?? 0 } }), net.now);
    expect(b.rep.counters.conflicts).toBe(1);
  });
});

