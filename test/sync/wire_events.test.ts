import { describe, expect, test } from "bun:test";
import type { Random } from "../../src/lib/random.ts";
import { CheckedEvents } from "../../src/log/checked_events.ts";
import { flag_batch_end, flag_rejected, frame_size_bytes } from "../../src/log/frame.ts";
import { Log } from "../../src/log/log.ts";
import { Malformed } from "../../src/sync/malformed.ts";
import { DecodedEvents, EventsEncoder, decode_events, encode_frames } from "../../src/sync/wire_events.ts";
import { make_frame } from "../sim/hostile.ts";
import { for_seeds } from "../support/seeded.ts";
import { temp_dir } from "../support/temp_dir.ts";

interface Ev {
  origin: string;
  seq: number;
  time_ms: number;
  flags: number;
  payload: Uint8Array;
}

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
    events.push({ origin, seq, time_ms, flags: rng.int(0, 3) & (flag_batch_end | flag_rejected), payload: rng.bytes(size) });
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
      const take = (): void => {
        const chunk = encoder.chunk();
        expect(chunk.length).toBeLessThanOrEqual(8192);
        decode_events(chunk.slice(), d);
        decoded.push(...decoded_list(d));
        encoder.reset();
      };
      for (let at = 0; at < frames.length; ) {
        if (!encoder.add(frames, view, at)) {
          expect(encoder.events).toBeGreaterThan(0);
          take();
          continue;
        }
        at += frame_size_bytes(view.getUint32(at, true) - 40);
      }
      take();
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

describe("Log.accept_checked and scan_origin", () => {
  test("decoded events land in the log bit for bit as their origin wrote them, and scan back in seq order", async () => {
    await for_seeds(5, async (rng) => {
      const origin = origins[0];
      const events = Array.from({ length: 300 }, (_, i) => ({ origin, seq: i + 1, time_ms: 1000 + i, flags: i % 7 === 6 ? flag_batch_end : 0, payload: rng.bytes(rng.int(0, 600)) }));
      const frames = frames_of(events);
      const d = new DecodedEvents();
      decode_events(encode_frames(frames), d);
      const batch = new CheckedEvents();
      for (let i = 0; i < d.count; i++) {
        batch.push(d.origin[i], d.origin_hi[i], d.origin_lo[i], d.seq[i], d.time_ms[i], d.flags[i], d.crc[i], d.src[i], d.start[i], d.end[i]);
      }
      const log = await Log.open({ dir: temp_dir(), segment_size_bytes: 1024 * 1024 });
      expect(log.accept_checked(batch)).toBe(300);
      expect(log.accept_checked(batch)).toBe(0);
      expect(log.held(origin)).toBe(300);
      expect(log.verify().ok).toBe(true);
      // Each frame is the origin's, except that the batch's last one now ends a batch.
      const stored = [...log.events_after(origin, 0)].map((e) => e.frame);
      const expected = events.map((e, i) => make_frame(e.origin, e.seq, e.payload, e.time_ms, i === 299 ? e.flags | flag_batch_end : e.flags));
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
    });
  });

  test("a gap refuses the whole batch and writes nothing", async () => {
    const log = await Log.open({ dir: temp_dir() });
    const payload = new Uint8Array([1, 2, 3]);
    const batch = new CheckedEvents();
    const frame = make_frame(origins[0], 1, payload);
    const crc = new DataView(frame.buffer).getUint32(4, true);
    batch.push(origins[0], 0, 0xa1, 1, 1, flag_batch_end, crc, frame, 40, 43);
    batch.push(origins[0], 0, 0xa1, 3, 1, flag_batch_end, -1, frame, 40, 43);
    expect(() => log.accept_checked(batch)).toThrow(/SEQ_GAP|only up to seq 1/);
    expect(log.count).toBe(0);
    await log.close();
  });
});
