import { assert } from "../lib/assert.ts";
import type { Log } from "../log/log.ts";

export interface QuarantinedEvent {
  pos: number;
  id: string;
  origin: string;
  seq: number;
  time: number;
  /** Why it was rejected: the sync validators run again on its payload, cut to a bounded length. */
  message: string;
  /** The payload as its origin wrote it (kept in the log), base64, cut to quarantine_payload_max_bytes. */
  payload_base64: string;
  payload_bytes: number;
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
 * Finds the events sync marked `rejected` because they failed the sync
 * validators (design.md section 4): the log keeps the origin's signed bytes
 * (so the origin's chain stays provable), and this view shows them with the
 * validators' message. Scans each event once, incrementally,
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
    private readonly payload_max_bytes: number,
    private readonly explain: ((payload: Uint8Array, ctx: { origin: string; seq: number; time_ms: number }) => string | null) | null,
  ) {
    assert(events_max >= 1 && scan_step_max_events >= 1 && message_max_bytes >= 1 && payload_max_bytes >= 0, "quarantine limits are positive");
  }

  /** The validators' message for a rejected payload, cut to message_max_bytes. */
  private message_of(payload: Uint8Array, origin: string, seq: number, time_ms: number): string {
    if (this.explain === null) return "rejected by a sync validator";
    let message: string | null;
    try {
      message = this.explain(payload, { origin, seq, time_ms });
    } catch (err) {
      message = `validator failed: ${String(err)}`;
    }
    if (message === null) return "rejected by a sync validator when it arrived; alone it passes them now (a validator that compares with earlier events, or a changed configuration)";
    const bytes = new TextEncoder().encode(message);
    return bytes.length <= this.message_max_bytes ? message : `${this.decoder.decode(bytes.subarray(0, this.message_max_bytes))}…`;
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
        this.newest.push({
          pos: event.pos,
          id: event.id,
          origin: event.origin,
          seq: event.seq,
          time: event.time_ms,
          message: this.message_of(event.payload, event.origin, event.seq, event.time_ms),
          payload_base64: Buffer.from(event.payload.subarray(0, this.payload_max_bytes)).toString("base64"),
          payload_bytes: event.payload.length,
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
