import { assert } from "../lib/assert.ts";
import type { Segment } from "./segment.ts";

/**
 * The disk budget's rules (design.md section 2, retention): which sealed
 * segments, oldest first, may go. Pure: it reads segment indexes and what
 * the upstreams acknowledged, and decides; log.ts does the pruning.
 *
 * - drop-acked: a segment goes only when, for every origin in it, every
 *   upstream of that origin holds its last seq there durably;
 * - drop-oldest: the oldest segment goes even if not acknowledged (what it
 *   held and no upstream had is counted as lost);
 * - reject: nothing goes; the budget ends appends with LOG_FULL.
 */

export type RetentionPolicy = "drop-acked" | "drop-oldest" | "reject";
export const retention_policies: readonly RetentionPolicy[] = ["drop-acked", "drop-oldest", "reject"];

export interface RetentionOptions {
  /** The whole data directory's segment files (the spare included) stay within this. */
  max_bytes: number;
  policy: RetentionPolicy;
  /** Of max_bytes, what other origins' events may not use (sync's peer quota is max_bytes minus this). */
  reserve_own_bytes: number;
}

/**
 * What upstreams acknowledged: their durable version vectors (a replica
 * publishes only durable ones, design.md section 3), as sync last heard them.
 */
export interface AckSource {
  /** The upstreams whose acknowledgement `origin`'s events need; none means no one acknowledges them. */
  upstreams_of(origin: string): readonly string[];
  /** The highest seq of `origin` that `upstream` holds durably, as last heard (0 when unknown). */
  held_by(upstream: string, origin: string): number;
  /** Every upstream, for status. */
  upstreams(): readonly string[];
}

/** Nothing is acknowledged: a log without sync, or before sync is wired. */
export const no_acks: AckSource = {
  upstreams_of: () => [],
  held_by: () => 0,
  upstreams: () => [],
};

/** Why a segment cannot go under drop-acked: the first origin and upstream that lack its events. */
export interface AckBlocker {
  origin: string;
  /** The upstream holding it back, or null when no upstream pulls the origin. */
  upstream: string | null;
  /** What that upstream holds of the origin, and what the segment needs. */
  held_seq: number;
  needed_seq: number;
}

/** Whether every upstream holds every event in the segment; the blocker when not. */
export function segment_blocker(segment: Segment, acks: AckSource): AckBlocker | null {
  for (const [origin, range] of segment.origins) {
    const ups = acks.upstreams_of(origin);
    if (ups.length === 0) return { origin, upstream: null, held_seq: 0, needed_seq: range.seq_last };
    for (const upstream of ups) {
      const held = acks.held_by(upstream, origin);
      if (held < range.seq_last) return { origin, upstream, held_seq: held, needed_seq: range.seq_last };
    }
  }
  return null;
}

export interface PlannedSegment {
  segment: Segment;
  /** Every upstream held all of it. */
  acked: boolean;
}

export interface PrunePlan {
  /** The segments to prune, oldest first (a prefix of the log). */
  segments: PlannedSegment[];
  /** Why the next segment (under drop-acked) cannot go, when that is what stopped the plan. */
  blocker: AckBlocker | null;
}

/**
 * Plans up to `count` segments from the front of `sealed` (oldest first,
 * durable, never the active one) under `policy`.
 */
export function plan_prune(sealed: readonly Segment[], acks: AckSource, policy: RetentionPolicy, count: number): PrunePlan {
  const plan: PrunePlan = { segments: [], blocker: null };
  if (policy === "reject") return plan;
  for (const segment of sealed) {
    if (plan.segments.length >= count) break;
    assert(segment.sealed, "only sealed segments are pruned");
    const blocker = segment_blocker(segment, acks);
    if (blocker !== null && policy === "drop-acked") {
      plan.blocker = blocker;
      break;
    }
    plan.segments.push({ segment, acked: blocker === null });
  }
  return plan;
}

/** A blocker in words a technician can act on. */
export function describe_blocker(blocker: AckBlocker): string {
  if (blocker.upstream === null) return `no upstream pulls origin ${blocker.origin}, so nothing acknowledges its events up to seq ${blocker.needed_seq}`;
  return `upstream ${blocker.upstream} holds origin ${blocker.origin} up to seq ${blocker.held_seq} of ${blocker.needed_seq}; bring it online (or change retention.upstreams or retention.policy)`;
}
