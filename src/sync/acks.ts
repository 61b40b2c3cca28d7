import type { Clock, TimerHandle, Timers } from "../lib/clock.ts";
import type { AckSource } from "../log/retention.ts";
import type { Peer } from "./peers.ts";

/**
 * Retention's acknowledgements (src/log/retention.ts, AckSource) from what
 * sync knows of its peers: an upstream holds an origin up to what its own
 * vv (or vv entry) said (peers.ts `acked`). A replica publishes only its
 * durable vv, so that is what the upstream holds durably. It is kept apart
 * from the repair claims, which sync's limits may forget (only a few
 * claimants per origin are kept); an acknowledgement never falls, and one
 * never heard reads as 0, which holds pruning back rather than letting it go
 * early.
 */

/** What acks read of the replicator: its peer table, and a number that changes whenever a peer's pull list does. */
export interface PeerTableView {
  readonly peer_table: ReadonlyMap<string, Readonly<Peer>>;
  readonly pulls_version: number;
}

export class PeerAcks implements AckSource {
  /** origin -> the peers that pull it, for pulls_version `cached_at`. */
  private readonly pullers = new Map<string, readonly string[]>();
  private cached_at = -1;
  private all_cache: readonly string[] | null = null;

  /**
   * @param configured retention.upstreams: these replicas acknowledge every
   *   origin; null: every peer that pulls the origin (as its vv says).
   */
  constructor(
    private readonly table: PeerTableView,
    private readonly configured: readonly string[] | null,
  ) {}

  upstreams_of(origin: string): readonly string[] {
    if (this.configured !== null) return this.configured;
    this.check_cache();
    let list = this.pullers.get(origin);
    if (list === undefined) {
      const ids: string[] = [];
      for (const peer of this.table.peer_table.values()) if (peer.pulls(origin)) ids.push(peer.id);
      list = ids;
      this.pullers.set(origin, list);
    }
    return list;
  }

  held_by(upstream: string, origin: string): number {
    return this.table.peer_table.get(upstream)?.acked.get(origin) ?? 0;
  }

  upstreams(): readonly string[] {
    if (this.configured !== null) return this.configured;
    this.check_cache();
    if (this.all_cache === null) {
      const ids: string[] = [];
      for (const peer of this.table.peer_table.values()) if (peer.pull === "*" || (peer.pull !== null && peer.pull.size > 0)) ids.push(peer.id);
      this.all_cache = ids;
    }
    return this.all_cache;
  }

  private check_cache(): void {
    const version = this.table.pulls_version + this.table.peer_table.size * 2 ** 32;
    if (version === this.cached_at) return;
    this.cached_at = version;
    this.pullers.clear();
    this.all_cache = null;
  }
}

/** Least time between two maintain calls caused by claims rising. */
export const maintain_min_interval_ms = 1000;
/** maintain runs at least this often, so a log stuck at its budget resumes once an upstream catches up, whatever woke it. */
export const maintain_period_ms = 10_000;

/**
 * Calls `maintain` (log.maintain: prune what the upstreams now hold) when
 * acknowledgements advance, at most once per min_interval_ms (a call that
 * comes sooner is run once at the end of the interval), and every period_ms
 * regardless. Timers are injected.
 */
export class MaintainPacer {
  private last_ms = Number.NEGATIVE_INFINITY;
  private delayed: TimerHandle | null = null;
  private periodic: TimerHandle | null = null;
  /** Calls made (for tests and status). */
  runs = 0;

  constructor(
    private readonly maintain: () => unknown,
    private readonly clock: Clock,
    private readonly timers: Timers,
    private readonly min_interval_ms = maintain_min_interval_ms,
    private readonly period_ms = maintain_period_ms,
  ) {}

  start(): void {
    if (this.periodic !== null) return;
    this.periodic = this.timers.every(this.period_ms, () => this.run());
  }

  /** Acknowledgements may have advanced. */
  notify(): void {
    if (this.delayed !== null) return;
    const wait = this.last_ms + this.min_interval_ms - this.clock.now_ms();
    if (wait <= 0) {
      this.run();
      return;
    }
    // A one-shot timer from `every`: cancelled when it fires.
    const handle = this.timers.every(wait, () => {
      handle.cancel();
      this.delayed = null;
      this.run();
    });
    this.delayed = handle;
  }

  stop(): void {
    this.periodic?.cancel();
    this.periodic = null;
    this.delayed?.cancel();
    this.delayed = null;
  }

  private run(): void {
    this.last_ms = this.clock.now_ms();
    this.runs++;
    void this.maintain();
  }
}
