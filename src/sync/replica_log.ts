import type { Log } from "../log/log.ts";

/** What sync needs of the local log; `Log` provides it. */
export type ReplicaLog = Pick<
  Log,
  "id" | "name" | "count" | "durable_count" | "held" | "vv" | "iterate" | "get" | "events_after" | "accept_batch"
>;

/**
 * The durable version vector: the vv minus events not yet durable (positions
 * from durable_count on). Only these may be published or acknowledged, so a
 * replica restarted after a crash never contradicts what peers were told.
 * Costs a walk over the non-durable tail, which group commit keeps short.
 */
export function durable_vv(log: ReplicaLog): Map<string, number> {
  flush_for_read(log);
  const vv = new Map(Object.entries(log.vv()));
  const seen = new Set<string>();
  for (const e of log.iterate(log.durable_count)) {
    if (seen.has(e.origin)) continue;
    seen.add(e.origin);
    if (e.seq === 1) vv.delete(e.origin);
    else vv.set(e.origin, e.seq - 1);
  }
  return vv;
}

/** Highest seq of `origin` held durably. */
export function durable_held(log: ReplicaLog, origin: string): number {
  const durable = log.durable_count;
  if (durable === log.count) return log.held(origin);
  flush_for_read(log);
  for (const e of log.iterate(durable)) if (e.origin === origin) return e.seq - 1;
  return log.held(origin);
}

/**
 * Makes every appended event readable through the mapping before reading
 * the non-durable tail. Works around two log bugs: `get` and `events_after`
 * locate an event before flushing the staging buffer (walking zeros, forever,
 * for an event still staged), and `iterate` flushes one position too late
 * (the first staged event reads as zeros). Remove once the log is fixed.
 */
export function flush_for_read(log: ReplicaLog): void {
  if (log.count === log.durable_count) return;
  const it = log.iterate(log.count - 1);
  it.next();
  it.next();
}
