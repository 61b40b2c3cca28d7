import { assert } from "../lib/assert.ts";
import { ClaimTable } from "./claims.ts";
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
  /** Whether synced events still fit the disk quota; while they do not, nothing is requested (and an empty answer is no peer's fault). */
  quota_open(): boolean;
  /** A peer's claim rose (its vv, a vv entry, events it sent): retention's acknowledgements may have advanced. */
  claim_rose?(peer: Peer, origin: string, seq: number): void;
}

/**
 * A range of an origin this replica cannot get: every peer known to hold
 * more of the origin pruned it (said so in a `gone` answer). Seqs are dense,
 * so none of the origin's later events can be taken either until a peer
 * that still holds the range shows up.
 */
export interface UnavailableRange {
  origin: string;
  /** The first seq missing here (held + 1)... */
  from: number;
  /** ...through the lowest seq the claimants pruned through. */
  to: number;
  /** The peers that said they pruned it. */
  pruned_by: string[];
  since_ms: number;
}

/**
 * Origins one plan looks at, at most; the rest stay dirty for the next plan
 * (next tick or message). Bounds a turn of the event loop when many origins
 * become dirty at once (peers claiming thousands of origins come back from
 * their backoff together): about 2 us each, so a few ms per plan.
 */
export const plan_origins_max = 4096;

/**
 * Repair: who claims to hold what (the claim table, claims.ts), which
 * origins have work (some claim beyond what is held here), which of those
 * to look at again (dirty), and which peer each origin was asked of
 * (requested_from). A peer's outstanding request itself is `peer.want`, set
 * and cleared only here.
 *
 * A plan looks only at dirty origins, so its cost follows the origins whose
 * sources changed, never all origins known: an origin becomes dirty when a
 * claim on it rises, when its request ends, and when one of its claimants
 * becomes available again (its request ended, its backoff expired: see
 * mark_peer), or on (re)connect.
 *
 * Invariants, checked over the origins each step touches: one outstanding
 * request per peer; at most one peer asked per origin; an origin is in
 * requested_from exactly while it is in the outstanding want of the peer it
 * maps to; a request's deadline is never past sent_ms + want_deadline_ms;
 * at most origins_max origins are asked for at once.
 */
export class RepairPlanner {
  private readonly id: string;
  readonly claims: ClaimTable;
  /** Origins some claimant holds beyond this replica (checked lazily: plan drops those that have none). */
  private readonly work = new Set<string>();
  /** Origins to look at on the next plan (a subset of work). */
  private readonly dirty = new Set<string>();
  /** origin -> the peer asked for it; one outstanding request per origin. */
  private readonly requested_from = new Map<string, Peer>();
  /** The next request id; starts at the first connection's clock so ids do not repeat across restarts. */
  private req_counter = 0;
  /** Origins whose next events no known peer still holds (at most origins_max: one per origin pulled). */
  private readonly unavailable_ranges = new Map<string, UnavailableRange>();

  constructor(
    private readonly host: RepairHost,
    private readonly settings: SyncSettings,
  ) {
    this.id = host.log.id;
    this.claims = new ClaimTable(
      {
        counters: host.counters,
        id: this.id,
        held: (origin) => host.log.held(origin),
        forgotten: (origin) => {
          this.work.delete(origin);
          this.dirty.delete(origin);
        },
      },
      settings,
    );
  }

  /** Whether some origin waits to be looked at (plan would do something). */
  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /** Origins with work: some claimant holds events of them this replica lacks (as of the last plan). */
  get origins_with_work(): number {
    return this.work.size;
  }

  /** The transport connected: request ids start (once) from the clock. */
  on_connect(now_ms: number): void {
    if (this.req_counter === 0) this.req_counter = Math.max(1, Math.floor(now_ms));
  }

  /** Look at every origin with work on the next plan (a connection resumes, the quota reopened). */
  mark_all(): void {
    for (const origin of this.work) this.dirty.add(origin);
  }

  /** `peer` may serve again (its request ended, its backoff expired, it came online): look again at the origins it could serve. */
  mark_peer(peer: Peer): void {
    if (this.work.size === 0) return;
    for (const origin of peer.claims.keys()) if (this.work.has(origin)) this.dirty.add(origin);
  }

  /** Records that `peer` holds origin up to seq (own origin: its acknowledgement; origins not pulled: ignored). */
  raise(peer: Peer, origin: string, seq: number, now_ms: number): void {
    if (origin !== this.id && !this.host.pulls(origin)) return;
    if (!this.claims.raise(peer, origin, seq, now_ms)) return;
    this.host.claim_rose?.(peer, origin, seq);
    if (origin === this.id) return;
    if (seq > this.host.log.held(origin)) {
      this.work.add(origin);
      this.dirty.add(origin);
    }
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
    if (this.dirty.size === 0) return;
    // Nothing more fits the disk quota: ask for nothing (mark_all once it reopens).
    if (!this.host.quota_open()) {
      this.dirty.clear();
      return;
    }
    const origins: string[] = [];
    for (const origin of this.dirty) {
      origins.push(origin);
      if (origins.length >= plan_origins_max) break;
    }
    if (origins.length === this.dirty.size) this.dirty.clear();
    else for (const origin of origins) this.dirty.delete(origin);
    const best = new Map<string, Peer>();
    for (const origin of origins) {
      if (this.requested_from.has(origin)) continue;
      if (!this.host.pulls(origin)) {
        this.work.delete(origin);
        continue;
      }
      const held = log.held(origin);
      let chosen: Peer | null = null;
      let has_source = false;
      let pruned_floor = Number.POSITIVE_INFINITY;
      let pruned_by: string[] | null = null;
      for (const peer of this.claims.claimants(origin)) {
        const floor = peer.pruned_through(origin);
        if (floor > 0 && floor <= held) peer.pruned.delete(origin); // held past what it pruned: it may serve again
        if (peer.claim(origin) <= held) continue;
        if (floor > held) {
          // It pruned seq held + 1: it cannot serve what this replica needs next.
          pruned_floor = Math.min(pruned_floor, floor, peer.claim(origin)); // one cannot prune what one does not hold
          (pruned_by ??= []).push(peer.id);
          continue;
        }
        has_source = true;
        if (!peer.available(now_ms)) continue;
        if (chosen === null || peer.better_than(chosen, origin, now_ms)) chosen = peer;
      }
      if (!has_source) {
        this.work.delete(origin);
        if (pruned_by !== null) this.note_unavailable(origin, held + 1, pruned_floor, pruned_by, now_ms);
      } else this.unavailable_ranges.delete(origin);
      if (chosen !== null) best.set(origin, chosen);
    }
    if (best.size === 0) return;
    const wants = new Map<Peer, SeqRange[]>();
    // Origins asked for at once stay within origins_max, whatever the number of peers (each request's ranges are memory).
    let room = s.origins_max - this.requested_from.size;
    for (const [origin, peer] of best) {
      if (room <= 0) {
        this.dirty.add(origin); // asked next time
        continue;
      }
      let ranges = wants.get(peer);
      if (ranges === undefined) {
        ranges = [];
        wants.set(peer, ranges);
      }
      if (ranges.length >= want_ranges_max) continue;
      ranges.push({ origin, after: log.held(origin), upto: peer.claim(origin) });
      room--;
    }
    for (const [peer, ranges] of wants) {
      assert(peer.want === null, "one outstanding request per peer");
      const req = this.req_counter++;
      peer.want = { req, ranges, sent_ms: now_ms, deadline_ms: now_ms + Math.min(s.want_timeout_ms, s.want_deadline_ms), held_sum: this.held_sum(ranges) };
      for (const r of ranges) {
        assert(!this.requested_from.has(r.origin), "at most one peer asked per origin");
        this.requested_from.set(r.origin, peer);
      }
      counters.wants_sent++;
      this.host.send_want(out, peer, { kind: "want", from: this.id, to: peer.id, req, max_bytes: s.window_bytes, ranges });
    }
  }

  /**
   * A message of `peer`'s answer to `m.req` arrived (its events already
   * merged): the request lives on, or ends with the last. Only a message
   * that brought events of the requested ranges moves the deadline, and
   * never past sent_ms + want_deadline_ms: empty messages cannot keep an
   * origin busy.
   */
  answer(peer: Peer, m: AnswerMessage, now_ms: number): void {
    const want = peer.want;
    if (want === null || want.req !== m.req) return;
    const s = this.settings;
    const held_sum = this.held_sum(want.ranges);
    if (held_sum > want.held_sum) {
      want.held_sum = held_sum;
      want.deadline_ms = Math.max(want.deadline_ms, Math.min(now_ms + s.want_timeout_ms, want.sent_ms + s.want_deadline_ms));
    }
    assert(want.deadline_ms <= want.sent_ms + s.want_deadline_ms, "a request's deadline is at most want_deadline_ms after it was sent");
    if (m.held !== null) {
      // The sender's own word on what it holds beats an older claim.
      for (const [origin, seq] of m.held) this.claims.lower(peer, origin, seq);
    }
    if (m.gone !== undefined && m.gone !== null) {
      for (const [origin, floor] of m.gone) {
        // Only for origins asked of it: a peer can only rule itself out as a source.
        if (!want.ranges.some((r) => r.origin === origin)) continue;
        this.host.counters.ranges_gone_received++;
        if (!peer.note_pruned(origin, floor, s.claims_per_peer_max)) this.host.counters.forgotten.claims_per_peer++;
      }
    }
    if (m.last) this.finish(peer, now_ms);
  }

  /** `peer`'s request was answered in full: progress clears its failures, none backs it off and ranks it last for a while. */
  finish(peer: Peer, now_ms: number): void {
    const want = peer.want;
    assert(want !== null, "finishing an outstanding request");
    this.cancel(peer);
    const log = this.host.log;
    const progress = want.ranges.some((r) => log.held(r.origin) > r.after);
    const satisfied = want.ranges.every((r) => log.held(r.origin) >= r.upto);
    // Ranges it said it pruned are no waste: it is not asked for them again (plan skips it).
    const accounted = want.ranges.every((r) => log.held(r.origin) > r.after || peer.pruned_through(r.origin) > log.held(r.origin));
    if (progress || satisfied) peer.rehabilitate();
    else if (accounted) return;
    else if (this.host.quota_open()) {
      this.host.counters.wants_unproductive++;
      this.penalize(peer, now_ms);
    }
  }

  /**
   * The request's deadline passed: forget it. Without any progress the
   * peer is backed off and ranked last for a while; a request that brought
   * events is only ended (the rest is asked again, of the best peer).
   */
  time_out(peer: Peer, now_ms: number): void {
    const want = peer.want;
    assert(want !== null, "timing out an outstanding request");
    const log = this.host.log;
    const progress = want.ranges.some((r) => log.held(r.origin) > r.after);
    this.cancel(peer);
    if (progress) {
      this.host.counters.wants_past_deadline++;
      return;
    }
    this.host.counters.wants_timed_out++;
    this.penalize(peer, now_ms);
  }

  private penalize(peer: Peer, now_ms: number): void {
    const s = this.settings;
    peer.penalize(now_ms, s.retry_backoff_base_ms, s.retry_backoff_max_ms, s.peer_cooldown_ms);
  }

  private held_sum(ranges: readonly SeqRange[]): number {
    let sum = 0;
    for (const r of ranges) sum += this.host.log.held(r.origin);
    return sum;
  }

  /** Forgets `peer`'s outstanding request, if any, without holding it against the peer: its origins are free to ask again, and it may serve others. */
  cancel(peer: Peer): void {
    const want = peer.want;
    if (want === null) return;
    peer.want = null;
    for (const r of want.ranges) {
      assert(this.requested_from.get(r.origin) === peer, "an origin in a peer's outstanding request was asked of that peer");
      this.requested_from.delete(r.origin);
      this.work.add(r.origin);
      this.dirty.add(r.origin);
    }
    this.mark_peer(peer);
  }

  /** Ranges no known peer still holds (every claimant pruned them), by origin; the ones since filled are left out. */
  unavailable(): UnavailableRange[] {
    const out: UnavailableRange[] = [];
    for (const r of this.unavailable_ranges.values()) {
      if (this.host.log.held(r.origin) >= r.to) this.unavailable_ranges.delete(r.origin);
      else out.push({ ...r, pruned_by: [...r.pruned_by] });
    }
    return out;
  }

  /** Records (or updates) that origin's seqs from..to are held by no peer known here; counts events newly found unavailable. */
  private note_unavailable(origin: string, from: number, to: number, pruned_by: string[], now_ms: number): void {
    const previous = this.unavailable_ranges.get(origin);
    const counted_to = previous !== undefined && previous.from === from ? previous.to : from - 1;
    if (to > counted_to) this.host.counters.events_unavailable += to - counted_to;
    if (previous === undefined && this.unavailable_ranges.size >= this.settings.origins_max) return;
    this.unavailable_ranges.set(origin, { origin, from, to, pruned_by, since_ms: previous?.since_ms ?? now_ms });
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
    assert(wanted <= this.settings.origins_max, "at most origins_max origins are asked for at once");
    for (const origin of this.dirty) assert(this.work.has(origin), "a dirty origin has work");
    this.claims.assert_invariants(peers);
  }
}
