import { Simple, Tag } from "cbor2";
import fc from "fast-check";
import { flag_batch_end, flag_signed, frame_header_bytes, frame_len, frame_size_at, frame_size_bytes, proof_bytes, write_frame_header } from "../../src/log/frame.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import type { Part, SyncMessage } from "../../src/sync/messages.ts";
import { type SeqRange, encode_ids, encode_ranges, encode_vv } from "../../src/sync/packed.ts";
import { type DecodedEvents, EventsChunker, EventsEncoder } from "../../src/sync/wire_events.ts";

/**
 * Arbitraries and helpers shared by the fuzz tests of the wire format and
 * the replicator. The wire format's tests build crc-valid frames by hand
 * (any id, seqs and times up to 2^53 - 1, signed frames with a made-up
 * proof): the codec checks crcs and the format, not signatures. What a
 * replica may store comes only from real origins (see replicator.fuzz).
 */

export const seq_max = 2 ** 53 - 1;
export const time_max = 2 ** 53 - 1;

export interface Ev {
  origin: string;
  seq: number;
  time_ms: number;
  /** The origin's flags (batch-end, signed): a receiver's rejected mark never travels. */
  flags: number;
  /** The frame's body: the payload, then the 104-byte proof when signed. */
  payload: Uint8Array;
}

/** A few fixed ids (so runs continue and origins repeat) and any other non-zero 64-bit id. */
export const fixed_origins = ["00000000000000a1", "3f09c2a41b7e55d0", "ffffffffffffffff", "0000000100000000"];
export const origin_arb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...fixed_origins) },
  { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map((b) => b.toString(16).padStart(16, "0")) },
);

/** Seqs with the edges (1, 2^32 +- 1, 2^53 - 1) likely. */
export const seq_arb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.constantFrom(1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, seq_max - 2, seq_max - 1, seq_max),
  fc.integer({ min: 1, max: seq_max }),
);

export const time_arb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 41 }),
  fc.constantFrom(0, 1, 2 ** 30, 2 ** 32, time_max),
  fc.integer({ min: 0, max: time_max }),
);

/** The origin's flags: none, batch end, or batch end with a proof (the end of a signed range). */
const flags_arb = fc.constantFrom(0, flag_batch_end, flag_batch_end | flag_signed);

/** `arb` one time in `odds`, else null (fc.option's freq is the odds of null, the other way round). */
export function sometimes<T>(arb: fc.Arbitrary<T>, odds: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: odds - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });
}

export const payload_arb = (max_small = 300): fc.Arbitrary<Uint8Array> =>
  fc.oneof({ weight: 12, arbitrary: fc.uint8Array({ maxLength: max_small }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 9000 }) });

interface Step {
  origin: string | null;
  seq: number | null;
  time: { delta: number } | { at: number };
  flags: number;
  payload: Uint8Array;
  proof: Uint8Array;
}

const step_arb = (payloads: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Step> =>
  fc.record({
    // Mostly the run goes on: same origin, next seq.
    origin: sometimes(origin_arb, 8),
    seq: sometimes(seq_arb, 8),
    time: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: -5000, max: 5000 }).map((delta) => ({ delta })) },
      // Around the encoder's varint/absolute switch at +-2^30 ms.
      { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }).chain((d) => fc.constantFrom(2 ** 30 + d, -(2 ** 30) + d)).map((delta) => ({ delta })) },
      { weight: 1, arbitrary: time_arb.map((at) => ({ at })) },
    ),
    flags: flags_arb,
    payload: payloads,
    proof: fc.uint8Array({ minLength: proof_bytes, maxLength: proof_bytes }),
  });

/**
 * Events as a log would send them: runs of one origin's consecutive seqs
 * (an origin change or a seq jump starts another), times that move either
 * way or leap, all flags, payloads mostly small and now and then large.
 */
export const events_arb = (options: { min?: number; max?: number; payloads?: fc.Arbitrary<Uint8Array> } = {}): fc.Arbitrary<Ev[]> =>
  fc.tuple(origin_arb, seq_arb, time_arb, fc.array(step_arb(options.payloads ?? payload_arb()), { minLength: options.min ?? 1, maxLength: options.max ?? 40 })).map(
    ([origin0, seq0, time0, steps]) => {
      let origin = origin0;
      let seq = seq0 - 1;
      let time_ms = time0;
      return steps.map((s) => {
        if (s.origin !== null) origin = s.origin;
        seq = s.seq ?? Math.min(seq + 1, seq_max);
        if (seq < 1) seq = 1;
        time_ms = "at" in s.time ? s.time.at : Math.min(time_max, Math.max(0, time_ms + s.time.delta));
        const body = (s.flags & flag_signed) !== 0 ? new Uint8Array(Buffer.concat([s.payload, s.proof])) : s.payload;
        return { origin, seq, time_ms, flags: s.flags, payload: body };
      });
    },
  );

/** A crc-valid record frame for origin:seq with this body, made by hand (the proof of a signed one is not checked here). */
export function hand_frame(origin: string, seq: number, body: Uint8Array, time_ms: number, flags: number): Uint8Array {
  const bytes = new Uint8Array(frame_size_bytes(body.length));
  bytes.set(body, frame_header_bytes);
  write_frame_header(bytes, new DataView(bytes.buffer), 0, origin_hi(origin), origin_lo(origin), seq, time_ms, flags, body);
  return bytes;
}

export function frames_of(events: readonly Ev[]): Uint8Array {
  return new Uint8Array(Buffer.concat(events.map((e) => hand_frame(e.origin, e.seq, e.payload, e.time_ms, e.flags))));
}

export function decoded_list(d: DecodedEvents): Ev[] {
  const out: Ev[] = [];
  for (let i = 0; i < d.count; i++) {
    out.push({ origin: d.origin[i], seq: d.seq[i], time_ms: d.time_ms[i], flags: d.flags[i], payload: d.src[i].slice(d.start[i], d.end[i]) });
  }
  return out;
}

/** Encodes frames the way the replicator sends them: chunks of at most `capacity` bytes, whole signed ranges each, a too-large range alone in fragments. */
export function chunk_frames(frames: Uint8Array, capacity: number): { events: Uint8Array; part: Part | null }[] {
  const out: { events: Uint8Array; part: Part | null }[] = [];
  const encoder = new EventsEncoder(capacity);
  const chunker = new EventsChunker(encoder, (events, part) => out.push({ events: events.slice(), part }));
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  for (let at = 0; at < frames.length; at += frame_size_at(view, at)) {
    if (frame_len(view, at) < frame_header_bytes) throw new Error("not a frame");
    chunker.add(frames, view, at);
  }
  chunker.flush();
  return out;
}

// ------------------------------------------------------------------ messages

const name_arb = fc.string({ unit: "grapheme", maxLength: 80 }).filter((s) => s.length <= 256);
const count_arb = fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom(0, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());

export const vv_arb = (min_seq: number): fc.Arbitrary<Map<string, number>> =>
  fc.uniqueArray(fc.tuple(origin_arb, fc.oneof(fc.integer({ min: min_seq, max: 1000 }), fc.integer({ min: min_seq, max: seq_max }))), { maxLength: 12, selector: ([o]) => o }).map(
    (entries) => new Map(entries),
  );

export const ranges_arb: fc.Arbitrary<SeqRange[]> = fc.uniqueArray(
  fc.tuple(origin_arb, fc.integer({ min: 0, max: seq_max - 1 }), fc.integer({ min: 1, max: seq_max })).map(([origin, a, b]) => {
    const after = Math.min(a, b - 1);
    return { origin, after, upto: Math.max(b, after + 1) };
  }),
  { maxLength: 20, selector: (r) => r.origin },
);

const part_arb: fc.Arbitrary<Part | null> = fc.option(
  fc.tuple(fc.nat({ max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.maxSafeNat()).map(([a, t, id]) => ({ at: Math.min(a, t - 1), total: t, id })),
  { freq: 3 },
);

const region_arb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  events_arb({ max: 6, payloads: fc.uint8Array({ maxLength: 40 }) }).map((events) => chunk_frames(frames_of(events), 1 << 16)[0]?.events ?? new Uint8Array(0)),
);

/** Any well-formed message of any kind from `from` to `to`, as the sender's encode_message takes it. */
export const message_arb = (from: string, to: string): fc.Arbitrary<SyncMessage> =>
  fc.oneof(
    fc.record({ kind: fc.constant("vv" as const), from: fc.constant(from), name: name_arb, vv: vv_arb(1), pull: fc.oneof(fc.constant("*" as const), fc.uniqueArray(origin_arb, { maxLength: 8 })) }),
    fc.record({ kind: fc.constant("entry" as const), from: fc.constant(from), name: name_arb, origin: origin_arb, seq: fc.oneof(fc.constant(0), seq_arb), pulls: fc.boolean() }),
    fc.record({ kind: fc.constant("status" as const), from: fc.constant(from), online: fc.boolean(), session: count_arb }),
    fc.record({ kind: fc.constant("events" as const), from: fc.constant(from), events: region_arb, part: part_arb }),
    fc.record({ kind: fc.constant("want" as const), from: fc.constant(from), to: fc.constant(to), req: count_arb, max_bytes: count_arb.map((n) => Math.max(1, n)), ranges: ranges_arb }),
    fc.record({
      kind: fc.constant("to" as const),
      from: fc.constant(from),
      to: fc.constant(to),
      req: count_arb,
      events: region_arb,
      part: part_arb,
      last: fc.boolean(),
      held: fc.option(vv_arb(0), { freq: 2 }),
    }),
  );

/** The topic a message of `m`'s kind from m.from (to `to`) is published on, under prefix "t". */
export function topic_of(m: { kind: SyncMessage["kind"]; from: string }, to: string, origin = to): string {
  switch (m.kind) {
    case "vv":
    case "events":
    case "status":
      return `t/${m.from}/${m.kind}`;
    case "entry":
      return `t/${m.from}/vv/${origin}`;
    case "want":
    case "to":
      return `t/${m.from}/${m.kind}/${to}`;
  }
}

/** What decode_message gives for `m` (an empty `held` is not sent). */
export function normalized(m: SyncMessage): SyncMessage {
  return m.kind === "to" && m.held !== null && m.held.size === 0 ? { ...m, held: null } : m;
}

/** Any CBOR value a hostile peer or client may send: numbers at the edges, bigints, byte strings (packed lists too), nesting, maps with any keys, tags. */
export const cbor_value_arb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.integer(),
    fc.constantFrom(0, -1, 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -(2 ** 53), Number.NaN, Number.POSITIVE_INFINITY, 0.5, -0),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.constantFrom("*", "", fixed_origins[1], "00000000000000b1"),
    fc.boolean(),
    fc.constantFrom(null, undefined, new Simple(99)),
    fc.uint8Array({ maxLength: 64 }),
    vv_arb(0).map(encode_vv),
    ranges_arb.map(encode_ranges),
    fc.uniqueArray(origin_arb, { maxLength: 4 }).map(encode_ids),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie("value"), { maxKeys: 4 }),
    fc.array(fc.tuple(tie("value"), tie("value")), { maxLength: 3 }).map((entries) => new Map(entries)),
    fc.tuple(fc.constantFrom(0, 1, 2, 3, 24, 55799, 0xffff), tie("value")).map(([n, v]) => new Tag(n, v)),
  ),
})).value;

// ----------------------------------------------------------------- mutations

/** Ways to damage bytes: bit flips, overwrites, cuts, insertions, deletions, duplicated slices. */
export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "cut"; at: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; n: number }
  | { op: "dup"; at: number; n: number };

export const mutation_arb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ op: fc.constant("dup" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 64 }) }),
);

export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = bytes.slice();
  for (const m of mutations) {
    if (b.length === 0 && m.op !== "insert") continue;
    const at = m.at % Math.max(1, b.length);
    switch (m.op) {
      case "flip":
        b[at] ^= 1 << m.bit;
        break;
      case "set":
        b[at] = m.value;
        break;
      case "cut":
        b = b.slice(0, at);
        break;
      case "insert":
        b = new Uint8Array(Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]));
        break;
      case "delete":
        b = new Uint8Array(Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + m.n))]));
        break;
      case "dup":
        b = new Uint8Array(Buffer.concat([b.subarray(0, at), b.subarray(at, at + m.n), b.subarray(at)]));
        break;
    }
  }
  return b;
}

export const mutations_arb = fc.array(mutation_arb, { minLength: 1, maxLength: 4 });

