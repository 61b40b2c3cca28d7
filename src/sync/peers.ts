import type { SeqRange } from "./packed.ts";

/** Backoff doublings counted at most: past this many failures the cap (retry_backoff_max_ms) rules anyway, and 2 ** n stays exact. */
const backoff_doublings_max = 20;

/** A repair request waiting for its answer. */
export interface OutstandingWant {
  req: number;
  ranges: SeqRange[];
  sent_ms: number;
  /**
   * Past it the request has timed out: want_timeout_ms after it was sent or
   * after its answer last brought progress, never later than
   * sent_ms + want_deadline_ms. Empty answer messages do not move it.
   */
  deadline_ms: number;
  /** The sum over the ranges' origins of the seqs held here when the answer last made progress. */
  held_sum: number;
}

/** What this replica knows about another one. */
export class Peer {
  readonly id: string;
  name = "";
  /**
   * origin -> highest seq the peer holds, as far as we know (its vv, its
   * pushes, its answers). Written only by ClaimTable (claims.ts), which
   * keeps it within claims_per_peer_max and may forget a claim.
   */
  readonly claims = new Map<string, number>();
  /**
   * origin -> F: the peer said (a `gone` answer) that it pruned the
   * origin's events through seq F, so it is not asked for that origin while
   * this replica holds less than F (pruning only rises, and the peer cannot
   * serve seq held+1). Entries go once this replica holds F; at most
   * claims_per_peer_max of them (see note_pruned).
   */
  readonly pruned = new Map<string, number>();
  /**
   * origin -> highest seq the peer holds durably by its own vv (or vv
   * entry): its acknowledgement, which retention trusts (acks.ts). Kept
   * apart from `claims`, which sync's limits may forget (claimants per
   * origin) and which pushes and answers also raise. Only origins held
   * here, only rising, at most claims_per_peer_max; a claim on this
   * replica's own origin beyond what it holds is ignored (a liar or a clone).
   */
  readonly acked = new Map<string, number>();
  /** Which origins it pulls; null until its vv arrives. A list keeps only origins this replica holds (at most pulls_per_peer_max). */
  pull: "*" | Set<string> | null = null;
  /** From its retained status; null until known. */
  online: boolean | null = null;
  /** The connection its last online status announced. */
  session: number | null = null;
  /** Consecutive requests it did not answer usefully; resets on progress. */
  failures = 0;
  backoff_until_ms = 0;
  /** Until then it is asked last (it wasted a request: timed out or answered nothing useful). */
  cooldown_until_ms = 0;
  want: OutstandingWant | null = null;
  /** The last repair request served for it, so a broker's duplicate is not served twice. */
  last_served_req = -1;
  last_seen_ms = 0;
  messages_in = 0;
  bytes_in = 0;
  messages_out = 0;
  bytes_out = 0;
  dropped = 0;

  constructor(id: string) {
    this.id = id;
  }

  claim(origin: string): number {
    return this.claims.get(origin) ?? 0;
  }

  /** Through which seq the peer pruned `origin`, as it told this replica (0: not known to have pruned). */
  pruned_through(origin: string): number {
    return this.pruned.get(origin) ?? 0;
  }

  /** Records the peer's word that it pruned origin through `floor`; false when `max` origins are already recorded (nothing stored). */
  note_pruned(origin: string, floor: number, max: number): boolean {
    const current = this.pruned.get(origin);
    if (current === undefined && this.pruned.size >= max) return false;
    if (current === undefined || floor > current) this.pruned.set(origin, floor);
    return true;
  }

  pulls(origin: string): boolean {
    return this.pull === "*" || (this.pull !== null && this.pull.has(origin));
  }

  /**
   * Whether a repair request may go to this peer now. An offline status only
   * ranks a peer last (see better_than): a will can arrive after the peer is
   * back, and a stale status must not leave an origin without a source.
   */
  available(now_ms: number): boolean {
    return this.want === null && now_ms >= this.backoff_until_ms;
  }

  /** Records a wasted request: exponential backoff, capped, and asked last for cooldown_ms. */
  penalize(now_ms: number, base_ms: number, max_ms: number, cooldown_ms: number): void {
    this.failures++;
    this.backoff_until_ms = now_ms + Math.min(max_ms, base_ms * 2 ** Math.min(backoff_doublings_max, this.failures - 1));
    this.cooldown_until_ms = now_ms + cooldown_ms;
  }

  /** Its requests bring progress again: no backoff, no cooldown. */
  rehabilitate(): void {
    this.failures = 0;
    this.backoff_until_ms = 0;
    this.cooldown_until_ms = 0;
  }

  cooling(now_ms: number): boolean {
    return now_ms < this.cooldown_until_ms;
  }

  /**
   * Whether `this` is a better source than `other` for an origin: not
   * cooling down (a peer that wasted a request recently is asked last,
   * whatever it claims), fewer failures, not offline, more events, the
   * origin itself, then id.
   */
  better_than(other: Peer, origin: string, now_ms: number): boolean {
    const cooling = this.cooling(now_ms);
    if (cooling !== other.cooling(now_ms)) return !cooling;
    if (this.failures !== other.failures) return this.failures < other.failures;
    if ((this.online === false) !== (other.online === false)) return other.online === false;
    const a = this.claim(origin);
    const b = other.claim(origin);
    if (a !== b) return a > b;
    if ((this.id === origin) !== (other.id === origin)) return this.id === origin;
    return this.id < other.id;
  }
}
