import type { TopicKind } from "./topics.ts";

/** Why a received message was dropped whole. Stable names: they become metric labels. */
export const drop_reasons = [
  /** Larger than max_packet_bytes. */
  "oversize",
  /** Not `P/<id>/<kind>[/<peer>]` with valid ids. */
  "bad_topic",
  /** Not decodable CBOR, or not a CBOR map. */
  "bad_cbor",
  /** An envelope version this replica does not speak. */
  "unknown_version",
  /** Decodable but with missing or mistyped fields, or a kind that does not match the topic. */
  "bad_shape",
  /** `from` differs from the id in the topic. */
  "impersonation",
  /** A want or answer addressed to another replica. */
  "not_for_me",
  /** An event on `P/<id>/events` whose origin is not `<id>`. */
  "wrong_origin",
  /** A record frame that is torn, overlong, has unknown flags, seq 0, origin 0 or a bad crc. */
  "bad_frame",
  /** A seq at or beyond 2^53 (in a frame, a vv or a range). */
  "seq_overflow",
  /** A fragment of a large event that does not continue the one being reassembled. */
  "bad_part",
  /** From an unknown replica while peers_max are already tracked. */
  "peer_limit",
  /** This replica's own message echoed back by the broker. */
  "own_echo",
  /** A repair request from a requester whose answer rate (answer_rate_per_requester_bytes_per_s) is used up: not answered. */
  "answer_rate",
  /** A repair request for events just answered to the same requester (answer_repeat_ms): they are not sent again (an empty final answer says so). */
  "want_repeated",
  /** A fragment refused because half-reassembled events of all peers fill reassembly_max_bytes. */
  "reassembly_full",
  /** An answer to no request of this replica's, or with events of origins it did not ask that peer for. */
  "unsolicited_answer",
] as const;
export type DropReason = (typeof drop_reasons)[number];

/** Why a single event inside an accepted message was not stored. */
export const event_drop_reasons = [
  /** Its origin is not in replication.pull. */
  "not_pulled",
  /** This replica's own origin at a seq it does not hold (it never takes its own events back). */
  "own_origin",
  /** Arrived ahead of a gap while the out-of-order buffer was full (gap_buffer_max_bytes). */
  "gap_buffer_full",
  /** Arrived ahead of a gap while the events parked for the peer that sent it filled its share (gap_buffer_per_peer_max_bytes). */
  "gap_buffer_per_peer",
  /** Synced events would pass the disk quota for other origins' events (peer_events_max_bytes). */
  "peer_quota",
  /** The local log refused the write (full, failed, closed). */
  "log_error",
  /** A signed range whose signature does not verify under its origin's key: forged or altered on the way. */
  "bad_signature",
  /** A signed range carrying a public key that is not its origin's (the id is the key's hash) or not the pinned one. */
  "unknown_key",
  /** An origin outside trust.replicas, when that allowlist is set. */
  "not_trusted",
  /** Events no whole signed range covers (cut short, or a proof whose first seq is elsewhere): never stored; fetched again whole. */
  "partial_range",
  /** A signed range overlapping the held one of its origin differently: two devices share a key (counted in conflicts too). */
  "conflict",
] as const;
export type EventDropReason = (typeof event_drop_reasons)[number];

/**
 * What a peer made this replica remember and was forgotten (or never
 * stored) to stay within a limit. Forgetting a claim loses no data: the
 * peer's next vv, entry or answer teaches it again.
 */
export const forget_reasons = [
  /** A claim beyond claims_per_peer_max origins for one peer. */
  "claims_per_peer",
  /** A claim for a new origin while origins_max origins are tracked (a weaker origin was forgotten, or the new one). */
  "origins_max",
  /** A claim beyond claimants_per_origin_max peers for one origin (the weakest source was forgotten, or the new one). */
  "claimants_per_origin",
  /** Origins of a peer's pull list beyond pulls_per_peer_max. */
  "pulls_per_peer",
  /** A peer's oldest half-reassembled event, abandoned for its newer one (reassembly_per_peer_max_bytes, reassemblies_per_peer_max), or because it held the most when all peers' filled reassembly_max_bytes. */
  "reassembly_per_peer",
  /** A half-reassembled event abandoned after gap_hold_ms. */
  "reassembly_expired",
] as const;
export type ForgetReason = (typeof forget_reasons)[number];

export const message_kinds: readonly TopicKind[] = ["vv", "entry", "events", "want", "to", "status"];

export interface SyncCounters {
  messages_in: Record<TopicKind, number>;
  messages_out: Record<TopicKind, number>;
  bytes_in: number;
  bytes_out: number;
  dropped: Record<DropReason, number>;
  events_dropped: Record<EventDropReason, number>;
  forgotten: Record<ForgetReason, number>;
  /** Events from peers appended to the log (rejected placeholders included). */
  events_appended: number;
  /** Events received that the log already held. */
  events_duplicate: number;
  /** Events a sync validator refused, stored as rejected placeholders. */
  events_rejected: number;
  /** Duplicates whose content differs from the held event: two replicas share an id. */
  conflicts: number;
  /** Events parked in the out-of-order buffer. */
  events_buffered: number;
  /** Own durable events pushed live on P/<id>/events. */
  events_pushed: number;
  /** Events sent in answers to repair requests. */
  events_served: number;
  wants_sent: number;
  wants_received: number;
  /** Repair requests that got no answer in time (the peer is tried again later, others first). */
  wants_timed_out: number;
  /** Repair requests answered without the events the peer's vv claimed. */
  wants_unproductive: number;
  /** Repair requests abandoned at want_deadline_ms although their answer was still making progress. */
  wants_past_deadline: number;
  /** Requested ranges this replica answered with `gone`: it pruned (retention) events the requester lacks. */
  ranges_gone_sent: number;
  /** Requested ranges a peer answered with `gone`: that peer is not asked for them again. */
  ranges_gone_received: number;
  /** Events found held by no known peer (every claimant pruned them): this replica cannot take them, nor the origin's later ones (see SyncStatus.unavailable). */
  events_unavailable: number;
}

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

export function new_counters(): SyncCounters {
  return {
    messages_in: zeros(message_kinds),
    messages_out: zeros(message_kinds),
    bytes_in: 0,
    bytes_out: 0,
    dropped: zeros(drop_reasons),
    events_dropped: zeros(event_drop_reasons),
    forgotten: zeros(forget_reasons),
    events_appended: 0,
    events_duplicate: 0,
    events_rejected: 0,
    conflicts: 0,
    events_buffered: 0,
    events_pushed: 0,
    events_served: 0,
    wants_sent: 0,
    wants_received: 0,
    wants_timed_out: 0,
    wants_unproductive: 0,
    wants_past_deadline: 0,
    ranges_gone_sent: 0,
    ranges_gone_received: 0,
    events_unavailable: 0,
  };
}
