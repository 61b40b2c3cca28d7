import { heapStats } from "bun:jsc";
import { append_one_by_one, wait_for_spare_segment } from "./appender.ts";
import { open_bench_log } from "./bench_log.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const payload_bytes = 256;
const warmup_events = 500_000;
const measured_events = 1_000_000;
const max_growth_bytes = 1024 * 1024;

export const heap_growth_per_1m_appends_bytes: Benchmark = {
  name: "heap_growth_per_1m_appends_bytes",
  unit: "bytes",
  description: `GC-managed JS heap (without mapped segments) after full GC, after ${measured_events / 1e6}M appends of ${payload_bytes} B minus before, on a warmed-up log (sync=never)`,
  target: { text: `<= ${max_growth_bytes / 1024} KiB`, met: (r) => r.value <= max_growth_bytes },
  async run(ctx) {
    const growth = await heap_growth(ctx);
    return { value: growth, baseline: null, ratio: null };
  },
};

interface HeapSnapshot {
  /** GC-managed heap: JSC's heapSize minus its "extra memory". */
  heap_bytes: number;
  /** External memory JSC was told about, mostly every live segment mapping at its full size (address space backed by the page cache, not heap). */
  extra_bytes: number;
}

function heap_after_gc(): HeapSnapshot {
  Bun.gc(true);
  Bun.gc(true);
  const stats = heapStats();
  return { heap_bytes: stats.heapSize - stats.extraMemorySize, extra_bytes: stats.extraMemorySize };
}

async function heap_growth(ctx: BenchContext): Promise<number> {
  const pool = payload_pool(payload_bytes);
  const dir = ctx.fresh_dir("heap");
  const bench_log = await open_bench_log({ dir, sync: "never" });
  const log = bench_log.log;
  try {
    await wait_for_spare_segment(dir);
    // Warm up: JIT, staging buffer, a rotation, the waiter queues.
    await append_one_by_one(log, pool, warmup_events);
    const segments_before = log.segment_count;
    const before = heap_after_gc();
    const run = await append_one_by_one(log, pool, measured_events);
    const after = heap_after_gc();
    const growth = ((after.heap_bytes - before.heap_bytes) * 1_000_000) / measured_events;
    ctx.progress(
      `heap: ${(before.heap_bytes / 2 ** 20).toFixed(2)} MiB before, ${(after.heap_bytes / 2 ** 20).toFixed(2)} MiB after ${run.events} appends: ` +
        `${(growth / 1024).toFixed(1)} KiB per million appends; segments ${segments_before} -> ${log.segment_count}, ` +
        `mappings counted as external memory ${(before.extra_bytes / 2 ** 20).toFixed(0)} -> ${(after.extra_bytes / 2 ** 20).toFixed(0)} MiB`,
    );
    return growth;
  } finally {
    await bench_log.close();
    ctx.remove_dir(dir);
  }
}
