import { describe, expect, test } from "bun:test";
import type { Random } from "../../src/lib/random.ts";
import { CheckedEvents } from "../../src/log/checked_events.ts";
import { flag_batch_end, flag_signed, frame_size_at, proof_bytes } from "../../src/log/frame.ts";
import { KeyRing } from "../../src/log/key_ring.ts";
import { Log } from "../../src/log/log.ts";
import { keep_signed_ranges } from "../../src/log/signed_ranges.ts";
import { Malformed } from "../../src/sync/malformed.ts";
import { DecodedEvents, EventsChunker, EventsEncoder, decode_events, encode_frames } from "../../src/sync/wire_events.ts";
import { make_frame } from "../sim/hostile.ts";
import { frame_offsets, frames_of_log, mem_log, write_range } from "../support/forgery.ts";
import { for_seeds } from "../support/seeded.ts";
import { temp_dir } from "../support/temp_dir.ts";

interface Ev {
  origin: string;
  seq: number;
  time_ms: number;
  flags: number;
  /** The frame's body: its payload, then the proof when signed. */
  payload: Uint8Array;
}

/**
 * The codec checks crcs and the format, not signatures (signed_ranges.ts
 * does, after decoding), so its edge tests build crc-valid frames by hand,
 * at seqs and times no real origin reaches soon; real signed frames are
 * tested below too.
 */
const origins = ["00000000000000a1", "3f09c2a41b7e55d0", "ffffffffffffffff"];

/** Random events in runs: same or other origins, seqs that continue or jump, times that move either way or leap. */
function random_events(rng: Random, count: number): Ev[] {
  const events: Ev[] = [];
  let origin = rng.pick(origins);
  let seq = rng.int(1, 1000);
  let time_ms = rng.int(0, 2 ** 41);
  for (let i = 0; i < count; i++) {
    if (rng.chance(0.1)) origin = rng.pick(origins);
    seq = rng.chance(0.1) ? rng.int(1, 2 ** 40) : Math.min(seq + 1, 2 ** 53 - 1);
    if (rng.chance(0.01)) seq = 2 ** 53 - 1 - rng.int(0, 3);
    const r = rng.int(0, 9);
    time_ms = r === 0 ? rng.int(0, 2 ** 52) : r === 1 ? Math.max(0, time_ms - rng.int(0, 5000)) : time_ms + rng.int(0, 1000);
    const size = rng.chance(0.05) ? rng.int(1000, 5000) : rng.int(0, 300);
    // The origin's flags only (a receiver's rejected mark never travels); a signed frame's body ends with its 104-byte proof.
    const flags = [0, flag_batch_end, flag_batch_end | flag_signed][rng.int(0, 2)];
    events.push({ origin, seq, time_ms, flags, payload: rng.bytes((flags & flag_signed) !== 0 ? size + proof_bytes : size) });
  }
  return events;
}

function frames_of(events: readonly Ev[]): Uint8Array {
  return new Uint8Array(Buffer.concat(events.map((e) => make_frame(e.origin, e.seq, e.payload, e.time_ms, e.flags))));
}

function decoded_list(d: DecodedEvents): Ev[] {
  const out: Ev[] = [];
  for (let i = 0; i < d.count; i++) {
    out.push({ origin: d.origin[i], seq: d.seq[i], time_ms: d.time_ms[i], flags: d.flags[i], payload: d.src[i].slice(d.start[i], d.end[i]) });
  }
  return out;
}

describe("events on the wire", () => {
  test("any events round-trip exactly, in chunks within the limit, and the crcs are the origin's", async () => {
    await for_seeds(40, (rng) => {
      const events = random_events(rng, rng.int(1, 200));
      const frames = frames_of(events);
      const view = new DataView(frames.buffer);
      const encoder = new EventsEncoder(8192);
      const decoded: Ev[] = [];
      const d = new DecodedEvents();
      let chunk_from = 0;
      const take = (chunk_to: number): void => {
        const chunk = encoder.chunk();
        expect(chunk.length).toBeLessThanOrEqual(8192);
        const count = decode_events(chunk.slice(), d);
        decoded.push(...decoded_list(d));
        // The decoder rebuilds the frames bit for bit as their origin wrote them, contiguous.
        if (count > 0) expect(d.frames.slice(0, chunk_to - chunk_from)).toEqual(frames.slice(chunk_from, chunk_to));
        chunk_from = chunk_to;
        encoder.reset();
      };
      for (let at = 0; at < frames.length; ) {
        if (!encoder.add(frames, view, at)) {
          expect(encoder.events).toBeGreaterThan(0);
          take(at);
          continue;
        }
        at += frame_size_at(view, at);
      }
      take(frames.length);
      expect(decoded).toEqual(events);
    });
  });

  test("a 256-byte event of a run costs 8 bytes of header on the wire, not 40", () => {
    const origin = origins[1];
    const events = Array.from({ length: 400 }, (_, i) => ({ origin, seq: i + 1, time_ms: 1_700_000_000_000 + (i >> 4), flags: 0, payload: new Uint8Array(256).fill(i) }));
    const region = encode_frames(frames_of(events));
    const overhead = region.length / (400 * 256);
    expect(overhead).toBeLessThan(1.035);
    expect(overhead).toBeGreaterThan(1.02);
  });

  test("every single bit flip, and every cut inside an event, makes the whole region fail with a reason", async () => {
    await for_seeds(5, (rng) => {
      const events = random_events(rng, rng.int(1, 6));
      const region = encode_frames(frames_of(events));
      const d = new DecodedEvents();
      const reasons = new Set<string>();
      for (let bit = 0; bit < region.length * 8; bit++) {
        const bad = region.slice();
        bad[bit >> 3] ^= 1 << (bit & 7);
        let reason = "accepted";
        try {
          decode_events(bad, d);
        } catch (err) {
          expect(err).toBeInstanceOf(Malformed);
          reason = (err as Malformed).reason;
        }
        if (reason === "accepted") throw new Error(`a flip of bit ${bit} went unnoticed`);
        reasons.add(reason);
      }
      // Runs delimit themselves: a cut between two runs leaves the first ones, whole; any other cut fails.
      for (let cut = 1; cut < region.length; cut++) {
        let count = -1;
        try {
          count = decode_events(region.subarray(0, cut), d);
        } catch (err) {
          expect(err).toBeInstanceOf(Malformed);
        }
        if (count >= 0) expect(decoded_list(d)).toEqual(events.slice(0, count));
      }
      expect([...reasons].every((r) => r === "bad_frame" || r === "seq_overflow")).toBe(true);
    });
  });
});

describe("real signed ranges on the wire", () => {
  test("real origins' signed ranges round-trip through the chunker bit for bit, never cut across chunks, and verify after decoding", async () => {
    await for_seeds(5, async (rng) => {
      const writers = [await mem_log({ segment_size_bytes: 1024 * 1024 }), await mem_log({ segment_size_bytes: 1024 * 1024 })];
      const ranges: Uint8Array[] = [];
      for (let r = 0; r < 40; r++) {
        const w = rng.pick(writers);
        ranges.push(write_range(w, ...Array.from({ length: rng.int(1, 8) }, () => rng.bytes(rng.chance(0.05) ? rng.int(3000, 9000) : rng.int(0, 300)))));
      }
      const frames = new Uint8Array(Buffer.concat(ranges));
      const view = new DataView(frames.buffer);
      const chunks: { events: Uint8Array; fragment: boolean }[] = [];
      const chunker = new EventsChunker(new EventsEncoder(4096), (events, part) => chunks.push({ events: events.slice(), fragment: part !== null }));
      for (const at of frame_offsets(frames)) chunker.add(frames, view, at);
      expect(chunker.in_range).toBe(false);
      chunker.flush();
      // Reassemble fragments (in order here), then decode each region: every one holds whole signed ranges, which verify.
      const d = new DecodedEvents();
      const keys = new KeyRing();
      const rebuilt: Uint8Array[] = [];
      let pieces: Uint8Array[] = [];
      for (const c of chunks) {
        expect(c.events.length).toBeLessThanOrEqual(4096);
        if (c.fragment) {
          pieces.push(c.events);
          continue;
        }
        const regions = pieces.length > 0 ? [new Uint8Array(Buffer.concat(pieces)), c.events] : [c.events];
        pieces = [];
        for (const region of regions) {
          const count = decode_events(region, d);
          const end = d.start[count - 1] - 40 + frame_size_at(d.frames_view, d.start[count - 1] - 40);
          rebuilt.push(d.frames.slice(0, end));
          const refused: string[] = [];
          expect(keep_signed_ranges(d, keys, (problem) => refused.push(problem))).toBe(count);
          expect(refused).toEqual([]);
          expect(d.flags[count - 1] & flag_signed).toBe(flag_signed);
        }
      }
      if (pieces.length > 0) {
        const region = new Uint8Array(Buffer.concat(pieces));
        const count = decode_events(region, d);
        rebuilt.push(d.frames.slice(0, d.start[count - 1] - 40 + frame_size_at(d.frames_view, d.start[count - 1] - 40)));
        expect(keep_signed_ranges(d, keys, () => {})).toBe(count);
      }
      expect(new Uint8Array(Buffer.concat(rebuilt))).toEqual(frames);
      for (const w of writers) await w.close();
    });
  });

  test("a range too big for a message goes alone, in fragments that reassemble to exactly that range", async () => {
    const w = await mem_log({ segment_size_bytes: 1024 * 1024 });
    const small = write_range(w, "before");
    const big = write_range(w, ...Array.from({ length: 40 }, (_, i) => new Uint8Array(500).fill(i)));
    const after = write_range(w, "after");
    const frames = new Uint8Array(Buffer.concat([small, big, after]));
    const view = new DataView(frames.buffer);
    const sent: { events: Uint8Array; part: { at: number; total: number } | null }[] = [];
    const chunker = new EventsChunker(new EventsEncoder(4096), (events, part) => sent.push({ events: events.slice(), part }));
    for (const at of frame_offsets(frames)) chunker.add(frames, view, at);
    chunker.flush();
    const fragments = sent.filter((s) => s.part !== null);
    expect(fragments.length).toBeGreaterThan(4);
    const whole = new Uint8Array(Buffer.concat(fragments.map((f) => f.events)));
    expect(whole.length).toBe(fragments[0].part?.total as number);
    const d = new DecodedEvents();
    expect(decode_events(whole, d)).toBe(40);
    expect(new Uint8Array(d.frames.slice(0, big.length))).toEqual(new Uint8Array(big));
    // The small ranges went in whole messages of their own, not with the fragments.
    const others = sent.filter((s) => s.part === null);
    expect(others.reduce((n, s) => n + decode_events(s.events, d), 0)).toBe(2);
    await w.close();
  });

  test("frames of a range not finished wait in the chunker until flush", async () => {
    const w = await mem_log();
    const range = write_range(w, "a", "b", "c");
    const view = new DataView(range.buffer);
    const sent: Uint8Array[] = [];
    const encoder = new EventsEncoder(4096);
    const chunker = new EventsChunker(encoder, (events) => sent.push(events.slice()));
    const offsets = frame_offsets(range);
    chunker.add(range, view, offsets[0]);
    chunker.add(range, view, offsets[1]);
    expect(chunker.in_range).toBe(true);
    expect(encoder.events).toBe(0);
    chunker.add(range, view, offsets[2]);
    expect(chunker.in_range).toBe(false);
    expect(encoder.events).toBe(3);
    chunker.flush();
    expect(sent.length).toBe(1);
    await w.close();
  });
});

describe("Log.accept_checked and scan_origin", () => {
  test("decoded events land in the log bit for bit as their origin wrote them, and scan back in seq order", async () => {
    await for_seeds(5, async (rng) => {
      // A real origin's 300 events, in signed ranges of 1 to 12 events.
      const writer = await mem_log({ segment_size_bytes: 1024 * 1024 });
      const origin = writer.id;
      while (writer.held(origin) < 300) {
        const n = Math.min(300 - writer.held(origin), rng.int(1, 12));
        write_range(writer, ...Array.from({ length: n }, () => rng.bytes(rng.int(0, 600))));
      }
      const frames = frames_of_log(writer, origin);
      const expected = [...writer.events_after(origin, 0)].map((e) => e.frame.slice());
      const d = new DecodedEvents();
      decode_events(encode_frames(frames), d);
      const log = await Log.open({ dir: temp_dir(), segment_size_bytes: 1024 * 1024 });
      expect(keep_signed_ranges(d, log.keys, () => {})).toBe(300);
      const batch = new CheckedEvents();
      for (let i = 0; i < d.count; i++) {
        batch.push(d.origin[i], d.origin_hi[i], d.origin_lo[i], d.seq[i], d.time_ms[i], d.flags[i], d.crc[i], d.src[i], d.start[i], d.end[i]);
      }
      expect(log.accept_checked(batch)).toBe(300);
      expect(log.accept_checked(batch)).toBe(0);
      expect(log.held(origin)).toBe(300);
      expect(log.verify().ok).toBe(true);
      // Each frame is the origin's, bit for bit: flags, crc and proof as it wrote them.
      const stored = [...log.events_after(origin, 0)].map((e) => e.frame);
      expect(stored).toEqual(expected);
      const scanned: number[] = [];
      log.scan_origin(origin, 100, (map, view, at) => {
        scanned.push(view.getUint32(at + 16, true));
        expect(map.subarray(at, at + 8)).toEqual(expected[scanned.length + 99].subarray(0, 8));
        return scanned.length < 50;
      });
      expect(scanned).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
      await log.close();
      const again = await Log.open({ dir: log.dir });
      expect(again.held(origin)).toBe(300);
      expect(again.verify().ok).toBe(true);
      await again.close();
      await writer.close();
    });
  });

  test("a gap refuses the whole batch and writes nothing", async () => {
    const writer = await mem_log();
    const origin = writer.id;
    const ranges = [write_range(writer, "1"), write_range(writer, "2"), write_range(writer, "3")];
    const log = await Log.open({ dir: temp_dir() });
    const batch = new CheckedEvents();
    for (const frame of [ranges[0], ranges[2]]) {
      const d = new DecodedEvents();
      decode_events(encode_frames(frame), d);
      batch.push(d.origin[0], d.origin_hi[0], d.origin_lo[0], d.seq[0], d.time_ms[0], d.flags[0], d.crc[0], frame, d.start[0], d.end[0]);
    }
    expect(() => log.accept_checked(batch)).toThrow(/SEQ_GAP|only up to seq 1/);
    expect(log.count).toBe(0);
    expect(log.held(origin)).toBe(0);
    await log.close();
    await writer.close();
  });
});
