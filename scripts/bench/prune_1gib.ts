/**
 * What a prune costs (issue 13, "prune_1gib_ms"): log.prune() of 16
 * acknowledged 64 MiB segments, 1 GiB, on the run's disk: the pruned state
 * written durably, sixteen summaries and segment files removed (the first
 * renamed to the spare when none is ready), one directory fsync. Baseline:
 * unlinking sixteen 64 MiB files of written data plus one directory fsync,
 * alternating with the log's rounds. The figure is what the prune call
 * costs; the progress line also says how much space it freed at once and
 * after a forced GC (the log's mappings keep unlinked segment files
 * allocated until the GC unmaps them) and how long that GC took.
 */
import fs from "node:fs";
import path from "node:path";
import { Log, segment_size_default_bytes } from "../../src/index.ts";
import type { AckSource } from "../../src/log/retention.ts";
import { append_in_batches, wait_for_spare_segment } from "./appender.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";
import { fs_type, segment_creation_method } from "./write_amplification.ts";

const segment_bytes = segment_size_default_bytes;
const pruned_segments = 16;
const rounds = 3;
/** Big payloads fill the gigabyte fast; what a prune does does not depend on the events' size. */
const fill_payload_bytes = 4000;

const acks_everything: AckSource = { upstreams_of: () => ["bench"], held_by: () => Number.MAX_SAFE_INTEGER, upstreams: () => ["bench"] };

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function free_bytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

function open(dir: string): Promise<Log> {
  return Log.open({ dir, sync: "never", segment_size_bytes: segment_bytes });
}

/** Unlinking the same number of files of written data, and the directory fsync: ms. */
function raw_unlink_ms(ctx: BenchContext): number {
  const dir = ctx.fresh_dir("prune-raw");
  try {
    const chunk = new Uint8Array(1024 * 1024).fill(0x5a);
    const files: string[] = [];
    for (let i = 0; i < pruned_segments; i++) {
      const file = path.join(dir, `f${i}`);
      const fd = fs.openSync(file, "w");
      for (let at = 0; at < segment_bytes; at += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, at);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      files.push(file);
    }
    ctx.settle();
    const started = performance.now();
    for (const file of files) fs.unlinkSync(file);
    const dfd = fs.openSync(dir, "r");
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    return performance.now() - started;
  } finally {
    ctx.remove_dir(dir);
  }
}

interface PruneTimes {
  log_ms: number;
  raw_ms: number;
}

function prune_times(ctx: BenchContext): Promise<PruneTimes> {
  return ctx.shared("prune_1gib", async () => {
    const dir = ctx.fresh_dir("prune-1gib");
    const pool = payload_pool(fill_payload_bytes, 256);
    const log_ms: number[] = [];
    const raw_ms: number[] = [];
    try {
      const type = fs_type(dir);
      ctx.progress(`file system of ${dir}: ${type}${type === "tmpfs" ? " (NOT a disk: run with --dir on one)" : ""}`);
      ctx.progress(`segment files on this disk: ${await segment_creation_method(dir)}`);
      let log = await open(dir);
      for (let round = 1; round <= rounds; round++) {
        // Sixteen sealed segments from the first position held, the seventeenth active.
        const filled_started = performance.now();
        while (log.segment_count < pruned_segments + 1) await append_in_batches(log, pool, 4096, 256);
        // Closed and reopened: everything durable and summarized, as on a device that has run for a while.
        await log.close();
        ctx.settle();
        log = await open(dir);
        log.set_acks(acks_everything);
        await wait_for_spare_segment(dir);
        await log.maintain();
        const fill_s = (performance.now() - filled_started) / 1000;
        const first_pos = log.first_pos;
        const free_before = free_bytes(dir);
        const started = performance.now();
        const result = await log.prune();
        const elapsed = performance.now() - started;
        const bytes = result.segments.length * segment_bytes;
        if (result.segments.length !== pruned_segments) throw new Error(`round ${round} pruned ${result.segments.length} segments, not ${pruned_segments}`);
        log_ms.push(elapsed);
        // The unlinked files stay allocated while the log's mappings of them live: the space comes back when the GC unmaps them.
        const freed_by_prune = free_bytes(dir) - free_before;
        const gc_started = performance.now();
        Bun.gc(true);
        const gc_ms = performance.now() - gc_started;
        const freed_after_gc = free_bytes(dir) - free_before;
        ctx.settle();
        raw_ms.push(raw_unlink_ms(ctx));
        ctx.progress(
          `round ${round}: filled 16 segments in ${fill_s.toFixed(1)} s; prune of ${result.segments.length} segments (${(bytes / 2 ** 30).toFixed(2)} GiB, positions ${first_pos}..${log.first_pos}) ` +
            `took ${elapsed.toFixed(1)} ms and freed ${(freed_by_prune / 2 ** 20).toFixed(0)} MiB on the file system; a forced GC then took ${gc_ms.toFixed(0)} ms ` +
            `and the free space had grown by ${(freed_after_gc / 2 ** 20).toFixed(0)} MiB; unlinking 16 raw 64 MiB files + directory fsync ${raw_ms[raw_ms.length - 1].toFixed(1)} ms`,
        );
      }
      await log.close();
      const times = { log_ms: median(log_ms), raw_ms: median(raw_ms) };
      ctx.progress(`median of ${rounds}: prune ${times.log_ms.toFixed(1)} ms (${log_ms.map((v) => v.toFixed(1)).join(" ")}), raw unlink ${times.raw_ms.toFixed(1)} ms (${raw_ms.map((v) => v.toFixed(1)).join(" ")})`);
      return times;
    } finally {
      ctx.remove_dir(dir);
    }
  });
}

export const prune_1gib_ms: Benchmark = {
  name: "prune_1gib_ms",
  unit: "ms",
  description: `log.prune() of ${pruned_segments} acknowledged ${segment_bytes / 2 ** 20} MiB segments (1 GiB), median of ${rounds}; baseline: unlinking ${pruned_segments} raw files of that size + directory fsync`,
  async run(ctx) {
    const t = await prune_times(ctx);
    return { value: t.log_ms, baseline: t.raw_ms, ratio: t.log_ms / t.raw_ms };
  },
};
