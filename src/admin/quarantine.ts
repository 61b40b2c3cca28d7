import { assert } from "../lib/assert.ts";
import type { Log } from "../log/log.ts";

export interface QuarantinedEvent {
  pos: number;
  id: string;
  origin: string;
  seq: number;
  time: number;
  /** The validator's message (the placeholder's payload), cut to a bounded length. */
  message: string;
}

export interface QuarantineView {
  /** Newest first, at most `quarantine_events_max`. */
  events: QuarantinedEvent[];
  /** Rejected events found in the scanned part of the log. */
  total: number;
  /** Positions below this have been scanned. */
  scanned_to: number;
  /** True when every durable event has been scanned (false only while catching up on a big log). */
  complete: boolean;
}

/**
 * Finds the `rejected` placeholders sync writes for events that failed the
 * sync validators (design.md section 4). Scans each event once, incrementally,
 * and keeps only the newest few, so memory stays bounded. A request scans at
 * most one step (~2 us per event); the rest of a big log is scanned in
 * further steps in the background, yielding to appends in between.
 */
export class QuarantineIndex {
  private scanned_to = 0;
  private total = 0;
  /** Ring of the newest rejected events, oldest first. */
  private readonly newest: QuarantinedEvent[] = [];
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  private continuation: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly log: Log,
    private readonly events_max: number,
    private readonly scan_step_max_events: number,
    private readonly message_max_bytes: number,
  ) {
    assert(events_max >= 1 && scan_step_max_events >= 1 && message_max_bytes >= 1, "quarantine limits are positive");
  }

  /** Scans what was written since the last call (at most one step) and returns the view. */
  view(): QuarantineView {
    this.catch_up();
    return {
      events: [...this.newest].reverse(),
      total: this.total,
      scanned_to: this.scanned_to,
      complete: this.scanned_to >= this.log.durable_count,
    };
  }

  /** Rejected events in the scanned part of the log, for metrics. */
  count(): number {
    this.catch_up();
    return this.total;
  }

  private catch_up(): void {
    if (this.log.is_closed) return;
    // Durable events only, like every read of this API (and the log's iterate() must not start at an unflushed position).
    const end = Math.min(this.log.durable_count, this.scanned_to + this.scan_step_max_events);
    if (this.scanned_to >= end) return;
    for (const event of this.log.iterate(this.scanned_to)) {
      if (event.pos >= end) break;
      if (event.rejected) {
        this.total++;
        const payload = event.payload.subarray(0, this.message_max_bytes);
        this.newest.push({
          pos: event.pos,
          id: event.id,
          origin: event.origin,
          seq: event.seq,
          time: event.time_ms,
          message: this.decoder.decode(payload) + (event.payload.length > payload.length ? "…" : ""),
        });
        if (this.newest.length > this.events_max) this.newest.shift();
      }
    }
    this.scanned_to = end;
    if (this.scanned_to < this.log.durable_count && this.continuation === null) {
      this.continuation = setTimeout(() => {
        this.continuation = null;
        this.catch_up();
      }, 0);
      this.continuation.unref?.();
    }
  }
}
