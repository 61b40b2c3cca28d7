import { segment_size_default_bytes } from "../../src/index.ts";
import { frame_size_bytes } from "../../src/log/frame.ts";
import { append_in_batches } from "./appender.ts";
import { open_bench_log } from "./bench_log.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";

const payload_bytes = 256;
const build_batch_events = 1000;
const opens_measured = 7;
const small_segments = 1;
const big_segments = 16;

/** Events that fill one default segment exactly. */
const events_per_segment = Math.floor(segment_size_default_bytes / frame_size_bytes(payload_bytes));

export interface OpenTimes {
  /** Median Log.open time of the 64 MiB log (1 segment). */
  small_ms: number;
  /** Median Log.open time of the 1 GiB log (16 segments). */
  big_ms: number;
}

/**
 * Log.open times of a log of 1 full default-size segment (64 MiB) and one of
 * 16 (1 GiB). Both end in the same tail, one full active segment that open
 * must scan (the worst case), so the comparison shows what the rest of the
 * log costs. Opens of the two alternate, so a slow spell of the box hits
 * both; medians. Pages are cached (just written), as on a restarted service;
 * dropping caches needs root and hits the whole box.
 */
export function open_times(ctx: BenchContext): Promise<OpenTimes> {
  return ctx.shared("open_times", async () => {
    const small_dir = await build_log(ctx, small_segments);
    try {
      const big_dir = await build_log(ctx, big_segments);
      try {
        ctx.settle();
        const small: number[] = [];
        const big: number[] = [];
        for (let i = 0; i <= opens_measured; i++) {
          const small_ms = await open_ms(ctx, small_dir);
          const big_ms = await open_ms(ctx, big_dir);
          if (i === 0) continue; // the first opens warm up the JIT
          small.push(small_ms);
          big.push(big_ms);
        }
        const times = { small_ms: median(small), big_ms: median(big) };
        ctx.progress(`open of ${small_segments} segment: median ${times.small_ms.toFixed(1)} ms (${list(small)})`);
        ctx.progress(`open of ${big_segments} segments: median ${times.big_ms.toFixed(1)} ms (${list(big)})`);
        return times;
      } finally {
        ctx.remove_dir(big_dir);
      }
    } finally {
      ctx.remove_dir(small_dir);
    }
  });
}

async function build_log(ctx: BenchContext, segments: number): Promise<string> {
  const dir = ctx.fresh_dir(`open-${segments}-segments`);
  const pool = payload_pool(payload_bytes);
  const bench_log = await open_bench_log({ dir, sync: "never" });
  const log = bench_log.log;
  const started = performance.now();
  // Whole segments at a time so batches never straddle a rotation and every segment ends full.
  for (let s = 0; s < segments; s++) await append_in_batches(log, pool, events_per_segment, build_batch_events);
  const bytes = log.bytes;
  const built_segments = log.segment_count;
  await bench_log.close();
  ctx.progress(`built a ${(bytes / 2 ** 20).toFixed(0)} MiB log of ${built_segments} segment(s) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

async function open_ms(ctx: BenchContext, dir: string): Promise<number> {
  const started = performance.now();
  const opened = await open_bench_log({ dir, sync: "never" });
  const ms = performance.now() - started;
  const scanned = opened.log.recovery.scanned_bytes;
  await opened.close();
  if (scanned !== events_per_segment * frame_size_bytes(payload_bytes)) ctx.progress(`note: open scanned ${scanned} bytes, expected one full segment`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

function list(values: number[]): string {
  return values.map((v) => v.toFixed(0)).join(", ");
}
