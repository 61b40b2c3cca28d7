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
  /** Where each event's frame ends: [segment file, end offset]. */
  ends: { file: string; end: number; start: number }[];
}

async function write_log(rng: Random): Promise<Written> {
  const dir = temp_dir();
  const log = await Log.open({ dir, segment_size_bytes, sync: "never" });
  const payloads: Uint8Array[] = [];
  const count = rng.int(1, 600);
  while (payloads.length < count) {
    const n = Math.min(count - payloads.length, rng.chance(0.2) ? rng.int(2, 6) : 1);
    const batch = Array.from({ length: n }, () => rng.bytes(rng.chance(0.02) ? rng.int(2000, 9000) : rng.int(0, 400)));
    if (n === 1) log.append(batch[0]);
    else log.append_batch(batch);
    payloads.push(...batch);
  }
  const ends = log.read(0, count).map((e) => {
    const segment = fs.readdirSync(path.join(dir, "segments")).filter((f) => f.endsWith(".seg")).sort().filter((f) => Number(f.slice(0, 20)) <= e.pos).pop()!;
    const start = e.frame.byteOffset;
    return { file: path.join(dir, "segments", segment), start, end: start + e.frame_bytes };
  });
  const origin = log.id;
  await log.close();
  return { dir, origin, payloads, ends };
}

describe("recovery", () => {
  test("a cut at a random point, with garbage after it, keeps every whole batch before the cut and nothing corrupt", async () => {
    await for_seeds(40, async (rng) => {
      const w = await write_log(rng);
      // Damage the last segment that holds events (cuts are a tail phenomenon: only the active segment is scanned):
      // cut inside or after a random event of it.
      const last_file = w.ends[w.ends.length - 1].file;
      const first_in_last = w.ends.findIndex((e) => e.file === last_file);
      const victim = rng.int(first_in_last, w.payloads.length - 1);
      const { file, start, end } = w.ends[victim];
      expect(file).toBe(last_file);
      const cut = rng.int(start, end);
      const fd = fs.openSync(file, "r+");
      const garbage = rng.chance(0.5) ? new Uint8Array(segment_size_bytes - cut) : rng.bytes(Math.min(segment_size_bytes - cut, rng.int(1, 5000)));
      fs.writeSync(fd, garbage, 0, garbage.length, cut);
      fs.closeSync(fd);

      const log = await Log.open({ dir: w.dir, segment_size_bytes });
      const got = log.read(0, 100_000);
      // Nothing corrupt: every returned event is exactly what was written at its seq.
      for (const e of got) expect(e.payload).toEqual(w.payloads[e.seq - 1]);
      // Nothing lost before the damage: every event ending at or before the cut whose batch also ended there.
      const kept = got.length;
      // The victim itself survives only when the cut left its header and payload whole (zeros in its padding are fine).
      expect(kept).toBeLessThanOrEqual(victim + (cut >= start + 40 + w.payloads[victim].length ? 1 : 0));
      expect(kept).toBeGreaterThanOrEqual(victim - 6); // at most one torn batch (<= 6 events) before it is dropped
      expect(log.verify().ok).toBe(true);
      // The repaired log takes new appends and reopens cleanly.
      await log.write(new Uint8Array([1, 2, 3]));
      await log.close();
      const again = await Log.open({ dir: w.dir, segment_size_bytes });
      expect(again.recovery.dropped_bytes).toBe(0);
      expect(again.count).toBe(kept + 1);
      await again.close();
    });
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

  test("verify finds a flipped bit in the unused zero space", async () => {
    await for_seeds(10, async (rng) => {
      const w = await write_log(rng);
      const { file, end } = w.ends[w.ends.length - 1];
      const at = rng.int(end + 8, segment_size_bytes - 1);
      const fd = fs.openSync(file, "r+");
      fs.writeSync(fd, new Uint8Array([0x10]), 0, 1, at);
      fs.closeSync(fd);
      const log = await Log.open({ dir: w.dir, segment_size_bytes, read_only: true });
      const report = log.verify();
      expect(report.ok).toBe(false);
      expect(report.first_bad?.pos).toBe(w.payloads.length);
      await log.close();
    });
  });
});
