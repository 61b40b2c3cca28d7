import { wait_for_spare_segment } from "./appender.ts";
import { open_bench_log } from "./bench_log.ts";
import type { BenchContext } from "./context.ts";
import { FdatasyncProbe } from "./fdatasync_rate.ts";
import { payload_pool } from "./payloads.ts";

const payload_bytes = 256;
const warmup_ms = 300;
/**
 * The disk's fsync rate drifts by several times within seconds here (a VM
 * disk shared with other work), so the log and the fdatasync baseline are
 * measured in alternating slices and each side's slices are summed: a slow
 * spell hits both.
 */
const slices = 4;
const slice_log_ms = 750;
const slice_probe_ms = 500;

export interface DurableRun {
  events_per_s: number;
  fdatasync_per_s: number;
  events_per_fsync: number;
}

/**
 * `appenders` concurrent loops on one log in sync=always, each appending one
 * event and awaiting its durability before the next. What a server with that
 * many concurrent writers sees: appends arriving while an fsync is in flight
 * share the next one (group commit).
 */
export async function durable_appenders(ctx: BenchContext, appenders: number): Promise<DurableRun> {
  const pool = payload_pool(payload_bytes);
  const mask = pool.length - 1;
  ctx.settle();
  const dir = ctx.fresh_dir(`durable-${appenders}`);
  const bench_log = await open_bench_log({ dir, sync: "always" });
  const log = bench_log.log;
  const probe = new FdatasyncProbe(dir);
  try {
    await wait_for_spare_segment(dir);
    let next = 0;
    let events = 0;
    /** Runs the appenders for ms; counts the events acknowledged within it. */
    const run_slice = async (ms: number): Promise<number> => {
      let stop = false;
      let done = 0;
      const loop = async (): Promise<void> => {
        while (!stop) {
          log.append(pool[next++ & mask]);
          await log.durable();
          if (!stop) done++;
        }
      };
      const loops = Array.from({ length: appenders }, loop);
      const started = performance.now();
      await Bun.sleep(ms);
      stop = true;
      const seconds = (performance.now() - started) / 1000;
      await Promise.all(loops);
      events += done;
      return seconds;
    };
    await run_slice(warmup_ms);
    events = 0;
    await probe.measure(warmup_ms);
    probe.reset();
    const fsyncs_before = log.stats.fsyncs;
    const fsync_s_before = log.stats.fsync_seconds_total;
    let seconds = 0;
    const slice_rates: string[] = [];
    for (let i = 0; i < slices; i++) {
      const events_before = events;
      const slice_s = await run_slice(slice_log_ms);
      seconds += slice_s;
      await probe.measure(slice_probe_ms);
      slice_rates.push(`${((events - events_before) / slice_s).toFixed(0)}`);
    }
    // Cycles and fsync time of the tails of each slice (after the clock stopped) count too: a small overestimate of the disk's share.
    const fsyncs = log.stats.fsyncs - fsyncs_before;
    const fsync_s = log.stats.fsync_seconds_total - fsync_s_before;
    const run = { events_per_s: events / seconds, fdatasync_per_s: probe.per_s, events_per_fsync: fsyncs > 0 ? events / fsyncs : 0 };
    ctx.progress(
      `${appenders} durable appender(s): ${run.events_per_s.toFixed(0)} events/s, ${run.events_per_fsync.toFixed(1)} events per fsync cycle ` +
        `(${events} events, ${fsyncs} cycles in ${seconds.toFixed(2)} s; the log's fdatasync took ${((fsync_s / seconds) * 100).toFixed(0)} % of the time, ` +
        `mean ${fsyncs > 0 ? ((fsync_s / fsyncs) * 1e6).toFixed(0) : "-"} us); ` +
        `probe in between: ${probe.blocking_per_s.toFixed(0)} fdatasync/s blocking, ${probe.pooled_per_s.toFixed(0)}/s through the thread pool; ` +
        `log events/s per slice: ${slice_rates.join(" ")}`,
    );
    return run;
  } finally {
    probe.close();
    await bench_log.close();
    ctx.remove_dir(dir);
  }
}
