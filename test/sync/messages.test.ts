import { describe, expect, test } from "bun:test";
import { Malformed } from "../../src/sync/malformed.ts";
import { type SyncMessage, assemble_message, decode_message, encode_message } from "../../src/sync/messages.ts";
import { Topics } from "../../src/sync/topics.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { mem_log, write_range } from "../support/forgery.ts";

const a = "3f09c2a41b7e55d0";
const b = "00000000000000b1";
const topics = new Topics("fleet/eu");

describe("wire format", () => {
  test("every message kind survives encode and decode on its topic", async () => {
    // A real origin's signed event, as a message carries it (the envelope does not look inside).
    const writer = await mem_log();
    const events = encode_frames(write_range(writer, "hello"));
    await writer.close();
    const cases: [string, SyncMessage][] = [
      [topics.vv(a), { kind: "vv", from: a, name: "truck 7", vv: new Map([[a, 42], [b, 2 ** 53 - 1]]), pull: [b] }],
      [topics.vv(a), { kind: "vv", from: a, name: "", vv: new Map(), pull: "*" }],
      [topics.vv(a), { kind: "vv", from: a, name: "head", vv: new Map([[a, 9]]), pull: "*", head: { seq: 9, crc: 0xfedcba98 } }],
      [topics.entry(a, b), { kind: "entry", from: a, name: "hub", origin: b, seq: 2 ** 53 - 1, pulls: true }],
      [topics.entry(a, a), { kind: "entry", from: a, name: "", origin: a, seq: 0, pulls: false }],
      [topics.status(a), { kind: "status", from: a, online: false, session: 1_700_000_000_000 }],
      [topics.events(a), { kind: "events", from: a, events, part: null }],
      [topics.events(a), { kind: "events", from: a, events, part: { at: 8, total: 100_000, id: 7 } }],
      [topics.want(a, b), { kind: "want", from: a, to: b, req: 9, max_bytes: 1 << 20, ranges: [{ origin: b, after: 3, upto: 2 ** 53 - 1 }] }],
      [topics.to(a, b), { kind: "to", from: a, to: b, req: 9, events, part: null, last: true, held: new Map([[b, 0]]) }],
      [topics.to(a, b), { kind: "to", from: a, to: b, req: 10, events: new Uint8Array(0), part: null, last: false, held: null }],
      // Retention: "a pruned b's events through 7000" (an optional field: a receiver that does not know it ignores it).
      [topics.to(a, b), { kind: "to", from: a, to: b, req: 11, events: new Uint8Array(0), part: null, last: true, held: new Map([[a, 3]]), gone: new Map([[b, 7000]]) }],
    ];
    for (const [topic, message] of cases) {
      const parsed = topics.parse(topic);
      expect(parsed).not.toBeNull();
      const back = decode_message(encode_message(message), parsed as NonNullable<typeof parsed>);
      expect(back).toEqual(message.kind === "to" && message.held?.size === 0 ? { ...message, held: null } : message);
    }
  });

  test("an answer's gone list decodes only as a valid vv (no seq 0, no repeated origin)", () => {
    const parsed = topics.parse(topics.to(a, b)) as NonNullable<ReturnType<Topics["parse"]>>;
    const bytes = encode_message({ kind: "to", from: a, to: b, req: 1, events: new Uint8Array(0), part: null, last: true, held: null, gone: new Map([[b, 0]]) });
    expect(() => decode_message(bytes, parsed)).toThrow(/seq 0/);
    // Without the field the answer has none, as before retention.
    const plain = decode_message(encode_message({ kind: "to", from: a, to: b, req: 1, events: new Uint8Array(0), part: null, last: true, held: null, gone: null }), parsed);
    expect("gone" in plain).toBe(false);
  });

  test("an envelope that gives a key twice is refused as bad CBOR, whichever value comes last", () => {
    const parsed = topics.parse(topics.status(a)) as NonNullable<ReturnType<Topics["parse"]>>;
    const text = (t: string) => [0x60 + t.length, ...new TextEncoder().encode(t)];
    // {from: a, online: true, session: 1, online: false}: a peer saying two things at once.
    const envelope = new Uint8Array([0xa4, ...text("from"), ...text(a), ...text("online"), 0xf5, ...text("session"), 0x01, ...text("online"), 0xf4]);
    expect(() => decode_message(assemble_message("status", envelope, null), parsed)).toThrow(/duplicate map key "online"/);
    try {
      decode_message(assemble_message("status", envelope, null), parsed);
    } catch (err) {
      expect((err as Malformed).reason).toBe("bad_cbor");
    }
    // The same envelope without the repeat decodes.
    const once = new Uint8Array([0xa3, ...text("from"), ...text(a), ...text("online"), 0xf5, ...text("session"), 0x01]);
    expect(decode_message(assemble_message("status", once, null), parsed)).toEqual({ kind: "status", from: a, online: true, session: 1 });
  });

  test("topics name the publisher and, for requests and answers, the peer", () => {
    expect(topics.parse(`fleet/eu/${a}/want/${b}`)).toEqual({ from: a, kind: "want", peer: b });
    expect(topics.parse(`fleet/eu/${a}/vv`)).toEqual({ from: a, kind: "vv", peer: null });
    expect(topics.parse(`fleet/eu/${a}/vv/${b}`)).toEqual({ from: a, kind: "entry", peer: b });
    expect(topics.parse(`fleet/eu/${a}/vv/extra`)).toBeNull();
    expect(topics.parse(`fleet/eu/0000000000000000/vv`)).toBeNull();
    expect(topics.parse(`other/${a}/vv`)).toBeNull();
    expect(() => new Topics("bad/#")).toThrow(/prefix/);
    expect(() => new Topics("x".repeat(65))).toThrow(/at most 64/);
    expect(new Topics("x".repeat(64)).prefix.length).toBe(64);
  });
});
