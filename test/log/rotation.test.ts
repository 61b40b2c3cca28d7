import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { Origin } from "../support/origin.ts";
import { dec, enc, temp_dir } from "../support/temp_dir.ts";
import { for_seeds } from "../support/seeded.ts";

const segment_size_bytes = 64 * 1024;

describe("segment rotation", () => {
  test("a log across many segments reopens from summaries and reads from any position", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir, segment_size_bytes, sync: "never" });
    let now = 0;
    const origin = await Origin.open({ clock: { now_ms: () => now } });
    const other = origin.id;
    const expected: string[] = [];
    for (let i = 0; i < 6000; i++) {
      const text = `event ${i} ${"x".repeat(i % 97)}`;
      now = i;
      if (i % 3 === 0) expect(log.accept_frames(origin.write(text))).toEqual({ appended: 1, dropped: {} });
      else log.append(enc(text));
      expected.push(text);
      if (i % 500 === 0) await Bun.sleep(0); // let the spare segment be prepared, as a server would
    }
    expect(log.segment_count).toBeGreaterThanOrEqual(8);
    await log.close();
    await origin.close();

    const files = fs.readdirSync(path.join(dir, "segments"));
    const segments = files.filter((f) => f.endsWith(".seg"));
    const summaries = files.filter((f) => f.endsWith(".sum"));
    expect(summaries.length).toBe(segments.length - 1); // every sealed segment has its summary
    for (const f of segments) expect(fs.statSync(path.join(dir, "segments", f)).size).toBe(segment_size_bytes);

    const again = await Log.open({ dir, segment_size_bytes });
    expect(again.recovery.scanned_bytes).toBeLessThanOrEqual(segment_size_bytes); // only the active segment was scanned
    expect(again.count).toBe(6000);
    await for_seeds(50, (rng) => {
      const from = rng.int(0, 5999);
      const got = again.read(from, 300).map((e) => dec(e.payload));
      expect(got).toEqual(expected.slice(from, from + 300));
    });
    expect([...again.iterate(0)].map((e) => dec(e.payload))).toEqual(expected);
    for (let seq = 1; seq <= 2000; seq += 37) {
      const theirs = again.get(other, seq)!;
      expect(dec(theirs.payload)).toBe(expected[(seq - 1) * 3]);
      expect(theirs.time_ms).toBe((seq - 1) * 3);
    }
    const mine = [...again.events_after(again.id, 3990)];
    expect(mine.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 3991 + i));
    expect(again.verify()).toMatchObject({ ok: true, events: 6000 });
    await again.close();
  });

  test("a lost summary is rebuilt by scanning that segment", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir, segment_size_bytes, sync: "never" });
    for (let i = 0; i < 3000; i++) log.append(enc(`e${i}`));
    await log.close();
    const sums = fs.readdirSync(path.join(dir, "segments")).filter((f) => f.endsWith(".sum"));
    expect(sums.length).toBeGreaterThan(0);
    fs.rmSync(path.join(dir, "segments", sums[0]));
    fs.writeFileSync(path.join(dir, "segments", sums[1] ?? sums[0]), "garbage");
    const again = await Log.open({ dir, segment_size_bytes });
    expect(again.count).toBe(3000);
    expect(again.recovery.dropped_bytes).toBe(0);
    expect(again.verify().ok).toBe(true);
    await again.close();
    expect(fs.readdirSync(path.join(dir, "segments")).filter((f) => f.endsWith(".sum")).length).toBe(sums.length);
  });

  test("rotation uses the prepared spare so the next segment exists before it is needed", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir, segment_size_bytes });
    await log.write(enc("first"));
    for (let i = 0; i < 50 && !fs.existsSync(path.join(dir, "segments", "spare")); i++) await Bun.sleep(10);
    expect(fs.existsSync(path.join(dir, "segments", "spare"))).toBe(true);
    while (log.segment_count === 1) log.append(new Uint8Array(1000));
    expect(fs.existsSync(path.join(dir, "segments", "spare"))).toBe(false); // renamed into place
    await log.durable();
    await log.close();
  });
});
