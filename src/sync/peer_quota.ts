import { assert } from "../lib/assert.ts";
import { frame_size_at } from "../log/frame.ts";
import type { ReplicaLog } from "./replica_log.ts";

/** Own frames measured per catch-up step at most, so a large log's first measurement is spread over ticks instead of one long turn. */
export const own_scan_step_max = 100_000;

/**
 * The disk quota for synced events: record bytes of other origins' events
 * (what peers sent, rejected placeholders included) may take at most
 * peer_events_max_bytes of the log, so local appends keep the rest. The
 * log knows its record bytes (log.bytes); this file subtracts the bytes of
 * this replica's own durable events, measured once by walking its own
 * frames and then only the new ones (amortized over the life of the log;
 * at most own_scan_step_max frames per step). Nothing is measured while the
 * whole log fits the quota anyway, the usual case. Until a measurement has
 * caught up, the own bytes not yet walked count as peer bytes: the quota
 * errs towards refusing, never towards overfilling. When retention pruned
 * (the log's first position moved), the running total counts own bytes no
 * longer held, so the measurement starts again after the pruned own events.
 */
export class PeerQuota {
  /** Own events up to this seq were measured... */
  private own_seq = 0;
  /** ...and take this many record bytes. */
  private own_bytes = 0;
  /** The log's first position when own_seq and own_bytes were started: a prune moves it. */
  private measured_from_pos = 0;
  /** The room left when a batch was last refused; the quota stays closed until there is more (space freed). */
  private room_at_refusal: number | null = null;

  constructor(
    private readonly log: ReplicaLog,
    readonly max_bytes: number,
  ) {
    assert(max_bytes >= 0, "the peer events quota is not negative");
  }

  get limited(): boolean {
    return this.max_bytes !== Number.POSITIVE_INFINITY;
  }

  /** Whether `bytes` more record bytes of other origins fit. */
  admits(bytes: number): boolean {
    if (!this.limited) return true;
    const total = this.log.bytes;
    if (total + bytes <= this.max_bytes) return true;
    this.catch_up();
    return total - this.own_bytes + bytes <= this.max_bytes;
  }

  /** Record bytes of other origins' events that still fit (Infinity without a quota). */
  room_bytes(): number {
    if (!this.limited) return Number.POSITIVE_INFINITY;
    this.catch_up();
    return Math.max(0, this.max_bytes - (this.log.bytes - this.own_bytes));
  }

  /** A batch did not fit (what fitted of it was taken): closed until space is freed. */
  refused(): void {
    this.room_at_refusal = this.room_bytes();
  }

  /** Whether synced events may be asked for: not since a refusal, unless space was freed since. */
  get open(): boolean {
    if (!this.limited) return true;
    if (this.room_at_refusal !== null) {
      if (this.room_bytes() <= this.room_at_refusal) return false;
      this.room_at_refusal = null;
    }
    return this.admits(1);
  }

  /** Record bytes of other origins' events held, as measured so far (an upper bound while own events are still being walked). */
  used_bytes(): number {
    this.catch_up();
    return Math.max(0, this.log.bytes - this.own_bytes);
  }

  /** Walks own durable events not measured yet, at most own_scan_step_max of them. */
  catch_up(): void {
    if (!this.limited) return;
    const me = this.log.id;
    if (this.log.first_pos !== this.measured_from_pos) {
      // Pruned: own_bytes counts events no longer held (log.bytes no longer does). Measure again from the first own event held.
      this.measured_from_pos = this.log.first_pos;
      this.own_seq = this.log.pruned_through(me);
      this.own_bytes = 0;
    }
    const durable = this.log.durable_held(me);
    if (durable <= this.own_seq) return;
    const pos_end = this.log.durable_count;
    let steps = 0;
    this.log.scan_origin(me, this.own_seq, (_map, view, at, pos) => {
      if (pos >= pos_end || steps >= own_scan_step_max) return false;
      this.own_bytes += frame_size_at(view, at);
      this.own_seq++;
      steps++;
      return true;
    });
    assert(this.own_seq <= durable, "own events measured are durable");
  }
}
