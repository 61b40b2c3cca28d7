import { assert } from "../lib/assert.ts";

/** One origin whose events arrived with two different contents: two devices share its key (a copied data directory). */
export interface ConflictStatus {
  origin: string;
  /** The first seq seen in conflict. */
  seq: number;
  /** The peer the conflicting copy came from. */
  from: string;
  first_seen_ms: number;
  last_seen_ms: number;
  /** Conflicting events seen for this origin. */
  events: number;
}

/** Conflicting origins remembered for /api/status (the count goes on past it). */
export const conflict_origins_max = 64;
/** Log lines about conflicts: at most this many per window... */
export const conflict_lines_per_window = 20;
/** ...of this length: a clone keeps being named, a flood of them cannot flood the log. */
export const conflict_line_window_ms = 60_000;

/**
 * Replica-id conflicts by origin (design.md section 3, "Trust"): the same
 * key wrote two different events for one seq. A copied SD card is the usual
 * cause. Every new conflicting origin gets a log line, rate-limited to
 * conflict_lines_per_window per conflict_line_window_ms (never silenced for
 * good); the origins are kept, bounded, for /api/status and the dashboard.
 */
export class Conflicts {
  private readonly by_origin = new Map<string, ConflictStatus>();
  private window_start_ms = Number.NEGATIVE_INFINITY;
  private lines_in_window = 0;
  /** Conflicting events seen in all. */
  total = 0;
  /** Lines held back by the rate limit. */
  lines_suppressed = 0;

  /** Notes a conflict; returns true when a log line should name it (a new origin, within the rate limit). */
  note(origin: string, seq: number, from: string, now_ms: number): boolean {
    this.total++;
    const known = this.by_origin.get(origin);
    if (known !== undefined) {
      known.events++;
      known.last_seen_ms = now_ms;
      return false;
    }
    if (this.by_origin.size < conflict_origins_max) {
      this.by_origin.set(origin, { origin, seq, from, first_seen_ms: now_ms, last_seen_ms: now_ms, events: 1 });
    }
    if (now_ms - this.window_start_ms >= conflict_line_window_ms) {
      this.window_start_ms = now_ms;
      this.lines_in_window = 0;
    }
    if (this.lines_in_window >= conflict_lines_per_window) {
      this.lines_suppressed++;
      return false;
    }
    this.lines_in_window++;
    assert(this.lines_in_window <= conflict_lines_per_window, "conflict lines stay within their rate");
    return true;
  }

  list(): ConflictStatus[] {
    return [...this.by_origin.values()].map((c) => ({ ...c }));
  }
}
