import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import fc from "fast-check";
import { Malformed } from "../../src/sync/malformed.ts";
import { type SyncMessage, assemble_message, decode_message, encode_message, name_max_chars, protocol_version, want_ranges_max } from "../../src/sync/messages.ts";
import { encode_ids, encode_ranges, encode_vv } from "../../src/sync/packed.ts";
import { type TopicKind, Topics } from "../../src/sync/topics.ts";
import { DecodedEvents, decode_events } from "../../src/sync/wire_events.ts";
import { fuzz, fuzz_replaying, fuzz_timeout_ms } from "../support/fuzz.ts";
import { cbor_value_arb, message_arb, mutate, mutations_arb, normalized, origin_arb, topic_of } from "./arbitraries.ts";

/**
 * decode_message (messages.ts) against what a peer can send: every valid
 * message comes back as sent; anything else raises Malformed and nothing
 * else, and what is accepted holds no more than the message carried.
 */

const topics = new Topics("t");
const from = "3f09c2a41b7e55d0";
const me = "00000000000000b1";
const kinds: TopicKind[] = ["vv", "entry", "status", "events", "want", "to"];

function parse(topic: string) {
  const parsed = topics.parse(topic);
  if (parsed === null) throw new Error(`not a topic: ${topic}`);
  return parsed;
}

const field_names = ["from", "name", "vv", "pull", "seq", "pulls", "online", "session", "part", "to", "req", "max", "ranges", "last", "held", "__proto__", "constructor", "x"];

/** An envelope with the right or wrong `from`, and any fields with any values. */
const envelope_arb = fc
  .tuple(
    fc.constantFrom(from, from, me, "", "3F09C2A41B7E55D0"),
    fc.dictionary(fc.constantFrom(...field_names), cbor_value_arb, { maxKeys: 8 }),
    fc.option(fc.record({ to: fc.constantFrom(me, from), req: fc.nat(), part: fc.constant([0, 10, 1]) }), { freq: 2 }),
  )
  .map(([f, fields, base]) => {
    const envelope: Record<string, unknown> = { from: f, ...(base ?? {}) };
    for (const [k, v] of Object.entries(fields)) Object.defineProperty(envelope, k, { value: v, enumerable: true, configurable: true, writable: true });
    return envelope;
  });

/** Messages a hostile or broken peer may send, for the topic kind given. */
const hostile_arb = (kind: TopicKind): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // The right prefix, then anything.
    fc.tuple(fc.constantFrom(protocol_version, protocol_version, protocol_version - 1, protocol_version + 1), fc.integer({ min: 0, max: 7 }), fc.nat({ max: 300 }), fc.uint8Array({ maxLength: 200 })).map(([version, code, len, rest]) => {
      const head = new Uint8Array(6);
      head[0] = version;
      head[1] = code;
      new DataView(head.buffer).setUint32(2, len, true);
      return new Uint8Array(Buffer.concat([head, rest]));
    }),
    fc.tuple(envelope_arb, fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 2 })).map(([envelope, events]) => {
      try {
        return assemble_message(kind, encode(envelope), events);
      } catch {
        return assemble_message(kind, encode({ from }), events);
      }
    }),
    fc.tuple(message_arb(from, me).filter((m) => m.kind === kind), mutations_arb).map(([m, ms]) => mutate(encode_message(m), ms)),
    fc.tuple(message_arb(from, me), mutations_arb).map(([m, ms]) => mutate(encode_message(m), ms)),
  );

/** What a decoded message may hold, relative to the bytes it came from. */
function check_bounds(m: SyncMessage, bytes: Uint8Array, topic: ReturnType<typeof parse>): void {
  expect(m.from).toBe(topic.from);
  switch (m.kind) {
    case "vv":
      expect(m.name.length).toBeLessThanOrEqual(name_max_chars);
      expect(m.vv.size * 16).toBeLessThanOrEqual(bytes.length);
      if (m.pull !== "*") expect(m.pull.length * 8).toBeLessThanOrEqual(bytes.length);
      break;
    case "entry":
      expect(m.name.length).toBeLessThanOrEqual(name_max_chars);
      expect(m.origin).toBe(topic.peer as string);
      expect(Number.isSafeInteger(m.seq) && m.seq >= 0).toBe(true);
      break;
    case "status":
      expect(Number.isSafeInteger(m.session) && m.session >= 0).toBe(true);
      break;
    case "want":
      expect(m.to).toBe(topic.peer as string);
      expect(m.ranges.length).toBeLessThanOrEqual(want_ranges_max);
      expect(m.ranges.length * 24).toBeLessThanOrEqual(bytes.length);
      for (const r of m.ranges) expect(r.after < r.upto && r.upto <= 2 ** 53 - 1).toBe(true);
      expect(m.max_bytes).toBeGreaterThanOrEqual(1);
      break;
    case "events":
    case "to":
      // The events stay in the received message: a view, never a copy.
      expect(m.events.buffer).toBe(bytes.buffer);
      expect(m.events.byteOffset + m.events.length).toBe(bytes.byteOffset + bytes.length);
      if (m.part !== null) expect(m.part.at >= 0 && m.part.at < m.part.total).toBe(true);
      if (m.kind === "to") {
        expect(m.to).toBe(topic.peer as string);
        if (m.held !== null) expect(m.held.size * 16).toBeLessThanOrEqual(bytes.length);
      }
      break;
  }
}

describe("fuzz: sync messages", () => {
  test(
    "every valid message comes back as sent, on its topic",
    () => {
      fuzz(
        "message round trip",
        fc.property(message_arb(from, me), (m) => {
          const origin = m.kind === "entry" ? m.origin : me;
          const topic = parse(topic_of(m, me, origin));
          const bytes = encode_message(m);
          const back = decode_message(bytes, topic);
          expect(back).toEqual(normalized(m));
          check_bounds(back, bytes, topic);
        }),
        500,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "random, forged and mutated messages on any topic raise only Malformed; what is taken is bounded and re-encodes to itself",
    () => {
      let taken = 0;
      fuzz(
        "hostile messages",
        fc.property(
          fc.constantFrom(...kinds).chain((kind) => fc.tuple(fc.constant(kind), hostile_arb(kind), origin_arb)),
          ([kind, bytes, origin]) => {
            const topic = parse(topic_of({ kind, from }, me, origin));
            let m: SyncMessage;
            try {
              m = decode_message(bytes, topic);
            } catch (err) {
              if (err instanceof Malformed) return;
              throw err;
            }
            taken++;
            check_bounds(m, bytes, topic);
            // The events it carries: decoded as the replicator would, again only Malformed.
            if ((m.kind === "events" || m.kind === "to") && m.events.length > 0) {
              try {
                decode_events(m.events, new DecodedEvents());
              } catch (err) {
                if (!(err instanceof Malformed)) throw err;
              }
            }
            // What was understood is all there is: sent again, it reads the same.
            expect(decode_message(encode_message(m), topic)).toEqual(normalized({ ...m, ...("events" in m ? { events: m.events.slice() } : {}) } as SyncMessage));
          },
        ),
        1500,
      );
      if (!fuzz_replaying) expect(taken).toBeGreaterThan(0);
    },
    fuzz_timeout_ms,
  );
});
