import { InterlogError } from "../lib/errors.ts";
import { assert_origin } from "../log/ids.ts";
import type { SyncValidator } from "./merge.ts";
import { vv_entry_bytes } from "./packed.ts";
import type { ReplicaLog } from "./replica_log.ts";
import { check_prefix, prefix_default } from "./topics.ts";

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
  /** A repair request with no answer for this long is abandoned and the peer backed off. */
  want_timeout_ms?: number;
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
  gap_buffer_max_bytes?: number;
  /** Parked out-of-order events older than this are dropped. */
  gap_hold_ms?: number;
  /** Most own-event bytes pushed live per call (the rest follows on the next call). */
  push_burst_bytes?: number;
  /** Most peers tracked; messages from further unknown ids are dropped. */
  peers_max?: number;
  /** Largest batch handed to log.accept_checked at once. */
  accept_batch_max_bytes?: number;
  on_warning?: (message: string, details: Record<string, unknown>) => void;
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
  gap_buffer_max_bytes: 4 * 1024 * 1024,
  gap_hold_ms: 60_000,
  push_burst_bytes: 1024 * 1024,
  peers_max: 10_000,
  accept_batch_max_bytes: 1024 * 1024,
} as const;

/** Idle outgoing buffers kept for reuse (at most 2 MiB at 128 KiB packets: a steady stream needs few, a device's idle memory stays small). */
export const message_pool_keep_max = 16;

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
  retry_backoff_base_ms: number;
  retry_backoff_max_ms: number;
  vv_interval_ms: number;
  vv_ms_per_origin: number;
  vv_refresh_ms: number;
  gap_buffer_max_bytes: number;
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
  return {
    log: options.log,
    prefix,
    pull_set,
    watch_set,
    validate: options.validate ?? null,
    max_packet_bytes,
    window_bytes: Math.max(options.window_bytes ?? d.window_bytes, max_packet_bytes),
    want_timeout_ms: options.want_timeout_ms ?? d.want_timeout_ms,
    retry_backoff_base_ms: options.retry_backoff_base_ms ?? d.retry_backoff_base_ms,
    retry_backoff_max_ms: options.retry_backoff_max_ms ?? d.retry_backoff_max_ms,
    vv_interval_ms: options.vv_interval_ms ?? d.vv_interval_ms,
    vv_ms_per_origin: options.vv_ms_per_origin ?? d.vv_ms_per_origin,
    vv_refresh_ms: options.vv_refresh_ms ?? d.vv_refresh_ms,
    gap_buffer_max_bytes: options.gap_buffer_max_bytes ?? d.gap_buffer_max_bytes,
    gap_hold_ms: options.gap_hold_ms ?? d.gap_hold_ms,
    push_burst_bytes: options.push_burst_bytes ?? d.push_burst_bytes,
    peers_max: options.peers_max ?? d.peers_max,
    accept_batch_max_bytes: options.accept_batch_max_bytes ?? d.accept_batch_max_bytes,
    vv_entries_per_message_max: Math.floor((max_packet_bytes - 2 * envelope_reserve_bytes) / vv_entry_bytes),
    on_warning: options.on_warning ?? (() => {}),
  };
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
