import { describe, expect, test } from "bun:test";
import type { DropReason } from "../../src/sync/counters.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { forge, make_events, overflow_events } from "../sim/hostile.ts";
import { for_seeds } from "../support/seeded.ts";
import { TestNet, type TestNode, dec, enc } from "./net.ts";

const evil = "00000000000000ee";

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
      cases.push({ topic, payload: new Uint8Array([2, valid[kind][1], 3, 0, 0, 0, 0xff, 0x00, 0x13]), reason: "bad_cbor" });
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
    const to = { ...base, to: me, req: 7 };
    const bad_crc = make_events(a.id, 11, enc("forged"));
    bad_crc[bad_crc.length - 1] ^= 0x40;
    cases.push({ topic: topics.to, payload: forge("to", to, bad_crc), reason: "bad_frame" });
    cases.push({ topic: topics.to, payload: forge("to", to, overflow_events(a.id, enc("x"))), reason: "seq_overflow" });
    const whole = make_events(a.id, 11, enc("xyz"));
    for (let cut = 1; cut < whole.length; cut++) cases.push({ topic: topics.to, payload: forge("to", to, whole.subarray(0, cut)), reason: "bad_frame" });
    const bad_flags = make_events(a.id, 11, enc("x"));
    bad_flags[20 + 1 + 4] |= 0x10;
    cases.push({ topic: topics.to, payload: forge("to", to, bad_flags), reason: "bad_frame" });
    cases.push({ topic: topics.to, payload: forge("to", to, new Uint8Array(20)), reason: "bad_frame" });
    cases.push({ topic: topics.events, payload: forge("events", base, make_events(a.id, 11, enc("x"))), reason: "wrong_origin" });
    cases.push({ topic: topics.events, payload: forge("events", { ...base, part: [5, 3, 1] }, make_events(evil, 1, enc("x"))), reason: "bad_part" });
    // A "fragmented event" that is really many events: refused, so it cannot inflate the decoder's memory.
    const two = new Uint8Array(Buffer.concat([make_events(a.id, 11, enc("x")), make_events(a.id, 12, enc("y"))]));
    cases.push({ topic: topics.to, payload: forge("to", { ...to, part: [0, two.length, 9] }, two), reason: "bad_part" });
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
