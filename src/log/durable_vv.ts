import { assert } from "../lib/assert.ts";
import { durable_vv_pending_max } from "./log_options.ts";

/** Applied entries at the front of the pending arrays worth dropping (and only when they are most of them). */
const pending_compact_min = 1024;

/**
 * The durable version vector: origin -> highest seq whose batch is durable.
 * Only this may be published or acknowledged, so a replica restarted after a
 * crash never contradicts what peers were told. Batches are noted as they
 * commit and applied once the durable position passes their end, lazily (a
 * commit costs three array pushes, not a map update per origin).
 *
 * Invariants: the durable position it has applied only grows, batch ends are
 * noted in position order, and no origin's durable seq ever shrinks.
 */
export class DurableVv {
  private readonly map: Map<string, number>;
  /** Committed batches not yet applied: the position after each, and the seq it reached for one origin. */
  private readonly pending_end_pos: number[] = [];
  private readonly pending_origin: string[] = [];
  private readonly pending_seq: number[] = [];
  private head = 0;
  /** The durable position applied so far. */
  private applied_pos: number;

  /** `durable` holds everything durable at `durable_pos` (recovery makes all it keeps durable). */
  constructor(durable: ReadonlyMap<string, number>, durable_pos: number) {
    this.map = new Map(durable);
    this.applied_pos = durable_pos;
  }

  /** Notes that the batch ending just before `end_pos` wrote `origin` up to `seq`; applied once durable_count reaches end_pos. */
  note_batch(end_pos: number, origin: string, seq: number, durable_count: number): void {
    const ends = this.pending_end_pos;
    assert(ends.length === this.head || ends[ends.length - 1] <= end_pos, "batches are noted in position order");
    assert(end_pos > this.applied_pos, "a new batch ends after the durable position");
    ends.push(end_pos);
    this.pending_origin.push(origin);
    this.pending_seq.push(seq);
    if (ends.length - this.head > durable_vv_pending_max) this.catch_up(durable_count);
  }

  /** Applies every noted batch that ends at or before durable_count. */
  catch_up(durable_count: number): void {
    assert(durable_count >= this.applied_pos, "the durable position only grows");
    this.applied_pos = durable_count;
    const ends = this.pending_end_pos;
    let head = this.head;
    while (head < ends.length && ends[head] <= durable_count) {
      const origin = this.pending_origin[head];
      const seq = this.pending_seq[head];
      assert(seq >= (this.map.get(origin) ?? 0), "an origin's durable seq never shrinks");
      this.map.set(origin, seq);
      head++;
    }
    if (head === ends.length) {
      ends.length = 0;
      this.pending_origin.length = 0;
      this.pending_seq.length = 0;
      head = 0;
    } else if (head > pending_compact_min && head * 2 > ends.length) {
      // Drop the applied front now and then, so the arrays do not grow with a log that is never fully durable.
      ends.splice(0, head);
      this.pending_origin.splice(0, head);
      this.pending_seq.splice(0, head);
      head = 0;
    }
    this.head = head;
  }

  /** Highest durable seq of `origin` (0 when none); call catch_up first. */
  get(origin: string): number {
    return this.map.get(origin) ?? 0;
  }

  /** A copy of the whole durable vv; call catch_up first. */
  snapshot(): Map<string, number> {
    return new Map(this.map);
  }
}
