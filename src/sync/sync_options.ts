import { InterlogError } from "../lib/errors.ts";
import { assert_origin } from "../log/ids.ts";
import type { SyncValidator } from "./merge.ts";
import { vv_entry_bytes } from "./packed.ts";
import type { ReplicaLog } from "./replica_log.ts";
import { check_prefix, prefix_default } from "./topics.ts";
import { event_region_max_bytes } from "./wire_events.ts";

/**
 * The replicator's contract with its host: the options it is built with
 * (ReplicatorOptions, resolved once by resolve_sync_options) and the
 * messages it hands back (Outbound). The limits every sync file shares live
 * here, so a number means the same thing wherever it is used.
 */

/** A message for the transport to publish. */
export interface Outbound {
  topic: string;
  payload: Uint8Array;
  retain: boolean;
  qos: 0 | 1;
  /** Call once the broker acknowledged the message and nothing reads `payload` any more: its buffer is reused. */
  release?: () => void;
  /**
   * Bytes right before `payload` in its ArrayBuffer that nothing else uses:
   * the transport may write its packet header there and send header and
   * payload as one buffer instead of joining them in a copy. 0 or unset: none.
   */
  header_room_bytes?: number;
}

export interface ReplicatorOptions {
  log: ReplicaLog;
  /** Topic prefix P (default "interlog"). */
  prefix?: string;
  /** Origins to replicate: "*" or a list of replica ids (design: replication.pull). Own events are always kept. */
  pull?: "*" | readonly string[];
  /** Replicas whose vv and status to follow, i.e. possible sources. Default: everyone when pull is "*", else the pulled origins. */
  watch?: "*" | readonly string[];
  /** Sync validator run on every incoming event before it is appended. */
  validate?: SyncValidator | null;
  /** Largest MQTT message, topic and headers included (default 128 KiB, the AWS IoT Core limit). */
  max_packet_bytes?: number;
  /** Flow-control window: frame bytes requested per repair request, and the most served per request. */
  window_bytes?: number;
  /** A repair request whose answer brings no progress for this long is abandoned and the peer backed off. */
  want_timeout_ms?: number;
  /** A repair request is abandoned this long after it was sent, progress or not: one peer cannot keep an origin busy. */
  want_deadline_ms?: number;
  /** A peer whose request ended without progress (or timed out) is asked last for this long. */
  peer_cooldown_ms?: number;
  retry_backoff_base_ms?: number;
  retry_backoff_max_ms?: number;
  /** Least time between two vv publications while it changes. */
  vv_interval_ms?: number;
  /**
   * Added to that least time per origin listed, so a hub's vv with many
   * origins costs each subscriber a bounded bandwidth (16 bytes per entry per
   * this many ms: ~16 KB/s at the default) whatever the fleet size.
   */
  vv_ms_per_origin?: number;
  /** The vv is republished at least this often even when unchanged, so a lost one is made good. */
  vv_refresh_ms?: number;
  /**
   * The broker does not hand retained vvs and statuses to a replica that
   * subscribes later (RabbitMQ: retained messages reach exact-topic
   * subscriptions only, and stay on the cluster node that got them): when a
   * peer comes online with a new session, republish the status, vv and
   * entries, at most once per vv_interval_ms, so it learns this replica
   * without waiting for vv_refresh_ms. Default false (mosquitto, EMQX, AWS).
   */
  announce_to_new_peers?: boolean;
  /**
   * Least time between two such announcements: a fleet reconnecting after a
   * broker node died (every replica sees hundreds of new sessions), or a
   * peer that flaps its session on purpose, costs each replica at most one
   * full republication per this long (three times its vv_refresh_ms load at
   * the defaults), not one per newcomer.
   */
  announce_min_interval_ms?: number;
  /** Out-of-order events parked for all peers, counted in memory (frame plus gap_entry_overhead_bytes each). */
  gap_buffer_max_bytes?: number;
  /** The same for the events one peer sent. */
  gap_buffer_per_peer_max_bytes?: number;
  /** Fragments of large events held for all peers, counted in memory (piece plus overheads). */
  reassembly_max_bytes?: number;
  /** The same for one peer's fragments. */
  reassembly_per_peer_max_bytes?: number;
  /** Origins one peer's claims (vv, entries, answers) are remembered for; more are dropped and counted. */
  claims_per_peer_max?: number;
  /** Origins claims are remembered for, all peers together. */
  origins_max?: number;
  /** Peers remembered as sources of one origin (the best ones). */
  claimants_per_origin_max?: number;
  /** Origins of a peer's pull list remembered (only ones this replica holds). */
  pulls_per_peer_max?: number;
  /** Bytes of repair answers sent to one requester per second (a token bucket), and the most banked. */
  answer_rate_per_requester_bytes_per_s?: number;
  answer_burst_per_requester_bytes?: number;
  /** Events answered to a requester are not answered to it again for this long (a replayed or repeated request). */
  answer_repeat_ms?: number;
  /** Record bytes of other origins' events (synced events) the log may hold; beyond it they are dropped (peer_quota). */
  peer_events_max_bytes?: number;
  /** Parked out-of-order events and half-reassembled ones older than this are dropped. */
  gap_hold_ms?: number;
  /** Most own-event bytes pushed live per call (the rest follows on the next call). */
  push_burst_bytes?: number;
  /** Most peers tracked; messages from further unknown ids are dropped. */
  peers_max?: number;
  /** Largest batch handed to log.accept_checked at once. */
  accept_batch_max_bytes?: number;
  on_warning?: (message: string, details: Record<string, unknown>) => void;
  /**
   * A peer's claim on an origin rose (its durable vv, a vv entry, events it
   * sent): retention's acknowledgements (acks.ts) may have advanced. Called
   * synchronously, often: keep it cheap (the node rate-limits log.maintain).
   */
  on_claim_raised?: (peer: string, origin: string, seq: number) => void;
}

export const sync_defaults = {
  prefix: prefix_default,
  max_packet_bytes: 128 * 1024,
  window_bytes: 4 * 1024 * 1024,
  want_timeout_ms: 10_000,
  retry_backoff_base_ms: 1_000,
  retry_backoff_max_ms: 30_000,
  vv_interval_ms: 200,
  vv_ms_per_origin: 1,
  vv_refresh_ms: 15_000,
  announce_min_interval_ms: 5_000,
  want_deadline_ms: 60_000,
  peer_cooldown_ms: 60_000,
  gap_buffer_max_bytes: 8 * 1024 * 1024,
  gap_buffer_per_peer_max_bytes: 2 * 1024 * 1024,
  reassembly_max_bytes: 36 * 1024 * 1024,
  reassembly_per_peer_max_bytes: 18 * 1024 * 1024,
  claims_per_peer_max: 10_000,
  origins_max: 20_000,
  claimants_per_origin_max: 4,
  pulls_per_peer_max: 64,
  answer_rate_per_requester_bytes_per_s: 4 * 1024 * 1024,
  answer_burst_per_requester_bytes: 8 * 1024 * 1024,
  answer_repeat_ms: 500,
  peer_events_max_bytes: Number.POSITIVE_INFINITY,
  gap_hold_ms: 60_000,
  push_burst_bytes: 1024 * 1024,
  peers_max: 10_000,
  accept_batch_max_bytes: 1024 * 1024,
} as const;

/**
 * What memory costs beyond the bytes themselves, measured with Bun 1.4.5 on
 * x64 (bun:jsc heapStats and RSS after a full GC, 100 000-200 000 entries
 * each): a parked 48-byte frame (a Uint8Array copy, its record and two map
 * entries) took 226 B of heap and 304 B of RSS, so 256 B over the frame (a
 * full 8 MiB gap buffer of such frames, 27 594 entries, took 7.9 MB of
 * heap: test/sync/hostile_fleet.test.ts); a 1 KiB fragment copy in a map
 * took 1 245 B of RSS, about 220 B over; a reassembly's record, its empty
 * pieces map, key and map entry took 259 B of heap and 394 B of RSS. The
 * buffers count these per entry, so their limits are real memory.
 */
export const gap_entry_overhead_bytes = 256;
export const reassembly_piece_overhead_bytes = 256;
export const reassembly_overhead_bytes = 512;
/** Events being reassembled at once from one peer, and from all. */
export const reassemblies_per_peer_max = 4;
export const reassemblies_max = 64;

/** Idle outgoing buffers kept for reuse (at most 2 MiB at 128 KiB packets: a steady stream needs few, a device's idle memory stays small). */
export const message_pool_keep_max = 16;

/**
 * Room kept in front of every pooled message for the transport's packet
 * header (Outbound.header_room_bytes): a PUBLISH header is the topic plus at
 * most 10 bytes.
 */
export const header_room_bytes = 256;

/** Kept free in every message for the topic, the MQTT fixed and variable header and the CBOR envelope. */
export const envelope_reserve_bytes = 512;
/** The smallest max_packet_bytes accepted. */
export const packet_min_bytes = 4096;
/** What an outgoing message may add to its topic and payload (MQTT fixed header, lengths, packet id): the check that it fits max_packet_bytes counts this much. */
export const publish_overhead_bytes = 16;

/** ReplicatorOptions with defaults applied and checked: what the sync files read. */
export interface SyncSettings {
  log: ReplicaLog;
  prefix: string;
  /** Origins pulled from peers (never this replica's own); null for all. */
  pull_set: Set<string> | null;
  /** Replicas followed as sources (never this one); null for all. */
  watch_set: Set<string> | null;
  validate: SyncValidator | null;
  max_packet_bytes: number;
  /** At least max_packet_bytes, so a request always lets one message through. */
  window_bytes: number;
  want_timeout_ms: number;
  want_deadline_ms: number;
  peer_cooldown_ms: number;
  retry_backoff_base_ms: number;
  retry_backoff_max_ms: number;
  vv_interval_ms: number;
  vv_ms_per_origin: number;
  vv_refresh_ms: number;
  announce_to_new_peers: boolean;
  announce_min_interval_ms: number;
  gap_buffer_max_bytes: number;
  gap_buffer_per_peer_max_bytes: number;
  reassembly_max_bytes: number;
  reassembly_per_peer_max_bytes: number;
  claims_per_peer_max: number;
  origins_max: number;
  claimants_per_origin_max: number;
  pulls_per_peer_max: number;
  answer_rate_per_requester_bytes_per_s: number;
  answer_burst_per_requester_bytes: number;
  answer_repeat_ms: number;
  peer_events_max_bytes: number;
  gap_hold_ms: number;
  push_burst_bytes: number;
  peers_max: number;
  accept_batch_max_bytes: number;
  /**
   * Most vv entries one message carries (a published vv, an answer's
   * `held`), leaving twice envelope_reserve_bytes for everything else in it.
   */
  vv_entries_per_message_max: number;
  on_warning: (message: string, details: Record<string, unknown>) => void;
  on_claim_raised: (peer: string, origin: string, seq: number) => void;
}

/** Applies the defaults and refuses options sync cannot work with (BAD_ARGUMENT). */
export function resolve_sync_options(options: ReplicatorOptions): SyncSettings {
  const d = sync_defaults;
  const id = options.log.id;
  const prefix = options.prefix ?? d.prefix;
  check_prefix(prefix);
  const pull = options.pull ?? "*";
  const pull_set = pull === "*" ? null : id_set(pull, "replication.pull");
  const watch = options.watch ?? (pull === "*" ? "*" : pull);
  const watch_set = watch === "*" ? null : id_set(watch, "replication.watch");
  pull_set?.delete(id);
  watch_set?.delete(id);
  const max_packet_bytes = options.max_packet_bytes ?? d.max_packet_bytes;
  if (!Number.isSafeInteger(max_packet_bytes) || max_packet_bytes < packet_min_bytes) {
    throw new InterlogError("BAD_ARGUMENT", `max packet size ${max_packet_bytes} bytes is too small; use at least ${packet_min_bytes} bytes`);
  }
  const limits = resolve_sync_limits({ ...options, window_bytes: Math.max(options.window_bytes ?? d.window_bytes, max_packet_bytes) });
  const settings: SyncSettings = {
    ...limits,
    log: options.log,
    prefix,
    pull_set,
    watch_set,
    validate: options.validate ?? null,
    max_packet_bytes,
    retry_backoff_base_ms: options.retry_backoff_base_ms ?? d.retry_backoff_base_ms,
    retry_backoff_max_ms: options.retry_backoff_max_ms ?? d.retry_backoff_max_ms,
    vv_interval_ms: options.vv_interval_ms ?? d.vv_interval_ms,
    vv_ms_per_origin: options.vv_ms_per_origin ?? d.vv_ms_per_origin,
    vv_refresh_ms: options.vv_refresh_ms ?? d.vv_refresh_ms,
    announce_to_new_peers: options.announce_to_new_peers ?? false,
    announce_min_interval_ms: options.announce_min_interval_ms ?? d.announce_min_interval_ms,
    gap_hold_ms: options.gap_hold_ms ?? d.gap_hold_ms,
    push_burst_bytes: options.push_burst_bytes ?? d.push_burst_bytes,
    accept_batch_max_bytes: options.accept_batch_max_bytes ?? d.accept_batch_max_bytes,
    vv_entries_per_message_max: Math.floor((max_packet_bytes - 2 * envelope_reserve_bytes) / vv_entry_bytes),
    on_warning: options.on_warning ?? (() => {}),
    on_claim_raised: options.on_claim_raised ?? (() => {}),
  };
  check_limits(settings);
  return settings;
}

/** The limits and what they are checked against (SyncSettings has them all). */
export type SyncLimits = Pick<
  SyncSettings,
  | "claims_per_peer_max"
  | "origins_max"
  | "claimants_per_origin_max"
  | "pulls_per_peer_max"
  | "peers_max"
  | "want_timeout_ms"
  | "want_deadline_ms"
  | "peer_cooldown_ms"
  | "gap_buffer_max_bytes"
  | "gap_buffer_per_peer_max_bytes"
  | "reassembly_max_bytes"
  | "reassembly_per_peer_max_bytes"
  | "answer_rate_per_requester_bytes_per_s"
  | "answer_burst_per_requester_bytes"
  | "answer_repeat_ms"
  | "peer_events_max_bytes"
  | "window_bytes"
>;

/** The reassembly memory one peer needs for the largest event, fragmented at the smallest packet (pieces and their overheads). */
export const largest_reassembly_bytes =
  reassembly_overhead_bytes + event_region_max_bytes + Math.ceil(event_region_max_bytes / (packet_min_bytes - envelope_reserve_bytes)) * reassembly_piece_overhead_bytes;

/**
 * How the limits relate; each problem names the option it is about. Each
 * is a positive whole number in its unit; the totals leave room for two
 * peers' shares, so one peer alone can never crowd another out of the gap
 * buffer, the reassembler or the origins table; one peer may reassemble the
 * largest event fragmented at the smallest packet; a request's absolute
 * deadline is at least its idle timeout; a requester's burst lets a whole
 * window through. Config files are checked with this too (schema.ts).
 */
export function sync_limit_problems(s: SyncLimits): { key: keyof SyncLimits; message: string }[] {
  const problems: { key: keyof SyncLimits; message: string }[] = [];
  const require = (ok: boolean, key: keyof SyncLimits, message: string) => {
    if (!ok) problems.push({ key, message });
  };
  const counts = ["claims_per_peer_max", "origins_max", "claimants_per_origin_max", "pulls_per_peer_max", "peers_max"] as const;
  const amounts = [
    "want_timeout_ms",
    "want_deadline_ms",
    "peer_cooldown_ms",
    "gap_buffer_max_bytes",
    "gap_buffer_per_peer_max_bytes",
    "reassembly_max_bytes",
    "reassembly_per_peer_max_bytes",
    "answer_burst_per_requester_bytes",
    "answer_repeat_ms",
    "peer_events_max_bytes",
  ] as const;
  for (const key of counts) require(Number.isSafeInteger(s[key]) && s[key] >= 1, key, `expected a whole number of at least 1, got ${s[key]}`);
  for (const key of amounts) require(s[key] >= 0, key, `expected a size or duration of at least 0, got ${s[key]}`);
  require(s.answer_rate_per_requester_bytes_per_s > 0, "answer_rate_per_requester_bytes_per_s", "expected a rate above 0");
  require(
    s.origins_max >= 2 * s.claims_per_peer_max,
    "origins_max",
    `expected at least twice claims_per_peer_max (${s.claims_per_peer_max}), so one peer cannot fill the origins table; got ${s.origins_max}`,
  );
  require(
    s.gap_buffer_max_bytes >= 2 * s.gap_buffer_per_peer_max_bytes,
    "gap_buffer_max_bytes",
    `expected at least twice the per-peer share (${s.gap_buffer_per_peer_max_bytes} bytes), so one peer cannot fill it; got ${s.gap_buffer_max_bytes}`,
  );
  require(
    s.reassembly_per_peer_max_bytes >= largest_reassembly_bytes,
    "reassembly_per_peer_max_bytes",
    `expected at least ${largest_reassembly_bytes} bytes (the largest event in fragments, counted with their overhead); got ${s.reassembly_per_peer_max_bytes}`,
  );
  require(
    s.reassembly_max_bytes >= 2 * s.reassembly_per_peer_max_bytes,
    "reassembly_max_bytes",
    `expected at least twice the per-peer share (${s.reassembly_per_peer_max_bytes} bytes), so one peer cannot crowd out another's; got ${s.reassembly_max_bytes}`,
  );
  require(s.want_deadline_ms >= s.want_timeout_ms, "want_deadline_ms", `expected at least want_timeout (${s.want_timeout_ms} ms); got ${s.want_deadline_ms}`);
  require(
    s.answer_burst_per_requester_bytes >= s.window_bytes,
    "answer_burst_per_requester_bytes",
    `expected at least the request window (${s.window_bytes} bytes), so a whole window can be answered at once; got ${s.answer_burst_per_requester_bytes}`,
  );
  return problems;
}

/** The limits with their defaults applied (not yet checked: see sync_limit_problems). */
export function resolve_sync_limits(options: Partial<Omit<ReplicatorOptions, "log">>): SyncLimits {
  const d = sync_defaults;
  const gap_buffer_max_bytes = options.gap_buffer_max_bytes ?? d.gap_buffer_max_bytes;
  return {
    window_bytes: options.window_bytes ?? d.window_bytes,
    want_timeout_ms: options.want_timeout_ms ?? d.want_timeout_ms,
    want_deadline_ms: options.want_deadline_ms ?? d.want_deadline_ms,
    peer_cooldown_ms: options.peer_cooldown_ms ?? d.peer_cooldown_ms,
    gap_buffer_max_bytes,
    // Half the total when only a smaller total is given, so the pair stays consistent.
    gap_buffer_per_peer_max_bytes: options.gap_buffer_per_peer_max_bytes ?? Math.min(d.gap_buffer_per_peer_max_bytes, Math.floor(gap_buffer_max_bytes / 2)),
    reassembly_max_bytes: options.reassembly_max_bytes ?? d.reassembly_max_bytes,
    reassembly_per_peer_max_bytes: options.reassembly_per_peer_max_bytes ?? d.reassembly_per_peer_max_bytes,
    claims_per_peer_max: options.claims_per_peer_max ?? d.claims_per_peer_max,
    origins_max: options.origins_max ?? d.origins_max,
    claimants_per_origin_max: options.claimants_per_origin_max ?? d.claimants_per_origin_max,
    pulls_per_peer_max: options.pulls_per_peer_max ?? d.pulls_per_peer_max,
    answer_rate_per_requester_bytes_per_s: options.answer_rate_per_requester_bytes_per_s ?? d.answer_rate_per_requester_bytes_per_s,
    answer_burst_per_requester_bytes: options.answer_burst_per_requester_bytes ?? d.answer_burst_per_requester_bytes,
    answer_repeat_ms: options.answer_repeat_ms ?? d.answer_repeat_ms,
    peer_events_max_bytes: options.peer_events_max_bytes ?? d.peer_events_max_bytes,
    peers_max: options.peers_max ?? d.peers_max,
  };
}

function check_limits(s: SyncSettings): void {
  const problems = sync_limit_problems(s);
  if (problems.length > 0) throw new InterlogError("BAD_ARGUMENT", `sync limits: ${problems.map((p) => `${p.key}: ${p.message}`).join("; ")}`);
}

function id_set(ids: readonly string[], what: string): Set<string> {
  for (const id of ids) {
    try {
      assert_origin(id);
    } catch {
      throw new InterlogError("BAD_ARGUMENT", `${what}: "${id}" is not a replica id; expected 16 lowercase hex digits`);
    }
  }
  return new Set(ids);
}
