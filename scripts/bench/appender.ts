import fs from "node:fs";
import path from "node:path";
import type { Log } from "../../src/index.ts";

/**
 * A realistic appender yields to the event loop now and then. The log does
 * its background work there: it writes the next segment's zeros (1 MiB async
 * writes, each needing an event-loop turn) so that rotation only renames a
 * ready file, and it hands staged frames to the OS from a setImmediate. A
 * server appends from message and request handlers, one turn each; a
 * benchmark that never yields would starve that work and stall on every
 * rotation, which a real server does not. 1000 appends per turn is already
 * more than one MQTT message or HTTP request carries (128 KiB = ~440 events
 * of 256 B). Measured here over 2M appends (8 rotations): yielding every
 * 10 000 appends, 5-6 rotations found no spare and created the segment on
 * the append path; every 1000, 2-5 did.
 */
export const yield_every_appends = 1000;

export function next_turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface AppendRun {
  events: number;
  seconds: number;
  events_per_s: number;
  /** Longest stretch of yield_every_appends appends, which shows rotation stalls. */
  slowest_chunk_ms: number;
  median_chunk_ms: number;
}

/**
 * Appends `events` payloads one append() call each, cycling through `pool`,
 * yielding every yield_every_appends, and stops the clock once everything is
 * durable under the log's sync mode (handed to the OS for `never`).
 */
export async function append_one_by_one(log: Log, pool: readonly Uint8Array[], events: number): Promise<AppendRun> {
  const chunk_ms: number[] = [];
  const mask = pool.length - 1;
  if ((pool.length & mask) !== 0) throw new Error("payload pool size must be a power of two");
  const started = performance.now();
  let chunk_started = started;
  for (let i = 0; i < events; ) {
    const end = Math.min(events, i + yield_every_appends);
    for (; i < end; i++) log.append(pool[i & mask]);
    await next_turn();
    const now = performance.now();
    chunk_ms.push(now - chunk_started);
    chunk_started = now;
  }
  await log.durable();
  const seconds = (performance.now() - started) / 1000;
  chunk_ms.sort((a, b) => a - b);
  return {
    events,
    seconds,
    events_per_s: events / seconds,
    slowest_chunk_ms: chunk_ms[chunk_ms.length - 1] ?? 0,
    median_chunk_ms: chunk_ms[chunk_ms.length >> 1] ?? 0,
  };
}

/** Appends `events` payloads in atomic batches of `batch` (for building big logs fast). */
export async function append_in_batches(log: Log, pool: readonly Uint8Array[], events: number, batch: number): Promise<void> {
  const mask = pool.length - 1;
  const payloads: Uint8Array[] = [];
  let since_yield = 0;
  for (let i = 0; i < events; ) {
    const n = Math.min(batch, events - i);
    payloads.length = 0;
    for (let k = 0; k < n; k++) payloads.push(pool[(i + k) & mask]);
    log.append_batch(payloads);
    i += n;
    since_yield += n;
    if (since_yield >= yield_every_appends) {
      since_yield = 0;
      await next_turn();
    }
  }
  await log.durable();
}

const spare_wait_max_ms = 10_000;

/**
 * Waits until the log has prepared its next segment after open (the file
 * `segments/spare`; an internal name of src/log), as it has long before
 * traffic arrives on a running server, so the measurement does not include
 * the first 64 MiB of zeros being written back. Gives up silently after
 * spare_wait_max_ms.
 */
export async function wait_for_spare_segment(dir: string): Promise<void> {
  const spare = path.join(dir, "segments", "spare");
  const started = performance.now();
  while (!fs.existsSync(spare) && performance.now() - started < spare_wait_max_ms) await Bun.sleep(5);
}
