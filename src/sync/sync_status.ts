import type { SyncCounters } from "./counters.ts";
import type { Peer } from "./peers.ts";
import type { UnavailableRange } from "./repair_planner.ts";
import type { ReplicaLog } from "./replica_log.ts";

export interface PeerStatus {
  id: string;
  name: string;
  /** What the peer is known to hold: origin -> highest seq (its vv, pushes and answers). */
  vv: Record<string, number>;
  online: boolean | null;
  last_seen_ms: number;
  /** Events this replica holds durably, that the peer pulls, beyond what the peer is known to hold. */
  lag_events: number;
  /** Events the peer is known to hold, that this replica pulls, beyond what it holds. */
  behind_events: number;
  /** Age of the oldest own event the peer pulls but has not acknowledged in its vv; null when none. */
  oldest_unacked_age_ms: number | null;
  failures: number;
  want_outstanding: boolean;
  /** Origins the peer said it pruned (retention), through which seq; only those this replica still lacks. */
  pruned: Record<string, number>;
  messages_in: number;
  bytes_in: number;
  messages_out: number;
  bytes_out: number;
  dropped: number;
}

export interface SyncStatus {
  id: string;
  connected: boolean;
  pull: "*" | string[];
  peers: PeerStatus[];
  counters: SyncCounters;
  /** Memory the out-of-order buffer holds (frames and their overhead). */
  gap_buffer_bytes: number;
  gap_buffer_events: number;
  /** Memory half-reassembled events hold (fragments and their overhead). */
  reassembly_bytes: number;
  /** Origins claims are kept for (at most origins_max), and those some peer holds beyond this replica. */
  origins_tracked: number;
  origins_with_work: number;
  /** Record bytes of other origins' events held (against peer_events_max_bytes); null without a quota. */
  peer_events_bytes: number | null;
  /**
   * Ranges this replica lacks that every peer known to hold more pruned
   * (retention): it cannot take them, nor (seqs are dense) the origin's later
   * events, until a peer that still holds them appears. Nothing is asked for
   * them meanwhile.
   */
  unavailable: UnavailableRange[];
}

/** The replicator state a status is computed from (read only). */
export interface StatusSource {
  log: ReplicaLog;
  connected: boolean;
  pull_set: ReadonlySet<string> | null;
  pulls(origin: string): boolean;
  peers: Iterable<Peer>;
  counters: SyncCounters;
  gap: { readonly bytes: number; readonly count: number };
  reassembler: { readonly bytes: number };
  origins_tracked: number;
  origins_with_work: number;
  peer_events_bytes: number | null;
  unavailable: UnavailableRange[];
}

/**
 * Per-peer lag and counters for /metrics and /api/peers. Costs O(this
 * replica's vv + every peer's claims and pull list), which the limits bound
 * (claims_per_peer_max, origins_max, claimants_per_origin_max,
 * pulls_per_peer_max), not O(vv x peers).
 */
export function sync_status(s: StatusSource, now_ms: number): SyncStatus {
  const id = s.log.id;
  const mine = s.log.durable_vv();
  const own = mine.get(id) ?? 0;
  let all_held = 0;
  for (const seq of mine.values()) all_held += seq;
  const peers: PeerStatus[] = [];
  for (const p of s.peers) {
    // Lag over the origins it pulls: everything held here less what it claims, or only its pull list.
    let lag = 0;
    if (p.pull === "*") {
      lag = all_held - (mine.get(p.id) ?? 0);
      for (const [origin, seq] of p.claims) if (origin !== p.id) lag -= Math.min(seq, mine.get(origin) ?? 0);
    } else if (p.pull !== null) {
      for (const origin of p.pull) if (origin !== p.id) lag += Math.max(0, (mine.get(origin) ?? 0) - p.claim(origin));
    }
    let behind = 0;
    for (const [origin, seq] of p.claims) if (s.pulls(origin)) behind += Math.max(0, seq - s.log.held(origin));
    let oldest: number | null = null;
    if (p.pulls(id) && p.claim(id) < own) {
      // The oldest one still held (drop-oldest may have pruned older ones the peer never got).
      const e = s.log.get(id, Math.max(p.claim(id), s.log.pruned_through(id)) + 1);
      if (e !== null) oldest = Math.max(0, now_ms - e.time_ms);
    }
    peers.push({
      id: p.id,
      name: p.name,
      vv: Object.fromEntries(p.claims),
      online: p.online,
      last_seen_ms: p.last_seen_ms,
      lag_events: lag,
      behind_events: behind,
      oldest_unacked_age_ms: oldest,
      failures: p.failures,
      want_outstanding: p.want !== null,
      pruned: Object.fromEntries(p.pruned),
      messages_in: p.messages_in,
      bytes_in: p.bytes_in,
      messages_out: p.messages_out,
      bytes_out: p.bytes_out,
      dropped: p.dropped,
    });
  }
  return {
    id,
    connected: s.connected,
    pull: s.pull_set === null ? "*" : [...s.pull_set],
    peers,
    counters: s.counters,
    gap_buffer_bytes: s.gap.bytes,
    gap_buffer_events: s.gap.count,
    reassembly_bytes: s.reassembler.bytes,
    origins_tracked: s.origins_tracked,
    origins_with_work: s.origins_with_work,
    peer_events_bytes: s.peer_events_bytes,
    unavailable: s.unavailable,
  };
}
