import { BenchBroker } from "./sync_broker.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import { raw_mqtt_run } from "./sync_raw_mqtt.ts";
import { events_per_message, sync_batch_events, sync_inflight_max, sync_payload_bytes, sync_run, sync_window_events } from "./sync_load.ts";
import { BenchReplica, until } from "./sync_replica.ts";

export const live_events = 200_000;
const rounds = 3;

export interface LiveRates {
  /** Ours: append on A to durable on B, best of the rounds. */
  sync_events_per_s: number;
  /** Raw mqtt.js QoS 1, same bytes, message sizes, in-flight limit and pacing, best of the rounds. */
  raw_events_per_s: number;
}

/**
 * Two replicas syncing through a local mosquitto started here, against plain
 * mqtt.js moving the same payloads through the same broker. Rounds
 * alternate raw and ours (fresh replicas each round) so box noise hits both;
 * the best of each counts. Shared by the benchmarks that compare with the
 * live rate.
 */
export function live_rates(ctx: BenchContext): Promise<LiveRates> {
  return ctx.shared("sync_live_rates", async () => {
    const pool = payload_pool(sync_payload_bytes);
    const per_message = events_per_message(sync_payload_bytes);
    const broker = await BenchBroker.start();
    try {
      let best_sync = 0;
      let best_raw = 0;
      for (let round = 1; round <= rounds; round++) {
        ctx.settle(); // the raw rounds, like ours, start with no dirty pages left to write back
        const raw_cpu = cpu_meter();
        const raw = await raw_mqtt_run({
          url: broker.url,
          pool,
          payload_bytes: sync_payload_bytes,
          events: live_events,
          batch_events: sync_batch_events,
          events_per_message: per_message,
          window_events: sync_window_events,
          inflight_max: sync_inflight_max,
        });
        best_raw = Math.max(best_raw, raw.events_per_s);
        ctx.progress(
          `raw mqtt.js round ${round}: ${(raw.events_per_s / 1e3).toFixed(0)} k events/s ` +
            `(${live_events} x ${sync_payload_bytes} B in ${raw.messages} QoS 1 messages of <= ${per_message} events, ${raw.seconds.toFixed(2)} s; ${raw_cpu()})`,
        );
        const ours = await one_sync_round(ctx, broker.url, pool);
        best_sync = Math.max(best_sync, ours.events_per_s);
        ctx.progress(`sync round ${round}: ${(ours.events_per_s / 1e3).toFixed(0)} k events/s (${ours.seconds.toFixed(2)} s; ${ours.details})`);
      }
      return { sync_events_per_s: best_sync, raw_events_per_s: best_raw };
    } finally {
      await broker.stop();
    }
  });
}

async function one_sync_round(ctx: BenchContext, url: string, pool: readonly Uint8Array[]): Promise<{ events_per_s: number; seconds: number; details: string }> {
  ctx.settle();
  const dir_a = ctx.fresh_dir("sync-a");
  const dir_b = ctx.fresh_dir("sync-b");
  const opened: BenchReplica[] = [];
  try {
    const a = await BenchReplica.open(dir_a, url, "a");
    opened.push(a);
    const b = await BenchReplica.open(dir_b, url, "b");
    opened.push(b);
    a.start();
    b.start();
    await until(
      () => a.sees([b]) && b.sees([a]),
      () => `replicas did not see each other: ${a.warnings.join("; ")} ${b.warnings.join("; ")}`,
      10_000,
    );
    const cpu = cpu_meter();
    const run = await sync_run(a, b, pool, live_events);
    const cpu_text = cpu();
    const ac = a.rep.counters;
    const bc = b.rep.counters;
    const aq = a.transport.status().queue;
    const details =
      `A sent ${ac.messages_out.events} event messages, ${ac.messages_out.vv} vv, ${ac.events_served} events served on repair; ` +
      `B asked ${bc.wants_sent} repairs, ${bc.events_duplicate} duplicates, ${bc.events_buffered} parked; A queue dropped ${aq.dropped}; ` +
      `fsyncs A ${a.log.stats.fsyncs} B ${b.log.stats.fsyncs} (mean ${mean_ms(a)} / ${mean_ms(b)} ms); ${cpu_text}`;
    return { ...run, details };
  } finally {
    for (const r of opened) await r.close();
    ctx.remove_dir(dir_a);
    ctx.remove_dir(dir_b);
  }
}

function mean_ms(r: BenchReplica): string {
  const s = r.log.stats;
  return s.fsyncs === 0 ? "-" : ((s.fsync_seconds_total / s.fsyncs) * 1000).toFixed(1);
}

/** CPU time this process spends from now until the returned function is called, per 100k events (both sides of the link run here). */
function cpu_meter(): () => string {
  const before = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(before);
    const per_100k = (us: number): string => ((us / 1e6) * (100_000 / live_events)).toFixed(2);
    return `CPU ${per_100k(used.user)} s user + ${per_100k(used.system)} s sys per 100k events`;
  };
}
