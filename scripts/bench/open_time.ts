import { segment_size_default_bytes } from "../../src/index.ts";
import { frame_size_bytes } from "../../src/log/frame.ts";
import { append_in_batches } from "./appender.ts";
import { open_bench_log } from "./bench_log.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";

const payload_bytes = 256;
const build_batch_events = 1000;
const opens_measured = 5;

/** Events that fill one default segment exactly. */
const events_per_segment = Math.floor(segment_size_default_bytes / frame_size_bytes(payload_bytes));

export interface OpenTime {
  median_ms: number;
  segments: number;
  bytes: number;
  scanned_bytes: number;
}

/**
 * Median Log.open time of a log of `segments` full default-size segments
 * (1 = 64 MiB, 16 = 1 GiB). Every such log ends in the same tail, one full
 * active segment that open must scan (the worst case), so the comparison
 * shows what the rest of the log costs. Pages are cached (just written), as
 * on a restarted service; dropping caches needs root and hits the whole box.
 */
export function open_time(ctx: BenchContext, segments: number): Promise<OpenTime> {
  return ctx.shared(`open_time_${segments}`, async () => {
    const dir = ctx.fresh_dir(`open-${segments}-segments`);
    try {
      const pool = payload_pool(payload_bytes);
      const bench_log = await open_bench_log({ dir, sync: "never" });
      const log = bench_log.log;
      const build_started = performance.now();
      // Whole segments at a time so batches never straddle a rotation and every segment ends full.
      for (let s = 0; s < segments; s++) await append_in_batches(log, pool, events_per_segment, build_batch_events);
      const bytes = log.bytes;
      const built_segments = log.segment_count;
      await bench_log.close();
      ctx.progress(`built a ${(bytes / 2 ** 20).toFixed(0)} MiB log of ${built_segments} segment(s) in ${((performance.now() - build_started) / 1000).toFixed(1)} s`);
      ctx.settle();
      const times: number[] = [];
      let scanned_bytes = 0;
      for (let i = 0; i <= opens_measured; i++) {
        const started = performance.now();
        const opened = await open_bench_log({ dir, sync: "never" });
        const ms = performance.now() - started;
        scanned_bytes = opened.log.recovery.scanned_bytes;
        await opened.close();
        if (i > 0) times.push(ms); // the first open warms up the JIT
      }
      times.sort((a, b) => a - b);
      const median_ms = times[times.length >> 1];
      ctx.progress(
        `open of ${built_segments} segment(s): median ${median_ms.toFixed(1)} ms (${times.map((t) => t.toFixed(1)).join(", ")}), scanned ${(scanned_bytes / 2 ** 20).toFixed(1)} MiB`,
      );
      return { median_ms, segments: built_segments, bytes, scanned_bytes };
    } finally {
      ctx.remove_dir(dir);
    }
  });
}
