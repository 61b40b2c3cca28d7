import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  flag_batch_end,
  flag_signed,
  frame_crc_compute,
  frame_header_bytes,
  frame_len_offset,
  frame_size_bytes,
  payload_max_bytes,
  proof_bytes,
  write_frame_fields,
} from "../../src/log/frame.ts";
import { origin_from_words } from "../../src/log/ids.ts";
import { Malformed } from "../../src/sync/malformed.ts";
import { decode_message, encode_message } from "../../src/sync/messages.ts";
import { Topics } from "../../src/sync/topics.ts";
import { DecodedEvents, decode_events, encode_frames } from "../../src/sync/wire_events.ts";
import { fuzz, fuzz_replaying, fuzz_timeout_ms } from "../support/fuzz.ts";
import { type Ev, chunk_frames, decoded_list, events_arb, frames_of, mutate, mutations_arb, seq_max } from "./arbitraries.ts";

/**
 * The events region decoder (wire_events.ts) against what a peer can send:
 * valid encodings come back exactly, damage is always noticed, forged
 * regions are taken exactly when the format allows them, and nothing a peer
 * sends makes the decoder throw anything but Malformed or hold more than
 * the message it was given.
 */

const topics = new Topics("t");
const sender = "3f09c2a41b7e55d0";
const receiver = "00000000000000b1";

/** Decodes, returning the events or the Malformed thrown; any other exception fails the property. */
function try_decode(bytes: Uint8Array, d: DecodedEvents): Ev[] | Malformed {
  try {
    decode_events(bytes, d);
  } catch (err) {
    if (err instanceof Malformed) return err;
    throw err;
  }
  return decoded_list(d);
}

/**
 * What the decoder holds after accepting `bytes`: the frames it rebuilt,
 * contiguous in its own buffer, each a header and exactly the body the
 * message carried: never more than the message plus about a header per event.
 */
function check_bounds(bytes: Uint8Array, d: DecodedEvents): void {
  // Each event takes at least 7 bytes (length, crc, flags, time), each run 20 more.
  expect(d.payload_bytes + 7 * d.count + 20 * d.run_first.length).toBeLessThanOrEqual(bytes.length);
  let at = 0;
  for (let i = 0; i < d.count; i++) {
    expect(d.src[i]).toBe(d.frames);
    expect(d.start[i]).toBe(at + frame_header_bytes);
    expect(d.end[i]).toBeGreaterThanOrEqual(d.start[i]);
    if ((d.flags[i] & flag_signed) !== 0) expect(d.end[i] - d.start[i]).toBeGreaterThanOrEqual(proof_bytes);
    at += frame_size_bytes(d.end[i] - d.start[i]);
  }
  expect(at).toBeLessThanOrEqual(d.payload_bytes + (frame_header_bytes + 8) * d.count);
  expect(at).toBeLessThanOrEqual(d.frames.length);
}

/** The crc32c of the frame these fields and body make (what its origin wrote). */
function crc_of(hi: number, lo: number, seq: number, time_ms: number, flags: number, body: Uint8Array): number {
  const frame = new Uint8Array(frame_header_bytes + body.length);
  const view = new DataView(frame.buffer);
  write_frame_fields(view, 0, hi, lo, seq, time_ms, flags);
  frame.set(body, frame_header_bytes);
  view.setUint32(frame_len_offset, frame.length, true);
  return frame_crc_compute(frame, 0, frame.length);
}

// ------------------------------------------------------------ forged regions

/**
 * A region written field by field, with the crc recomputed as a forger
 * would, so every check of the decoder can be reached: each knob may put a
 * field out of the format's range.
 */
interface ForgedEvent {
  payload: Uint8Array;
  /** Extra bytes of an over-long (non-minimal) length varint. */
  len_pad: number;
  /** Added to the length written (the payload stays as is). */
  len_delta: number;
  /** The origin's frame flags (batch-end 1, signed 4) and any unknown wire flag bits (rejected, 2, never travels). */
  flags: number;
  unknown_flags: number;
  time: { abs: bigint } | { delta: number; pad: number } | { zigzag: number };
  crc_ok: boolean;
}

interface ForgedRun {
  hi: number;
  lo: number;
  first_seq: bigint;
  /** Added to the event count written in the run header. */
  count_delta: number;
  events: ForgedEvent[];
}

/** A knob's value: within the format, or (one time in `odds`, never when odds is 0) anything. */
function knob<T>(valid: fc.Arbitrary<T>, wild: fc.Arbitrary<T>, odds: number): fc.Arbitrary<T> {
  return odds === 0 ? valid : fc.oneof({ weight: odds - 1, arbitrary: valid }, { weight: 1, arbitrary: wild });
}

const forged_event_arb = (odds: number): fc.Arbitrary<ForgedEvent> =>
  fc.record({
    // Bodies long enough for a proof too, now and then: a signed frame's body holds one.
    payload: fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: proof_bytes - 2, maxLength: proof_bytes + 30 }) }),
    len_pad: knob(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 3, max: 5 }), odds),
    len_delta: knob(fc.constant(0), fc.integer({ min: -3, max: 3 }), odds),
    flags: fc.constantFrom(0, flag_batch_end, flag_signed, flag_batch_end | flag_signed),
    unknown_flags: knob(fc.constant(0), fc.constantFrom(0x02, 0x08, 0x10, 0x20, 0x40, 0x7a), odds),
    time: knob<ForgedEvent["time"]>(
      fc.oneof(
        fc.record({ delta: fc.integer({ min: 0, max: 1000 }), pad: fc.integer({ min: 0, max: 1 }) }),
        fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n - 1n }), fc.constantFrom(0n, 2n ** 53n - 1n)).map((abs) => ({ abs })),
      ),
      fc.oneof(
        fc.record({ delta: fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -(2 ** 30) - 2, max: 2 ** 30 + 2 })), pad: fc.integer({ min: 0, max: 3 }) }),
        fc.oneof(fc.bigInt({ min: 2n ** 53n - 2n, max: 2n ** 53n + 5n }), fc.constantFrom(2n ** 53n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map((abs) => ({ abs })),
        fc.oneof(fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 35 - 1), fc.integer({ min: 0, max: 2 ** 35 - 1 })).map((zigzag) => ({ zigzag })),
      ),
      odds,
    ),
    crc_ok: knob(fc.constant(true), fc.constant(false), odds),
  });

const forged_run_arb = (odds: number): fc.Arbitrary<ForgedRun> =>
  fc.record({
    hi: knob(fc.constantFrom(0x3f09c2a4, 0xffffffff, 0), fc.nat({ max: 0xffffffff }), odds),
    lo: knob(fc.constantFrom(0x1b7e55d0, 1), fc.oneof(fc.constant(0), fc.nat({ max: 0xffffffff })), odds),
    first_seq: knob(
      fc.oneof(fc.bigInt({ min: 1n, max: 1000n }), fc.constantFrom(2n ** 32n - 1n, 2n ** 53n - 10n)),
      fc.oneof(fc.constantFrom(0n, 2n ** 53n - 3n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      odds,
    ),
    count_delta: knob(fc.constant(0), fc.integer({ min: -2, max: 2 }), odds),
    events: fc.array(forged_event_arb(odds), { minLength: odds === 0 ? 1 : 0, maxLength: 5 }),
  });

/** Regions within the format, with now and then a field outside it, and with many fields outside it. */
const forged_region_arb = fc.oneof(
  ...[0, 40, 4].map((odds) =>
    fc.record({
      runs: fc.array(forged_run_arb(odds), { minLength: 1, maxLength: 4 }),
      trailing: knob(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 19 }), odds),
    }),
  ),
);

function varint(value: number, pad: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  // Over-long: the same value with `pad` more (zero) groups.
  for (let i = 0; i < pad; i++) {
    out[out.length - 1] |= 0x80;
    out.push(0);
  }
  return out;
}

/** Writes the forged region and says what a decoder that follows the format must do with it. */
function forge_region(f: { runs: ForgedRun[]; trailing: Uint8Array }): { bytes: Uint8Array; valid: boolean; events: Ev[] } {
  const out: number[] = [];
  const events: Ev[] = [];
  let valid = true;
  const u32 = (v: number) => out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  for (const run of f.runs) {
    const seq_lo = Number(run.first_seq & 0xffffffffn);
    const seq_hi = Number(run.first_seq >> 32n);
    const count = Math.max(0, run.events.length + run.count_delta);
    u32(run.hi);
    u32(run.lo);
    u32(seq_lo);
    u32(seq_hi);
    u32(count);
    if ((run.hi === 0 && run.lo === 0) || run.first_seq < 1n || count < 1 || run.first_seq + BigInt(count) - 1n > BigInt(seq_max) || count !== run.events.length) valid = false;
    const origin = origin_from_words(run.hi, run.lo);
    let time_ms = 0;
    run.events.forEach((e, i) => {
      const len = Math.max(0, e.payload.length + e.len_delta);
      const len_bytes = varint(len, e.len_pad);
      if (len_bytes.length > 4 || len !== e.payload.length || len > payload_max_bytes) valid = false;
      out.push(...len_bytes);
      const wire_flags = e.flags | e.unknown_flags | ("abs" in e.time ? 0x80 : 0);
      if (e.unknown_flags !== 0) valid = false;
      // A signed frame carries its proof in the body: one too short for it is not in the format.
      if ((e.flags & flag_signed) !== 0 && e.payload.length < proof_bytes) valid = false;
      let time_bytes: number[];
      if ("abs" in e.time) {
        const t = e.time.abs;
        time_bytes = [];
        for (let k = 0n; k < 8n; k++) time_bytes.push(Number((t >> (8n * k)) & 0xffn));
        if (t > BigInt(2 ** 53 - 1)) valid = false;
        time_ms = Number(t);
      } else {
        const zigzag = "zigzag" in e.time ? e.time.zigzag : e.time.delta >= 0 ? 2 * e.time.delta : -2 * e.time.delta - 1;
        const pad = "pad" in e.time ? e.time.pad : 0;
        time_bytes = varint(zigzag, pad);
        if (time_bytes.length > 5 || zigzag >= 2 ** 31) valid = false;
        time_ms += zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2;
        if (time_ms < 0 || time_ms > 2 ** 53 - 1) valid = false;
      }
      const seq = Number(run.first_seq) + i;
      let crc = crc_of(run.hi, run.lo, seq, Math.max(0, Math.min(time_ms, 2 ** 53 - 1)), e.flags, e.payload);
      if (!e.crc_ok) {
        crc = (crc ^ 0x10) >>> 0;
        valid = false;
      }
      u32(crc);
      out.push(wire_flags);
      out.push(...time_bytes);
      out.push(...e.payload);
      events.push({ origin, seq, time_ms, flags: e.flags, payload: e.payload });
    });
  }
  if (f.trailing.length > 0) valid = false;
  out.push(...f.trailing);
  return { bytes: new Uint8Array(out), valid, events };
}

describe("fuzz: the events region decoder", () => {
  test(
    "valid events round-trip exactly through encoder, chunker, message and decoder",
    () => {
      fuzz(
        "wire round trip",
        fc.property(events_arb(), fc.integer({ min: 1024, max: 16384 }), fc.constantFrom("events" as const, "to" as const), (events, capacity, kind) => {
          const chunks = chunk_frames(frames_of(events), capacity);
          const d = new DecodedEvents();
          const got: Ev[] = [];
          let whole: Uint8Array[] = [];
          for (const c of chunks) {
            expect(c.events.length).toBeLessThanOrEqual(capacity);
            const m =
              kind === "events"
                ? encode_message({ kind, from: sender, events: c.events, part: c.part })
                : encode_message({ kind, from: sender, to: receiver, req: 1, events: c.events, part: c.part, last: false, held: null });
            const topic = topics.parse(kind === "events" ? topics.events(sender) : topics.to(sender, receiver));
            const back = decode_message(m, topic as NonNullable<typeof topic>);
            if (back.kind !== "events" && back.kind !== "to") throw new Error("wrong kind");
            expect(back.events).toEqual(c.events);
            expect(back.part).toEqual(c.part);
            let region = back.events;
            if (c.part !== null) {
              // Fragments arrive in order here; the last completes the one signed range they carry.
              whole.push(back.events.slice());
              if (c.part.at + back.events.length < c.part.total) continue;
              region = new Uint8Array(Buffer.concat(whole));
              whole = [];
              expect(region.length).toBe(c.part.total);
            }
            decode_events(region, d);
            check_bounds(region, d);
            got.push(...decoded_list(d));
          }
          expect(got).toEqual(events);
        }),
        300,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "any single bit flip in a valid region is noticed (crc not recomputed)",
    () => {
      fuzz(
        "single bit flip",
        fc.property(events_arb({ max: 8, payloads: fc.uint8Array({ maxLength: 100 }) }), fc.nat(), (events, bit_seed) => {
          const region = encode_frames(frames_of(events));
          const bit = bit_seed % (region.length * 8);
          const bad = region.slice();
          bad[bit >> 3] ^= 1 << (bit & 7);
          const result = try_decode(bad, new DecodedEvents());
          if (!(result instanceof Malformed)) throw new Error(`a flip of bit ${bit} of ${region.length * 8} went unnoticed`);
          expect(["bad_frame", "seq_overflow"]).toContain(result.reason);
        }),
        1000,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "a cut region is refused, or taken as its whole leading runs",
    () => {
      fuzz(
        "cut region",
        fc.property(events_arb({ max: 12, payloads: fc.uint8Array({ maxLength: 60 }) }), fc.nat(), (events, cut_seed) => {
          const region = encode_frames(frames_of(events));
          const cut = cut_seed % region.length;
          const d = new DecodedEvents();
          const result = try_decode(region.subarray(0, cut), d);
          if (result instanceof Malformed) return;
          expect(result).toEqual(events.slice(0, result.length));
          // Whole runs only: the full decode has a run starting right after the last event taken.
          const full = new DecodedEvents();
          decode_events(region, full);
          expect(result.length === 0 || result.length === full.count || full.run_first.includes(result.length)).toBe(true);
        }),
        500,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "two valid regions concatenated decode to both, in order",
    () => {
      fuzz(
        "concatenated regions",
        fc.property(events_arb({ max: 10 }), events_arb({ max: 10 }), (a, b) => {
          const region = new Uint8Array(Buffer.concat([encode_frames(frames_of(a)), encode_frames(frames_of(b))]));
          const d = new DecodedEvents();
          decode_events(region, d);
          expect(decoded_list(d)).toEqual([...a, ...b]);
        }),
        200,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "a forged region with crcs recomputed is taken exactly when every field is within the format, and then as written",
    () => {
      let accepted = 0;
      let refused = 0;
      fuzz(
        "forged region",
        fc.property(forged_region_arb, (f) => {
          const { bytes, valid, events } = forge_region(f);
          const d = new DecodedEvents();
          const result = try_decode(bytes, d);
          if (valid) {
            if (result instanceof Malformed) throw new Error(`a region within the format was refused: ${result.reason}: ${result.message}`);
            expect(result).toEqual(events);
            check_bounds(bytes, d);
            accepted++;
          } else if (result instanceof Malformed) {
            refused++;
          } else {
            throw new Error(`a region outside the format was taken: ${JSON.stringify(result.map((e) => [e.origin, e.seq, e.time_ms, e.flags, e.payload.length]))}`);
          }
        }),
        1500,
      );
      // The generator must reach both sides, or the property says little.
      if (!fuzz_replaying) {
        expect(accepted).toBeGreaterThan(0);
        expect(refused).toBeGreaterThan(0);
      }
      if (process.env.FUZZ_VERBOSE) console.log(`forged regions: ${accepted} taken, ${refused} refused`);
    },
    fuzz_timeout_ms,
  );

  test(
    "arbitrary and mutated bytes only ever raise Malformed, and what is taken is bounded by the input",
    () => {
      const input_arb = fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        // A plausible run header first, so the event parser sees random bytes too.
        fc.tuple(fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 8 }), fc.uint8Array({ maxLength: 200 })).map(([hi, seq, count, rest]) => {
          const head = new Uint8Array(20);
          const v = new DataView(head.buffer);
          v.setUint32(0, hi, true);
          v.setUint32(8, seq, true);
          v.setUint32(16, count, true);
          return new Uint8Array(Buffer.concat([head, rest]));
        }),
        fc.tuple(events_arb({ max: 8, payloads: fc.uint8Array({ maxLength: 80 }) }), mutations_arb).map(([events, ms]) => mutate(encode_frames(frames_of(events)), ms)),
        fc.tuple(forged_region_arb, mutations_arb).map(([f, ms]) => mutate(forge_region(f).bytes, ms)),
      );
      fuzz(
        "decoder on hostile bytes",
        fc.property(input_arb, (bytes) => {
          const d = new DecodedEvents();
          const result = try_decode(bytes, d);
          if (!(result instanceof Malformed)) check_bounds(bytes, d);
        }),
        1500,
      );
    },
    fuzz_timeout_ms,
  );
});

describe("regressions found by the fuzzer", () => {
  const empty_event = (time: ForgedEvent["time"]): ForgedEvent => ({ payload: new Uint8Array(0), len_pad: 0, len_delta: 0, flags: 0, unknown_flags: 0, time, crc_ok: true });

  test("a run of 2 from seq 2^53 - 1 is refused: its end, 2^53, is beyond the seq range (the sum used to round back into it)", () => {
    const { bytes, valid } = forge_region({
      runs: [{ hi: 0x3f09c2a4, lo: 0x1b7e55d0, first_seq: 2n ** 53n - 1n, count_delta: 0, events: [empty_event({ delta: 0, pad: 0 }), empty_event({ abs: 0n })] }],
      trailing: new Uint8Array(0),
    });
    expect(valid).toBe(false);
    const result = try_decode(bytes, new DecodedEvents());
    expect(result).toBeInstanceOf(Malformed);
    expect((result as Malformed).reason).toBe("seq_overflow");
  });

  test("a run of 1 at seq 2^53 - 1 is still taken", () => {
    const { bytes, valid, events } = forge_region({
      runs: [{ hi: 0x3f09c2a4, lo: 0x1b7e55d0, first_seq: 2n ** 53n - 1n, count_delta: 0, events: [empty_event({ abs: 5n })] }],
      trailing: new Uint8Array(0),
    });
    expect(valid).toBe(true);
    expect(try_decode(bytes, new DecodedEvents())).toEqual(events);
  });
});
