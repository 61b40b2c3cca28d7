import { assert } from "../lib/assert.ts";
import type { SyncCounters } from "./counters.ts";
import type { Peer } from "./peers.ts";
import type { SyncSettings } from "./sync_options.ts";

/** What the claim table needs of its owner (the repair planner). */
export interface ClaimHost {
  readonly counters: SyncCounters;
  /** This replica's id: peers' claims on it are acknowledgements, kept per peer outside the table and its limits. */
  readonly id: string;
  /** Highest seq of `origin` held here. */
  held(origin: string): number;
  /** Every claim on `origin` was forgotten (evicted or lowered to nothing). */
  forgotten(origin: string): void;
}

/** Candidates looked at per eviction before giving up (the queues skip origins that rose in rank). */
const eviction_scan_max = 64;

/**
 * Origins forgotten to make room for origins not held here, per received
 * message at most (see new_message): a vv of 8 000 lies would otherwise
 * churn 8 000 table entries (allocation the GC must catch up with: a flood
 * of 100 such vvs peaked at 150 MiB of RSS). An origin held here makes room
 * regardless. An honest newcomer still gets in: as many per message as a
 * request carries (want_ranges_max), the rest with the next vvs.
 */
export const evictions_per_message_max = 256;

/**
 * Origins in insertion order, oldest taken first, in O(1) amortized. Not a
 * Set: taking the first entry of a JS Set or Map after many deletions at its
 * front walks over them (measured here: 800 000 such steps on 20 000 live
 * entries took 11 s in Bun, against 0.6 s for the same adds and deletes by
 * key).
 */
class OriginQueue {
  private items: string[] = [];
  private stamps: number[] = [];
  private head = 0;
  /** origin -> the stamp of its live place in items (an older place is stale). */
  private readonly live = new Map<string, number>();
  private next_stamp = 0;

  get size(): number {
    return this.live.size;
  }

  has(origin: string): boolean {
    return this.live.has(origin);
  }

  /** Adds `origin` at the back (moves it there when it is in already). */
  push(origin: string): void {
    const stamp = this.next_stamp++;
    this.live.set(origin, stamp);
    this.items.push(origin);
    this.stamps.push(stamp);
  }

  delete(origin: string): void {
    this.live.delete(origin);
  }

  /** Removes and returns the oldest origin, or null when empty. */
  shift(): string | null {
    while (this.head < this.items.length) {
      const origin = this.items[this.head];
      const stamp = this.stamps[this.head];
      this.head++;
      if (this.live.get(origin) === stamp) {
        this.live.delete(origin);
        this.compact();
        return origin;
      }
    }
    this.compact();
    return null;
  }

  /** Drops taken and stale places once they are most of the arrays, so memory follows the live origins. */
  private compact(): void {
    const taken_most = this.head > 1024 && this.head * 2 > this.items.length;
    const stale_most = this.items.length - this.head > 2 * this.live.size + 1024;
    if (!taken_most && !stale_most) return;
    const items: string[] = [];
    const stamps: number[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      if (this.live.get(this.items[i]) !== this.stamps[i]) continue;
      items.push(this.items[i]);
      stamps.push(this.stamps[i]);
    }
    this.items = items;
    this.stamps = stamps;
    this.head = 0;
  }
}

/** The sources of one origin. */
interface OriginClaims {
  /** The table's copy of the id: peers' claim maps use it as their key, so the string is stored once. */
  readonly origin: string;
  /** At most claimants_per_origin_max peers; each has a claim on origin in peer.claims. */
  readonly peers: Peer[];
}

/**
 * Who claims to hold what (claims from vvs, vv entries and answers), kept
 * within limits a hostile fleet cannot push: claims_per_peer_max origins per
 * peer, origins_max origins in all, claimants_per_origin_max sources per
 * origin. Memory is then at most origins_max x about 400 B, plus one
 * acknowledgement per peer: measured (bun:jsc heapStats after a full GC,
 * 20 000 origins through RepairPlanner.raise) 240 B per origin with one
 * claimant and 338 B with four (record, map and queue entries, peers'
 * claims, the work set), plus the id string, about 50 B. At the defaults
 * (20 000 origins, 4 claimants) that is about 8 MiB.
 *
 * When the table is full, a new origin takes the place of the oldest one
 * ranked lower or equal to it, never of a stronger one: an origin this
 * replica holds ranks highest (never forgotten); then one claimed by itself
 * or by several peers ("vouched"); then one only a single other peer
 * claims. Forgetting loses no data: a real origin's claims come again with
 * the next vv, entry or answer (vvs are republished at least every
 * vv_refresh_ms), and a request already out for it runs to its end (its
 * events come with their sender's claim, and once held the origin is never
 * forgotten). Origins being asked for are not spared: a flood of requests
 * to liars would otherwise pin the whole table.
 *
 * Invariants: a peer's claim on an origin (other than this replica) is in
 * peer.claims exactly when the peer is among the origin's claimants here;
 * every origin not held here is in one of the eviction queues.
 */
export class ClaimTable {
  private readonly origins = new Map<string, OriginClaims>();
  /** Eviction candidates claimed by one peer only, oldest first (ranks are checked lazily when one is taken). */
  private readonly unvouched = new OriginQueue();
  /** Eviction candidates vouched for (the origin itself or several peers), oldest first. */
  private readonly vouched = new OriginQueue();
  private warned_held_full = false;
  private evictions_left = evictions_per_message_max;

  constructor(
    private readonly host: ClaimHost,
    private readonly settings: Pick<SyncSettings, "claims_per_peer_max" | "origins_max" | "claimants_per_origin_max" | "on_warning">,
  ) {}

  get size(): number {
    return this.origins.size;
  }

  /** A new message is being handled: it may make room for evictions_per_message_max origins not held here. */
  new_message(): void {
    this.evictions_left = evictions_per_message_max;
  }

  /** The peers remembered as holding some of `origin`. */
  claimants(origin: string): readonly Peer[] {
    return this.origins.get(origin)?.peers ?? [];
  }

  /**
   * Records that `peer` holds origin up to seq. Returns true when the
   * stored claim rose; false when it did not, or when a limit kept it out
   * (counted by reason in counters.forgotten).
   */
  raise(peer: Peer, origin: string, seq: number, now_ms: number): boolean {
    const current = peer.claims.get(origin);
    if (current !== undefined) {
      if (seq <= current) return false;
      peer.claims.set(origin, seq); // same key object as before
      return true;
    }
    if (seq <= 0) return false;
    if (origin === this.host.id) {
      peer.claims.set(this.host.id, seq);
      return true;
    }
    const forgotten = this.host.counters.forgotten;
    if (peer.claims.size - (peer.claims.has(this.host.id) ? 1 : 0) >= this.settings.claims_per_peer_max) {
      forgotten.claims_per_peer++;
      return false;
    }
    let entry = this.origins.get(origin);
    if (entry === undefined) {
      const rank = this.host.held(origin) > 0 ? 3 : peer.id === origin ? 2 : 1;
      if (this.origins.size >= this.settings.origins_max && ((rank < 3 && this.evictions_left <= 0) || !this.evict_for(rank))) {
        forgotten.origins_max++;
        if (rank === 3 && !this.warned_held_full) {
          this.warned_held_full = true;
          this.settings.on_warning(
            `sync tracks claims for origins_max (${this.settings.origins_max}) origins, most of them held here; claims for origin ${origin} are not kept, so it is not repaired until others are forgotten; raise replication.origins_max above the fleet's number of origins`,
            { origin, origins_max: this.settings.origins_max },
          );
        }
        return false;
      }
      entry = { origin, peers: [] };
      this.origins.set(origin, entry);
      if (rank === 1) this.unvouched.push(origin);
      else if (rank === 2) this.vouched.push(origin);
    }
    if (entry.peers.length >= this.settings.claimants_per_origin_max) {
      const worst = this.weakest(entry, now_ms);
      if (!stronger(peer, seq, worst, worst.claim(origin), origin, now_ms)) {
        forgotten.claimants_per_origin++;
        return false;
      }
      forgotten.claimants_per_origin++;
      entry.peers.splice(entry.peers.indexOf(worst), 1);
      worst.claims.delete(entry.origin);
    }
    entry.peers.push(peer);
    peer.claims.set(entry.origin, seq);
    assert(entry.peers.length <= this.settings.claimants_per_origin_max, "an origin has at most claimants_per_origin_max claimants");
    return true;
  }

  /** The peer's own word that it holds origin only up to seq (0: none of it): lowers its claim, or forgets it. */
  lower(peer: Peer, origin: string, seq: number): void {
    const current = peer.claims.get(origin);
    if (current === undefined || seq >= current) return;
    if (origin === this.host.id) {
      if (seq > 0) peer.claims.set(origin, seq);
      else peer.claims.delete(origin);
      return;
    }
    const entry = this.origins.get(origin);
    assert(entry !== undefined, "a claim on an origin is in the table");
    if (seq > 0) peer.claims.set(entry.origin, seq);
    else this.remove_claimant(entry, peer);
  }

  /** Checks the invariants over every origin and peer (for tests: the hot path checks only what it touches). */
  assert_invariants(peers: Iterable<Peer>): void {
    let claims = 0;
    for (const peer of peers) {
      assert(peer.claims.size - (peer.claims.has(this.host.id) ? 1 : 0) <= this.settings.claims_per_peer_max, "a peer has at most claims_per_peer_max claims");
      for (const origin of peer.claims.keys()) {
        if (origin === this.host.id) continue;
        assert(this.origins.get(origin)?.peers.includes(peer) === true, "a peer's claim is in the table");
        claims++;
      }
    }
    let listed = 0;
    for (const [origin, entry] of this.origins) {
      assert(entry.peers.length > 0 && entry.peers.length <= this.settings.claimants_per_origin_max, "an origin in the table has 1..claimants_per_origin_max claimants");
      for (const peer of entry.peers) assert(peer.claims.has(origin), "a claimant holds its claim");
      assert(this.host.held(origin) > 0 || this.unvouched.has(origin) || this.vouched.has(origin), "an origin not held here can be forgotten");
      listed += entry.peers.length;
    }
    assert(this.origins.size <= this.settings.origins_max, "at most origins_max origins");
    assert(listed === claims, "the table's claimants are the peers' claims");
  }

  /** 3: held here; 2: claimed by itself or by several peers; 1: one other peer's word only. */
  private rank(entry: OriginClaims): number {
    if (this.host.held(entry.origin) > 0) return 3;
    if (entry.peers.length >= 2 || entry.peers.some((p) => p.id === entry.origin)) return 2;
    return 1;
  }

  /** Forgets the oldest origin that ranks at most `rank` (a held one never; an unvouched one before a vouched one). */
  private evict_for(rank: number): boolean {
    const queues = rank >= 3 ? [this.unvouched, this.vouched] : [this.unvouched];
    for (const queue of queues) {
      for (let step = 0; step < eviction_scan_max; step++) {
        const origin = queue.shift();
        if (origin === null) break;
        const entry = this.origins.get(origin);
        if (entry === undefined) continue; // already gone
        const r = this.rank(entry);
        if (r === 3) continue; // held now: stays, out of the queues
        if (queue === this.unvouched && r === 2) {
          this.vouched.push(origin);
          continue;
        }
        this.host.counters.forgotten.origins_max++;
        this.forget(entry);
        if (rank < 3) this.evictions_left--;
        return true;
      }
    }
    return false;
  }

  private weakest(entry: OriginClaims, now_ms: number): Peer {
    let worst = entry.peers[0];
    for (const p of entry.peers) if (stronger(worst, worst.claim(entry.origin), p, p.claim(entry.origin), entry.origin, now_ms)) worst = p;
    return worst;
  }

  private remove_claimant(entry: OriginClaims, peer: Peer): void {
    const at = entry.peers.indexOf(peer);
    assert(at >= 0, "removing a claimant of the origin");
    entry.peers.splice(at, 1);
    peer.claims.delete(entry.origin);
    if (entry.peers.length === 0) {
      this.forget(entry);
      return;
    }
    // It may rank lower now: make sure it can be forgotten.
    const r = this.rank(entry);
    if (r === 1 && !this.unvouched.has(entry.origin)) this.unvouched.push(entry.origin);
    else if (r === 2 && !this.vouched.has(entry.origin) && !this.unvouched.has(entry.origin)) this.vouched.push(entry.origin);
  }

  private forget(entry: OriginClaims): void {
    for (const peer of entry.peers) peer.claims.delete(entry.origin);
    entry.peers.length = 0;
    this.origins.delete(entry.origin);
    this.unvouched.delete(entry.origin);
    this.vouched.delete(entry.origin);
    this.host.forgotten(entry.origin);
  }
}

/** Whether `a` (claiming seq_a) is a better source for `origin` than `b` (claiming seq_b): the origin itself, not cooling down, fewer failures, more events. */
function stronger(a: Peer, seq_a: number, b: Peer, seq_b: number, origin: string, now_ms: number): boolean {
  if ((a.id === origin) !== (b.id === origin)) return a.id === origin;
  if (a.cooling(now_ms) !== b.cooling(now_ms)) return !a.cooling(now_ms);
  if (a.failures !== b.failures) return a.failures < b.failures;
  return seq_a > seq_b;
}
