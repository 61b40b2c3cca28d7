import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { for_seeds } from "../support/seeded.ts";
import { temp_dir } from "../support/temp_dir.ts";
import type { Random } from "../../src/lib/random.ts";

/**
 * Recovery on real files: a log is written, then its bytes are damaged the
 * way a crash or bad media would (cut at a random point, garbage after it,
 * a flipped bit), and reopened. Recovery must never return a corrupt record
 * and never lose a record that lies wholly before the damage.
 */
const segment_size_bytes = 64 * 1024;

interface Written {
  dir: string;
  origin: string;
  payloads: Uint8Array[];
  /** Where each event's frame lies: segment file, start and end (padding included) offsets, and len (header, payload, proof). */
  ends: { file: string; end: number; start: number; len: number }[];
  /** Whether each event's frame ends a signed range (carries the proof). */
  signed: boolean[];
}

/**
 * A log of random batches. Every flush signs the own frames waiting (one
 * signed range, often several batches), so flushes come at random too:
 * ranges of one batch up to a whole segment.
 */
async function write_log(rng: Random): Promise<Written> {
  const dir = temp_dir();
  const log = await Log.open({ dir, segment_size_bytes, sync: "never" });
  const payloads: Uint8Array[] = [];
  const count = rng.int(1, 600);
  const flush_chance = rng.pick([0, 0.05, 0.3, 1]);
  while (payloads.length < count) {
    const n = Math.min(count - payloads.length, rng.chance(0.2) ? rng.int(2, 6) : 1);
    const batch = Array.from({ length: n }, () => rng.bytes(rng.chance(0.02) ? rng.int(2000, 9000) : rng.int(0, 400)));
    if (n === 1) log.append(batch[0]);
    else log.append_batch(batch);
    payloads.push(...batch);
    if (rng.chance(flush_chance)) await log.durable(); // never mode: hands the frames to the OS, signed
  }
  const events = log.read(0, count);
  const ends = events.map((e) => {
    const segment = fs.readdirSync(path.join(dir, "segments")).filter((f) => f.endsWith(".seg")).sort().filter((f) => Number(f.slice(0, 20)) <= e.pos).pop()!;
    const start = e.frame.byteOffset;
    return { file: path.join(dir, "segments", segment), start, end: start + e.frame_bytes, len: new DataView(e.frame.buffer, start).getUint32(0, true) };
  });
  const signed = events.map((e) => e.signed);
  const origin = log.id;
  await log.close();
  // Closing flushes, and a flush signs: the last event ends a range.
  expect(signed[count - 1]).toBe(true);
  return { dir, origin, payloads, ends, signed };
}

describe("recovery", () => {
  test("a cut at a random point, with garbage after it, keeps every event up to the last signed frame before the cut and nothing after", async () => {
    await for_seeds(40, async (rng) => {
      const w = await write_log(rng);
      // Damage the last segment that holds events (cuts are a tail phenomenon: only the active segment is scanned):
      // cut inside or after a random event of it.
      const last_file = w.ends[w.ends.length - 1].file;
      const first_in_last = w.ends.findIndex((e) => e.file === last_file);
      const victim = rng.int(first_in_last, w.payloads.length - 1);
      const { file, start, end, len } = w.ends[victim];
      expect(file).toBe(last_file);
      const cut = rng.int(start, end);
      const fd = fs.openSync(file, "r+");
      const garbage = rng.chance(0.5) ? new Uint8Array(segment_size_bytes - cut) : rng.bytes(Math.min(segment_size_bytes - cut, rng.int(1, 5000)));
      fs.writeSync(fd, garbage, 0, garbage.length, cut);
      fs.closeSync(fd);
      // The victim's frame is still whole when the cut left its header, payload and proof as they were and its padding zero.
      const damaged = fs.readFileSync(file);
      const victim_whole = cut >= start + len && damaged.subarray(start + len, end).every((byte) => byte === 0);
      const whole = victim + (victim_whole ? 1 : 0);
      // What must survive: every event up to the last signed frame among the whole ones (sealed segments end signed).
      let expected = whole;
      while (expected > 0 && !w.signed[expected - 1]) expected--;

      const log = await Log.open({ dir: w.dir, segment_size_bytes });
      const got = log.read(0, 100_000);
      // Nothing corrupt, nothing lost before the last signed frame, nothing unsigned after it.
      expect(got.map((e) => [e.pos, e.origin, e.seq])).toEqual(Array.from({ length: expected }, (_, i) => [i, w.origin, i + 1]));
      for (const e of got) expect(e.payload).toEqual(w.payloads[e.seq - 1]);
      expect(log.held(w.origin)).toBe(expected);
      if (expected > 0) expect(got[expected - 1].signed).toBe(true);
      expect(log.recovery.cut_at_pos ?? expected).toBe(expected);
      expect(log.verify().ok).toBe(true);
      // The repaired log takes new appends and reopens cleanly.
      await log.write(new Uint8Array([1, 2, 3]));
      await log.close();
      const again = await Log.open({ dir: w.dir, segment_size_bytes });
      expect(again.recovery.dropped_bytes).toBe(0);
      expect(again.count).toBe(expected + 1);
      expect(again.get(w.origin, expected + 1)?.payload).toEqual(new Uint8Array([1, 2, 3]));
      expect(again.verify().ok).toBe(true);
      await again.close();
    });
  });

  test("a log whose own tail is unsigned (the proof's frame lost) recovers to the last signed frame; several batches share that range", async () => {
    await for_seeds(20, async (rng) => {
      const dir = temp_dir();
      const log = await Log.open({ dir, segment_size_bytes, sync: "never" });
      const text = (t: string) => new TextEncoder().encode(t);
      log.append(text("one"));
      log.append_batch([text("two"), text("three")]);
      await log.durable(); // signs 1..3
      log.append(text("four"));
      log.append_batch([text("five"), text("six")]);
      log.append(text("seven"));
      await log.close(); // signs 4..7: one range of three batches
      const id = log.id;
      const reader = await Log.open({ dir, segment_size_bytes, read_only: true });
      expect(reader.read(0).map((e) => e.signed)).toEqual([false, false, true, false, false, false, true]);
      const proof_frame = reader.get(id, 7)!;
      const start = proof_frame.frame.byteOffset;
      const end = start + proof_frame.frame_bytes;
      const len = new DataView(proof_frame.frame.buffer, start).getUint32(0, true); // header, payload and proof: the padding after it is zero already
      await reader.close();
      const file = path.join(dir, "segments", fs.readdirSync(path.join(dir, "segments")).find((f) => f.endsWith(".seg"))!);
      // Lose the proof's frame from a random byte on (a write torn there, or never made): events 4..6 stay whole but unsigned.
      const cut = rng.int(start, start + len - 1);
      const fd = fs.openSync(file, "r+");
      fs.writeSync(fd, new Uint8Array(end - cut), 0, end - cut, cut);
      fs.closeSync(fd);

      // Read-only reports the cut and leaves the file as it is.
      const damaged = fs.readFileSync(file);
      const seen = await Log.open({ dir, segment_size_bytes, read_only: true });
      expect(seen.count).toBe(3);
      expect(seen.recovery.cut_at_pos).toBe(3);
      expect(seen.recovery.bad_at_pos).toBe(6);
      await seen.close();
      expect(fs.readFileSync(file).equals(damaged)).toBe(true);
      const repaired = await Log.open({ dir, segment_size_bytes });
      expect(repaired.read(0).map((e) => new TextDecoder().decode(e.payload))).toEqual(["one", "two", "three"]);
      expect(repaired.held(id)).toBe(3);
      expect(repaired.recovery.cut_at_pos).toBe(3);
      expect(repaired.recovery.dropped_bytes).toBeGreaterThan(0);
      expect(repaired.verify().ok).toBe(true);
      // The seqs of the unsigned events are written anew, and nothing of the old ones comes back.
      await repaired.write(text("four again"));
      await repaired.close();
      const again = await Log.open({ dir, segment_size_bytes });
      expect(again.recovery.dropped_bytes).toBe(0);
      expect(again.read(0).map((e) => new TextDecoder().decode(e.payload))).toEqual(["one", "two", "three", "four again"]);
      expect(again.verify().ok).toBe(true);
      await again.close();
    });
  });

  test("a flipped bit in a frame's local word (this replica's marks and epoch, outside crc and signature) is caught", async () => {
    await for_seeds(20, async (rng) => {
      const w = await write_log(rng);
      const victim = rng.int(0, w.payloads.length - 1);
      const { file, start } = w.ends[victim];
      const at = start + 36 + rng.int(0, 3);
      const fd = fs.openSync(file, "r+");
      const byte = new Uint8Array(1);
      fs.readSync(fd, byte, 0, 1, at);
      byte[0] ^= 1 << rng.int(0, 7);
      fs.writeSync(fd, byte, 0, 1, at);
      fs.closeSync(fd);

      const log = await Log.open({ dir: w.dir, segment_size_bytes, read_only: true });
      const report = log.verify();
      expect(report.ok).toBe(false);
      expect(report.first_bad?.pos).toBe(victim);
      await log.close();
    });
  });

  test("a flipped bit in the len word of a frame an earlier run wrote, with later runs' frames after it, is reported, never taken for the end of the data", async () => {
    for (const bit of [0, 7, 15, 31]) {
      const dir = temp_dir();
      // Three runs (three write epochs) into one active segment.
      for (let run = 0; run < 3; run++) {
        const log = await Log.open({ dir, segment_size_bytes: 1024 * 1024, sync: "always" });
        for (let i = 0; i < 5; i++) log.append(new TextEncoder().encode(`run ${run} event ${i}`));
        await log.close();
      }
      const before = await Log.open({ dir, segment_size_bytes: 1024 * 1024, read_only: true });
      // Run 1's first event: it begins a signed range (run 0's closed with its flush), so no batch is pending there.
      const victim = before.read(0, 15)[5];
      const file = path.join(dir, "segments", fs.readdirSync(path.join(dir, "segments")).filter((f) => f.endsWith(".seg")).sort()[0]);
      const at = victim.frame.byteOffset + Math.floor(bit / 8);
      await before.close();
      const fd = fs.openSync(file, "r+");
      const byte = new Uint8Array(1);
      fs.readSync(fd, byte, 0, 1, at);
      byte[0] ^= 1 << bit % 8;
      fs.writeSync(fd, byte, 0, 1, at);
      fs.closeSync(fd);
      const log = await Log.open({ dir, segment_size_bytes: 1024 * 1024, read_only: true });
      const report = log.verify();
      expect(report.ok).toBe(false);
      expect(report.first_bad?.pos).toBe(5);
      await log.close();
    }
  });

  test("verify finds a flipped bit in a sealed or the active segment and reports its position", async () => {
    await for_seeds(40, async (rng) => {
      const w = await write_log(rng);
      const victim = rng.int(0, w.payloads.length - 1);
      const { file, start, end } = w.ends[victim];
      const at = rng.int(start, end - 1);
      const fd = fs.openSync(file, "r+");
      const byte = new Uint8Array(1);
      fs.readSync(fd, byte, 0, 1, at);
      byte[0] ^= 1 << rng.int(0, 7);
      fs.writeSync(fd, byte, 0, 1, at);
      fs.closeSync(fd);

      const log = await Log.open({ dir: w.dir, segment_size_bytes, read_only: true });
      const report = log.verify();
      expect(report.ok).toBe(false);
      expect(report.first_bad?.pos).toBe(victim);
      for (const e of log.read(0, victim)) expect(e.payload).toEqual(w.payloads[e.seq - 1]);
      await log.close();
    });
  });

  test("bytes past the data are not the log's (a recycled file holds stale frames there): verify passes, and appends continue before them", async () => {
    await for_seeds(10, async (rng) => {
      const w = await write_log(rng);
      const { file, end } = w.ends[w.ends.length - 1];
      const at = rng.int(end + 8, segment_size_bytes - 1);
      const fd = fs.openSync(file, "r+");
      fs.writeSync(fd, new Uint8Array([0x10]), 0, 1, at);
      fs.closeSync(fd);
      const reader = await Log.open({ dir: w.dir, segment_size_bytes, read_only: true });
      expect(reader.verify().ok).toBe(true);
      expect(reader.count).toBe(w.payloads.length);
      await reader.close();
      const log = await Log.open({ dir: w.dir, segment_size_bytes });
      expect(log.recovery.dropped_bytes).toBe(0);
      await log.write(new TextEncoder().encode("after"));
      await log.close();
      const again = await Log.open({ dir: w.dir, segment_size_bytes, read_only: true });
      expect(again.count).toBe(w.payloads.length + 1);
      expect(new TextDecoder().decode(again.read(w.payloads.length, 1)[0].payload)).toBe("after");
      expect(again.verify().ok).toBe(true);
      await again.close();
    });
  });
});
