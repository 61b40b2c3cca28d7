import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { dec, enc, temp_dir } from "../support/temp_dir.ts";
import { wait_for } from "../support/wait_for.ts";

const segment_size_bytes = 256 * 1024;

/** KiB of `file` resident in this process's mappings (/proc/self/smaps). */
function resident_kib(file: string): number {
  const real = fs.realpathSync(file);
  let in_file = false;
  let kib = 0;
  for (const line of fs.readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      in_file = header[1] === real;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && in_file) kib += Number(rss[1]);
  }
  return kib;
}

describe("a sealed segment's pages", () => {
  test("read once, they leave the process's RSS when the segment is sealed and durable; its events still read back whole", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir, segment_size_bytes, sync: "always" });
    try {
      const texts: string[] = [];
      // Durable batches, each read back whole (as sync reads what it publishes), until the log moves to a second segment.
      const append_until_rotation = async () => {
        const before = log.segment_count;
        while (log.segment_count === before) {
          const batch = Array.from({ length: 50 }, (_, i) => `event ${texts.length + i} ${"x".repeat(200)}`);
          await log.write(batch.map(enc));
          texts.push(...batch);
          if (log.segment_count === before) expect(log.read(0, texts.length).map((e) => dec(e.payload))).toEqual(texts);
        }
      };
      const segments = path.join(dir, "segments");
      await append_until_rotation();
      const first = path.join(segments, fs.readdirSync(segments).filter((f) => f.endsWith(".seg")).sort()[0]);
      // The rotation sealed the first segment, whose pages the reads brought in; once the seal is durable they are let go.
      await wait_for("the sealed segment's pages to leave RSS", async () => (resident_kib(first) === 0 ? true : null), 10_000);
      // Nothing is lost: the data comes back from the page cache (or disk).
      expect(log.read(0, texts.length).map((e) => dec(e.payload))).toEqual(texts);
      expect(resident_kib(first)).toBeGreaterThan(0);
      // At the next seal the new sealed segment is let go, and the first again (its pages came back with the read above).
      await append_until_rotation();
      const second = path.join(segments, fs.readdirSync(segments).filter((f) => f.endsWith(".seg")).sort()[1]);
      await wait_for("both sealed segments' pages to leave RSS", async () => (resident_kib(second) === 0 && resident_kib(first) === 0 ? true : null), 10_000);
      expect(log.read(0, texts.length).map((e) => dec(e.payload))).toEqual(texts);
    } finally {
      await log.close();
    }
  });
});
