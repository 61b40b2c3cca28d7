import fs from "node:fs";
import path from "node:path";
import { append_one_by_one, wait_for_spare_segment } from "./appender.ts";
import { open_bench_log } from "./bench_log.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";

/** Shared by append_256b_never and append_256b_vs_sqlite: one measurement per run. */
export const append_payload_bytes = 256;
export const append_never_events = 2_000_000;
const rounds = 3;
const raw_write_chunk_bytes = 64 * 1024;

export interface NeverRates {
  /** Our append() rate in sync=never until the bytes are on disk (close), best of the rounds. */
  log_events_per_s: number;
  /** Raw sequential write of the same payload bytes with 64 KiB write() calls and one final fdatasync, bytes/s, best of the rounds. */
  raw_bytes_per_s: number;
}

/**
 * Both sides are timed until their bytes are on disk (like `dd
 * conv=fdatasync`): half a gigabyte fits in this box's page cache, and a
 * buffered-only figure measures memcpy into the cache (1.7-5.8 GB/s here,
 * varying run to run), not a rate a log can sustain. The buffered figures are
 * printed as progress. Rounds alternate raw and log on fresh directories and
 * the best of each is kept, so neither side pays alone for the other's
 * writeback.
 */
export function never_rates(ctx: BenchContext): Promise<NeverRates> {
  return ctx.shared("append_256b_never_rates", async () => {
    const pool = payload_pool(append_payload_bytes);
    const total_bytes = append_never_events * append_payload_bytes;
    let best_log = 0;
    let best_raw = 0;
    for (let round = 1; round <= rounds; round++) {
      ctx.settle();
      const raw = raw_write(ctx, new Uint8Array(pool[0].buffer), total_bytes);
      best_raw = Math.max(best_raw, raw.bytes_per_s);
      ctx.progress(
        `raw write round ${round}: ${(raw.bytes_per_s / 1e6).toFixed(0)} MB/s to disk = ${(raw.bytes_per_s / append_payload_bytes / 1e6).toFixed(2)} M x ${append_payload_bytes} B/s ` +
          `(buffered part ${(raw.buffered_bytes_per_s / 1e6).toFixed(0)} MB/s)`,
      );
      ctx.settle();
      const dir = ctx.fresh_dir("append-never");
      const bench_log = await open_bench_log({ dir, sync: "never" });
      await wait_for_spare_segment(dir);
      const run = await append_one_by_one(bench_log.log, pool, append_never_events);
      const close_started = performance.now();
      await bench_log.close();
      const close_s = (performance.now() - close_started) / 1000;
      ctx.remove_dir(dir);
      const events_per_s = run.events / (run.seconds + close_s);
      best_log = Math.max(best_log, events_per_s);
      ctx.progress(
        `log append round ${round}: ${(events_per_s / 1e6).toFixed(2)} M events/s to disk ` +
          `(buffered ${(run.events_per_s / 1e6).toFixed(2)} M/s: ${run.events} events in ${run.seconds.toFixed(2)} s + close ${(close_s * 1000).toFixed(0)} ms; ` +
          `turn median ${run.median_chunk_ms.toFixed(1)} ms, slowest ${run.slowest_chunk_ms.toFixed(1)} ms)`,
      );
    }
    return { log_events_per_s: best_log, raw_bytes_per_s: best_raw };
  });
}

/** Writes total_bytes into a new file with raw_write_chunk_bytes write() calls from `source`, then fdatasync. */
function raw_write(ctx: BenchContext, source: Uint8Array, total_bytes: number): { bytes_per_s: number; buffered_bytes_per_s: number } {
  const dir = ctx.fresh_dir("raw-write");
  const fd = fs.openSync(path.join(dir, "raw"), "w");
  try {
    const started = performance.now();
    let source_at = 0;
    for (let done = 0; done < total_bytes; ) {
      const n = Math.min(raw_write_chunk_bytes, total_bytes - done, source.length - source_at);
      done += fs.writeSync(fd, source, source_at, n);
      source_at = (source_at + n) % source.length;
    }
    const buffered_s = (performance.now() - started) / 1000;
    fs.fdatasyncSync(fd);
    const seconds = (performance.now() - started) / 1000;
    return { bytes_per_s: total_bytes / seconds, buffered_bytes_per_s: total_bytes / buffered_s };
  } finally {
    fs.closeSync(fd);
    ctx.remove_dir(dir);
  }
}
