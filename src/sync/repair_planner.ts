import { assert } from "../lib/assert.ts";
import type { SyncCounters } from "./counters.ts";
import { type AnswerMessage, type WantMessage, want_ranges_max } from "./messages.ts";
import type { SeqRange } from "./packed.ts";
import type { Peer } from "./peers.ts";
import type { ReplicaLog } from "./replica_log.ts";
import type { Outbound, SyncSettings } from "./sync_options.ts";

/** What the planner needs of the replicator. */
export interface RepairHost {
  readonly log: ReplicaLog;
  readonly counters: SyncCounters;
  /** Whether events of `origin` are taken from peers. */
  pulls(origin: string): boolean;
  /** Encodes a repair request to `peer` into `out`. */
  send_want(out: Outbound[], peer: Peer, m: WantMessage): void;
}

/**
 * Repair: who claims to hold what (claimants), which origins to look at
 * again (dirty), and which peer each origin was asked of (requested_from).
 * A peer's outstanding request itself is `peer.want`, set and cleared only
 * here.
 *
 * Invariants, checked over the origins each step touches: one outstanding
 * request per peer; at most one peer asked per origin; an origin is in
 * requested_from exactly while it is in the outstanding want of the peer it
 * maps to.
 */
export class RepairPlanner {
  private readonly id: string;
  /** origin -> peers claiming to hold some of it. */
  private readonly claimants = new Map<string, Set<Peer>>();
  /** Origins whose sources changed since the last plan; `plan_all` asks for a full pass. */
  private readonly dirty = new Set<string>();
  private plan_all = true;
  /** origin -> the peer asked for it; one outstanding request per origin. */
  private readonly requested_from = new Map<string, Peer>();
  /** The next request id; starts at the first connection's clock so ids do not repeat across restarts. */
  private req_counter = 0;

  constructor(
    private readonly host: RepairHost,
    private readonly settings: SyncSettings,
  ) {
    this.id = host.log.id;
  }

  /** Whether some origin waits to be looked at (plan would do something). */
  get pending(): boolean {
    return this.plan_all || this.dirty.size > 0;
  }

  /** The transport connected: request ids start (once) from the clock. */
  on_connect(now_ms: number): void {
    if (this.req_counter === 0) this.req_counter = Math.max(1, Math.floor(now_ms));
  }

  /** Look at every origin on the next plan (backoffs expire with time, a connection resumes). */
  mark_all(): void {
    this.plan_all = true;
  }

  /** `origin`'s sources changed: look at it on the next plan. */
  mark(origin: string): void {
    this.dirty.add(origin);
  }

  /** Records that `peer` holds origin up to seq. */
  raise(peer: Peer, origin: string, seq: number): void {
    if (!peer.raise_claim(origin, seq)) return;
    let set = this.claimants.get(origin);
    if (set === undefined) {
      set = new Set();
      this.claimants.set(origin, set);
    }
    set.add(peer);
    this.dirty.add(origin);
  }

  /** The peer asked for `origin`, if any. */
  requested(origin: string): Peer | null {
    return this.requested_from.get(origin) ?? null;
  }

  /**
   * Asks peers for what they hold and this replica lacks: per origin the best
   * available peer, one request per peer. Looks at the origins whose sources
   * changed, or at all of them on ticks and (re)connects.
   */
  plan(out: Outbound[], now_ms: number): void {
    const { log, counters } = this.host;
    const s = this.settings;
    const origins = this.plan_all ? [...this.claimants.keys()] : [...this.dirty];
    this.plan_all = false;
    this.dirty.clear();
    const best = new Map<string, Peer>();
    for (const origin of origins) {
      if (this.requested_from.has(origin) || !this.host.pulls(origin)) continue;
      const held = log.held(origin);
      let chosen: Peer | null = null;
      for (const peer of this.claimants.get(origin) ?? []) {
        if (!peer.available(now_ms) || peer.claim(origin) <= held) continue;
        if (chosen === null || peer.better_than(chosen, origin)) chosen = peer;
      }
      if (chosen !== null) best.set(origin, chosen);
    }
    if (best.size === 0) return;
    const wants = new Map<Peer, SeqRange[]>();
    for (const [origin, peer] of best) {
      let ranges = wants.get(peer);
      if (ranges === undefined) {
        ranges = [];
        wants.set(peer, ranges);
      }
      if (ranges.length >= want_ranges_max) continue;
      ranges.push({ origin, after: log.held(origin), upto: peer.claim(origin) });
    }
    for (const [peer, ranges] of wants) {
      assert(peer.want === null, "one outstanding request per peer");
      const req = this.req_counter++;
      peer.want = { req, ranges, sent_ms: now_ms, deadline_ms: now_ms + s.want_timeout_ms };
      for (const r of ranges) {
        assert(!this.requested_from.has(r.origin), "at most one peer asked per origin");
        this.requested_from.set(r.origin, peer);
      }
      counters.wants_sent++;
      this.host.send_want(out, peer, { kind: "want", from: this.id, to: peer.id, req, max_bytes: s.window_bytes, ranges });
    }
  }

  /** A message of `peer`'s answer to `m.req` arrived (its events already merged): the request lives on, or ends with the last. */
  answer(peer: Peer, m: AnswerMessage, now_ms: number): void {
    const want = peer.want;
    if (want === null || want.req !== m.req) return;
    want.deadline_ms = now_ms + this.settings.want_timeout_ms;
    if (m.held !== null) {
      // The sender's own word on what it holds beats an older claim.
      for (const [origin, seq] of m.held) {
        if (seq >= peer.claim(origin)) continue;
        if (seq > 0) peer.claims.set(origin, seq);
        else {
          peer.claims.delete(origin);
          this.claimants.get(origin)?.delete(peer);
        }
      }
    }
    if (m.last) this.finish(peer, now_ms);
  }

  /** `peer`'s request was answered in full: progress clears its failures, none backs it off. */
  finish(peer: Peer, now_ms: number): void {
    const want = peer.want;
    assert(want !== null, "finishing an outstanding request");
    this.cancel(peer);
    const log = this.host.log;
    const progress = want.ranges.some((r) => log.held(r.origin) > r.after);
    const satisfied = want.ranges.every((r) => log.held(r.origin) >= r.upto);
    if (progress || satisfied) {
      peer.failures = 0;
      peer.backoff_until_ms = 0;
    } else {
      this.host.counters.wants_unproductive++;
      peer.penalize(now_ms, this.settings.retry_backoff_base_ms, this.settings.retry_backoff_max_ms);
    }
  }

  /** No answer before the deadline: forget the request and back the peer off. */
  time_out(peer: Peer, now_ms: number): void {
    this.host.counters.wants_timed_out++;
    this.cancel(peer);
    peer.penalize(now_ms, this.settings.retry_backoff_base_ms, this.settings.retry_backoff_max_ms);
  }

  /** Forgets `peer`'s outstanding request, if any, without holding it against the peer: its origins are free to ask again. */
  cancel(peer: Peer): void {
    const want = peer.want;
    if (want === null) return;
    peer.want = null;
    for (const r of want.ranges) {
      assert(this.requested_from.get(r.origin) === peer, "an origin in a peer's outstanding request was asked of that peer");
      this.requested_from.delete(r.origin);
      this.dirty.add(r.origin);
    }
  }

  /** Checks the invariants over every origin and peer (for tests: the hot path checks only what it touches). */
  assert_invariants(peers: Iterable<Peer>): void {
    let wanted = 0;
    for (const peer of peers) {
      if (peer.want === null) continue;
      for (const r of peer.want.ranges) {
        assert(this.requested_from.get(r.origin) === peer, "an origin in a peer's outstanding request was asked of that peer");
        wanted++;
      }
    }
    assert(wanted === this.requested_from.size, "every origin asked for is in its peer's outstanding request, once");
  }
}
