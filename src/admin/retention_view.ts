import type { Clock } from "../lib/clock.ts";
import type { Log, PrunedTotals, RetentionPolicy } from "../log/log.ts";

/**
 * What /api/status, /metrics and the dashboard show of retention (issue 13,
 * "Visibility"): the log's retention_status() plus what the admin layer adds
 * from its own clock, the oldest event's age and the fill rate.
 *
 * The fill rate is measured here, not by the log: record bytes written to the
 * log (held plus pruned, so pruning does not make it go down) sampled on each
 * read of this view and at start, over a sliding window of the injected
 * clock. A view computed for one scrape is reused by every metric of that
 * scrape (prom-client calls the collect callbacks in one turn).
 */

/** Upstreams listed per-upstream in status and metrics at most (those holding back the most bytes first). */
export const unacked_upstreams_listed_max = 50;
/** The fill rate is measured over about this much of the injected clock's time. */
export const fill_rate_window_ms_default = 10 * 60 * 1000;
/** Samples kept: one per window / samples_per_window at most. */
const samples_per_window = 60;
/** A rate needs at least this much time between its two readings. */
const fill_rate_min_span_ms = 1000;

/** What was pruned, as the log counts it (pruned_state.ts). */
export type PrunedJson = PrunedTotals;

export interface RetentionJson {
  /** A budget (retention.max_bytes) is set; without one the log only grows and nothing is pruned on its own. */
  configured: boolean;
  policy: RetentionPolicy | null;
  max_bytes: number | null;
  /** Segment files, the spare included: what the budget counts. */
  used_bytes: number;
  /** used_bytes / max_bytes (null without a budget). */
  used_ratio: number | null;
  reserve_own_bytes: number;
  /** First position held; events before it were pruned. */
  first_pos: number;
  /** Since the data directory was made (kept in segments/pruned.json). */
  pruned: PrunedJson;
  /** The origin's time of the oldest event held, and its age by this replica's clock (null when none is held). */
  oldest_held_time_ms: number | null;
  oldest_event_age_ms: number | null;
  /** Record bytes of segments each upstream does not hold wholly: the most holding back first, at most unacked_upstreams_listed_max. */
  unacked_bytes_by_upstream: Record<string, number>;
  /** Every upstream known, listed or not. */
  upstreams_total: number;
  /** Record bytes written to the log (own appends and accepted sync) per second over the last rate_window_ms; null until measured. */
  fill_rate_bytes_per_s: number | null;
  /** The span the rate was measured over (0 until measured). */
  rate_window_ms: number;
  /**
   * Seconds until the records held fill the budget at fill_rate: (max_bytes
   * minus record bytes held) / rate; 0 when already full of records; null
   * without a budget or while nothing is written. Under drop-acked and
   * drop-oldest this is when pruning must start making room, not when appends
   * fail: they fail only if by then nothing may be pruned (see blocked).
   */
  full_in_s: number | null;
  /** Why pruning is held back while the budget needs room (names the upstream that lacks the data), or null. */
  blocked: string | null;
  /** What a technician should do while blocked, or null. */
  warning: string | null;
}

interface Sample {
  t: number;
  bytes: number;
}

export class RetentionView {
  private readonly samples: Sample[] = [];
  private cached: RetentionJson | null = null;
  private readonly spacing_ms: number;

  constructor(
    private readonly log: Log,
    private readonly clock: Clock,
    private readonly window_ms: number = fill_rate_window_ms_default,
  ) {
    this.spacing_ms = window_ms / samples_per_window;
    // The first reading: a scrape or status right after start already has a rate.
    if (!log.is_closed) this.sample(clock.now_ms(), written_record_bytes(log));
  }

  /** The view now; null when the log is closed. Computed once per turn of the event loop. */
  view(): RetentionJson | null {
    if (this.cached !== null) return this.cached;
    if (this.log.is_closed) return null;
    const json = this.compute();
    this.cached = json;
    queueMicrotask(() => {
      this.cached = null;
    });
    return json;
  }

  private compute(): RetentionJson {
    const { log } = this;
    const now = this.clock.now_ms();
    const s = log.retention_status();
    const written = written_record_bytes(log, s.pruned);
    const rate = this.rate(now, written);
    this.sample(now, written);

    const upstreams = Object.entries(s.unacked_bytes_by_upstream);
    upstreams.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const listed = Object.fromEntries(upstreams.slice(0, unacked_upstreams_listed_max));

    let full_in_s: number | null = null;
    if (s.max_bytes !== null && rate !== null && rate.bytes_per_s > 0) {
      full_in_s = Math.max(0, s.max_bytes - log.bytes) / rate.bytes_per_s;
    }
    return {
      configured: s.max_bytes !== null,
      policy: s.policy,
      max_bytes: s.max_bytes,
      used_bytes: s.used_bytes,
      used_ratio: s.max_bytes === null || s.max_bytes === 0 ? null : s.used_bytes / s.max_bytes,
      reserve_own_bytes: s.reserve_own_bytes,
      first_pos: s.first_pos,
      pruned: { ...s.pruned },
      oldest_held_time_ms: s.oldest_held_time_ms,
      oldest_event_age_ms: s.oldest_held_time_ms === null ? null : Math.max(0, now - s.oldest_held_time_ms),
      unacked_bytes_by_upstream: listed,
      upstreams_total: upstreams.length,
      fill_rate_bytes_per_s: rate?.bytes_per_s ?? null,
      rate_window_ms: rate?.span_ms ?? 0,
      full_in_s,
      blocked: s.blocked,
      warning: s.blocked === null ? null : warning_of(s.blocked, s.policy),
    };
  }

  /** The rate from the oldest sample still in the window (or the newest one before it) to `now`. */
  private rate(now: number, bytes: number): { bytes_per_s: number; span_ms: number } | null {
    // Drop samples the window no longer needs: keep the newest one at or before its start as the anchor.
    const start = now - this.window_ms;
    while (this.samples.length > 1 && this.samples[1].t <= start) this.samples.shift();
    const anchor = this.samples[0];
    if (anchor === undefined) return null;
    const span_ms = now - anchor.t;
    if (span_ms < fill_rate_min_span_ms) return null;
    return { bytes_per_s: (Math.max(0, bytes - anchor.bytes) * 1000) / span_ms, span_ms };
  }

  private sample(t: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    // The clock was set back: what was measured before no longer lines up with it.
    if (last !== undefined && t < last.t) this.samples.length = 0;
    else if (last !== undefined && t - last.t < this.spacing_ms) return;
    this.samples.push({ t, bytes });
    if (this.samples.length > samples_per_window + 2) this.samples.shift();
  }
}

/** Record bytes ever written to this log (held plus pruned): grows with every append, whatever retention does. */
function written_record_bytes(log: Log, pruned: PrunedJson = log.retention_status().pruned): number {
  return log.bytes + pruned.acked_bytes + pruned.unacked_bytes;
}

function warning_of(blocked: string, policy: RetentionPolicy | null): string {
  if (policy === "reject") {
    return `The disk budget is reached and retention.policy is reject: appends fail with LOG_FULL until space is freed (${blocked}).`;
  }
  return `Pruning is blocked: ${blocked}. Un-acknowledged data is never deleted under ${policy ?? "drop-acked"}, so appends fail with LOG_FULL once the segment being written is full.`;
}
