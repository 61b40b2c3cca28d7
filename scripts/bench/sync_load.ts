import { frame_size_bytes } from "../../src/log/frame.ts";
import { envelope_reserve_bytes, sync_defaults } from "../../src/sync/replicator.ts";
import { next_turn } from "./appender.ts";
import { type BenchReplica, until } from "./sync_replica.ts";

/** The load every live sync benchmark and its raw baseline share. */
export const sync_payload_bytes = 256;
/** Events per append_batch on A: one request's worth on a busy server. */
export const sync_batch_events = 1000;
/** Events appended on A but not yet durable on B before the appender waits (a closed-loop load). */
export const sync_window_events = 16 * sync_batch_events;
/** The transport's default in-flight publishes. */
export const sync_inflight_max = 64;

/** Events of `payload_bytes` the replicator packs into one message under the default packet size. */
export function events_per_message(payload_bytes: number): number {
  return Math.floor((sync_defaults.max_packet_bytes - envelope_reserve_bytes) / frame_size_bytes(payload_bytes));
}

export interface SyncRun {
  events_per_s: number;
  seconds: number;
}

/**
 * Appends `events` payloads on A in batches of sync_batch_events (each pushed
 * once durable), yielding after every batch and keeping at most
 * sync_window_events ahead of B; the clock stops once B holds them all
 * durably. B must hold nothing else (it has no events of its own).
 */
export function sync_run(
  a: BenchReplica,
  b: BenchReplica,
  pool: readonly Uint8Array[],
  events: number,
  window_events = sync_window_events,
): Promise<SyncRun> {
  return sync_run_to(a, () => b.log.durable_count, pool, events, window_events, () => JSON.stringify(b.rep.counters));
}

/**
 * sync_run against a B seen only through `b_durable_count` (e.g. a replica
 * in another process reporting through shared memory); `describe_b` says
 * what B did when the run gives up.
 */
export async function sync_run_to(
  a: BenchReplica,
  b_durable_count: () => number,
  pool: readonly Uint8Array[],
  events: number,
  window_events = sync_window_events,
  describe_b: () => string = () => "",
): Promise<SyncRun> {
  const mask = pool.length - 1;
  const base = b_durable_count();
  const batch: Uint8Array[] = [];
  const started = performance.now();
  for (let sent = 0; sent < events; ) {
    const n = Math.min(sync_batch_events, events - sent);
    batch.length = 0;
    for (let i = 0; i < n; i++) batch.push(pool[(sent + i) & mask]);
    a.append_batch(batch);
    sent += n;
    await next_turn();
    while (sent - (b_durable_count() - base) > window_events) await Bun.sleep(1);
  }
  await until(
    () => b_durable_count() - base >= events,
    () => `B holds ${b_durable_count() - base} of ${events} events durably; A ${JSON.stringify(a.transport.status())}; B ${describe_b()}`,
  );
  const seconds = (performance.now() - started) / 1000;
  return { events_per_s: events / seconds, seconds };
}
