import type { Log } from "../log/log.ts";

/** What sync needs of the local log; `Log` provides it. */
export type ReplicaLog = Pick<
  Log,
  "id" | "name" | "count" | "durable_count" | "held" | "vv" | "iterate" | "get" | "scan_origin" | "accept_checked"
>;

/**
 * The durable version vector: the vv minus events not yet durable (positions
 * from durable_count on). Only these may be published or acknowledged, so a
 * replica restarted after a crash never contradicts what peers were told.
 * Costs a walk over the non-durable tail, which group commit keeps short.
 */
export function durable_vv(log: ReplicaLog): Map<string, number> {
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
  for (const e of log.iterate(durable)) if (e.origin === origin) return e.seq - 1;
  return log.held(origin);
}
