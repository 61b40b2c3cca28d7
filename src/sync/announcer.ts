import { assert } from "../lib/assert.ts";
import type { EntryMessage, VvMessage } from "./messages.ts";
import type { Peer } from "./peers.ts";
import type { ReplicaLog } from "./replica_log.ts";
import type { Outbound, SyncSettings } from "./sync_options.ts";
import type { Topics } from "./topics.ts";

/** What the announcer needs of the replicator. */
export interface AnnouncerHost {
  readonly log: ReplicaLog;
  readonly topics: Topics;
  /** Whether events of `origin` are taken from peers. */
  pulls(origin: string): boolean;
  /** Encodes a retained message of this replica's into `out`. */
  publish(out: Outbound[], topic: string, m: VvMessage | EntryMessage): void;
  /**
   * The highest own seq the vv may claim: own events pushed live (or
   * durable before the link came up). A claim ahead of the push makes every
   * peer ask for events already on their way, and get them twice. Unset:
   * no limit beyond durability.
   */
  own_claim_max?(): number;
}

/**
 * Publishes this replica's durable vv (whole on `P/<id>/vv`, and entry by
 * entry on `P/<id>/vv/<origin>` for partial replicas), within its rate
 * limits. Owns when each was last published and what, and which entries
 * partial peers follow (kept as counts as their pull lists change, so a
 * publication costs the entries followed, not peers x pull lists).
 *
 * Invariants: an entry is published only for an origin held durably, at a
 * seq held durably; the own entry claims no more than was pushed live
 * (own_claim_max), and rises when that does; a published vv fits in one
 * message and keeps the own entry (the acknowledgement peers wait for).
 */
export class Announcer {
  private readonly id: string;
  private last_vv_ms = Number.NEGATIVE_INFINITY;
  /** log.durable_count at the last vv publication: unchanged means the vv is too. */
  private last_vv_count = -1;
  /** Entries in the last vv published, which stretch the interval to the next (vv_ms_per_origin). */
  private last_vv_entries = 0;
  private warned_vv_truncated = false;
  /** vv entries last published (origin -> seq), and when. */
  private readonly entries_published = new Map<string, number>();
  /** origin -> how many known partial peers follow its entry (they pull it, or it is their own acknowledgement). */
  private readonly followed = new Map<string, number>();
  private entries_dirty = false;
  private last_entries_ms = Number.NEGATIVE_INFINITY;
  private last_entries_refresh_ms = Number.NEGATIVE_INFINITY;
  private last_entries_count = -1;
  /** The own claim in the last vv and in the last entries published: a rise is a change even when durable_count is not. */
  private last_vv_own = -1;
  private last_entries_own = -1;

  constructor(
    private readonly host: AnnouncerHost,
    private readonly settings: SyncSettings,
  ) {
    this.id = host.log.id;
  }

  /** `peer`'s pull list changes from `before` to `after` (peer.pull is not yet updated): it may want other entries of ours. */
  peer_pull_changed(peer: Peer, before: "*" | ReadonlySet<string> | null, after: "*" | ReadonlySet<string> | null): void {
    if (before !== null && before !== "*") {
      this.unfollow(peer.id);
      for (const origin of before) this.unfollow(origin);
    }
    if (after !== null && after !== "*") {
      this.follow(peer.id);
      for (const origin of after) this.follow(origin);
    }
    this.entries_dirty = true;
  }

  /** A partial peer (already counted as following its own entry) starts or stops pulling one origin. */
  peer_pull_entry(origin: string, pulls: boolean): void {
    if (pulls) this.follow(origin);
    else this.unfollow(origin);
    this.entries_dirty = true;
  }

  private follow(origin: string): void {
    this.followed.set(origin, (this.followed.get(origin) ?? 0) + 1);
  }

  private unfollow(origin: string): void {
    const n = (this.followed.get(origin) ?? 0) - 1;
    assert(n >= 0, "an entry is unfollowed only after being followed");
    if (n === 0) this.followed.delete(origin);
    else this.followed.set(origin, n);
  }

  /** Publishes vv and entries when they changed and their intervals allow (or their refresh is due). */
  maybe_publish(out: Outbound[], now_ms: number): void {
    this.maybe_publish_vv(out, now_ms);
    this.maybe_publish_entries(out, now_ms, false);
  }

  /** On (re)connect: the vv and every entry, now. */
  publish_all(out: Outbound[], now_ms: number): void {
    this.publish_vv(out, now_ms);
    this.maybe_publish_entries(out, now_ms, true);
  }

  /**
   * Publishes the vv entries that changed (all of them on connect and every
   * vv_refresh_ms), at most every vv_interval_ms whatever the number of
   * origins, so a spoke hears its acknowledgement as often in a fleet of a
   * thousand as in one of ten.
   */
  maybe_publish_entries(out: Outbound[], now_ms: number, force: boolean): void {
    const { log, topics } = this.host;
    const s = this.settings;
    const own_claim = this.own_claim();
    if (!this.entries_dirty && !force && log.durable_count === this.last_entries_count && own_claim === this.last_entries_own && now_ms - this.last_entries_refresh_ms < s.vv_refresh_ms) return;
    if (!force && now_ms - this.last_entries_ms < s.vv_interval_ms) return;
    const refresh = force || now_ms - this.last_entries_refresh_ms >= s.vv_refresh_ms;
    if (refresh) this.last_entries_refresh_ms = now_ms;
    this.last_entries_ms = now_ms;
    this.last_entries_count = log.durable_count;
    this.last_entries_own = own_claim;
    this.entries_dirty = false;
    const wanted = this.entries_wanted();
    const vv = this.claimed_vv(own_claim);
    for (const origin of wanted) {
      // Only what this replica holds: a peer's pull list cannot make it publish entries for origins it has never seen.
      const seq = vv.get(origin) ?? 0;
      if (seq === 0 || (!refresh && this.entries_published.get(origin) === seq)) continue;
      assert(seq <= log.durable_held(origin), "a vv entry is published only for events held durably");
      this.entries_published.set(origin, seq);
      const entry: EntryMessage = { kind: "entry", from: this.id, name: log.name, origin, seq, pulls: origin === this.id || this.host.pulls(origin) };
      this.host.publish(out, topics.entry(this.id, origin), entry);
    }
  }

  /**
   * Entries worth publishing: our own origin always; a partial replica all
   * it holds (a few origins); a full one only what known partial replicas
   * follow (their own acknowledgement and what they pull). A full replica
   * hears every partial one's vv, so it knows them.
   */
  private entries_wanted(): Set<string> {
    const wanted = new Set<string>([this.id]);
    const pull_set = this.settings.pull_set;
    if (pull_set !== null) {
      for (const origin of pull_set) if (this.host.log.held(origin) > 0) wanted.add(origin);
      return wanted;
    }
    for (const origin of this.followed.keys()) wanted.add(origin);
    return wanted;
  }

  /** What the vv says of this replica's own events: durable, and no more than pushed live. */
  private own_claim(): number {
    return Math.min(this.host.log.durable_held(this.id), this.host.own_claim_max?.() ?? Number.POSITIVE_INFINITY);
  }

  /** The durable vv with the own entry at own_claim (absent when 0). */
  private claimed_vv(own_claim: number): Map<string, number> {
    const vv = this.host.log.durable_vv();
    if ((vv.get(this.id) ?? 0) > own_claim) {
      if (own_claim > 0) vv.set(this.id, own_claim);
      else vv.delete(this.id);
    }
    return vv;
  }

  maybe_publish_vv(out: Outbound[], now_ms: number): void {
    const s = this.settings;
    const changed = this.host.log.durable_count !== this.last_vv_count || this.own_claim() !== this.last_vv_own;
    const since = now_ms - this.last_vv_ms;
    const interval = Math.max(s.vv_interval_ms, this.last_vv_entries * s.vv_ms_per_origin);
    if ((changed && since >= interval) || since >= Math.max(s.vv_refresh_ms, interval)) this.publish_vv(out, now_ms);
  }

  publish_vv(out: Outbound[], now_ms: number): void {
    const { log, topics } = this.host;
    const s = this.settings;
    this.last_vv_count = log.durable_count;
    this.last_vv_ms = now_ms;
    const own_claim = this.own_claim();
    this.last_vv_own = own_claim;
    let vv = this.claimed_vv(own_claim);
    const entries_max = s.vv_entries_per_message_max;
    const own = vv.get(this.id);
    if (vv.size > entries_max) {
      // Keep own events first: that entry is the acknowledgement peers wait for.
      const kept = new Map<string, number>();
      if (own !== undefined) kept.set(this.id, own);
      for (const [origin, seq] of vv) if (kept.size < entries_max) kept.set(origin, seq);
      vv = kept;
      if (!this.warned_vv_truncated) {
        this.warned_vv_truncated = true;
        s.on_warning(`the version vector has more origins than fit in one ${s.max_packet_bytes}-byte message; only ${entries_max} are published`, {});
      }
    }
    assert(vv.size <= entries_max && vv.get(this.id) === own, "a published vv fits in one message and keeps the own entry");
    this.last_vv_entries = vv.size;
    const pull = s.pull_set === null ? "*" : [...s.pull_set];
    const head_event = own === undefined ? null : log.get(this.id, own);
    const head = head_event === null ? null : { seq: head_event.seq, crc: head_event.crc };
    this.host.publish(out, topics.vv(this.id), { kind: "vv", from: this.id, name: log.name, vv, pull, head });
  }
}
