import { assert } from "../lib/assert.ts";
import { type Clock, type Timers, system_clock, system_timers } from "../lib/clock.ts";
import { type FileIO, node_file_io } from "./file_io.ts";
import type { Signer } from "./signer.ts";
import { frame_header_bytes, payload_max_bytes, proof_bytes } from "./frame.ts";
import { bad_argument } from "./log_errors.ts";
import { type RetentionOptions, retention_policies } from "./retention.ts";

/**
 * The log's options, limits and defaults in one place (design.md section 2),
 * and the check that turns LogOptions into ResolvedLogOptions.
 */

export type SyncMode = "always" | "interval" | "never";
export const sync_modes: readonly SyncMode[] = ["always", "interval", "never"];

export const segment_size_default_bytes = 64 * 1024 * 1024;
export const segment_size_min_bytes = 64 * 1024;
/**
 * The smallest segment a config may set (the API allows segment_size_min_bytes,
 * for tests): a replica takes other origins' events in whole signed ranges,
 * which one segment must hold. A range of ordinary events takes up to
 * range_seal_bytes plus one staged frame (about 352 KiB); one of the largest
 * single event needs a segment its size, as before signatures.
 */
export const segment_size_config_min_bytes = 1024 * 1024;
/** A segment is mapped whole, and positions in it are plain numbers: 4 GiB keeps both far from any limit. */
export const segment_size_max_bytes = 4 * 1024 * 1024 * 1024;
/** Segments are mapped and written in whole pages. */
export const segment_size_align_bytes = 4096;
export const sync_interval_default_ms = 10;
/** Longer intervals protect little, and timers cannot wait beyond 2^31 ms (Bun then fires every millisecond). */
export const sync_interval_max_ms = 60 * 60 * 1000;
/** After a failed segment creation (disk full), appends fail fast this long before the log tries again. */
export const segment_retry_interval_default_ms = 1000;
/** fsyncs run on the JS thread while they average below this (blocking it that long is harmless); else in the thread pool. */
export const inline_fsync_max_ms = 1;
/** Frames are assembled here and written with one pwrite (mmap writes + fdatasync measured 4-5x slower; README "Storage"). */
export const staging_bytes = 256 * 1024;
/**
 * An origin ends its open range once it holds this many bytes of frames (at
 * the first batch end past it, or before the next frame inside a big batch;
 * and at every flush before): ranges then fit whole in one default-sized
 * MQTT message (128 KiB; encoded events take fewer bytes than their frames),
 * and a signature's cost (sign 15 us, verify 45 us) is spread over about 330
 * events of 256 B.
 */
export const range_seal_bytes = 96 * 1024;
/**
 * What an own batch of `frames_bytes` may take in a segment with its proofs:
 * the open range's, one per range_seal_bytes, one per staging flush inside
 * it (between two flushes the buffer took more than half its size), and its
 * end's.
 */
export function own_batch_room_bytes(frames_bytes: number): number {
  return frames_bytes + (Math.ceil(frames_bytes / range_seal_bytes) + Math.ceil(frames_bytes / (staging_bytes / 2)) + 3) * proof_bytes;
}
/** The most bytes of frames one signed range takes: range_seal_bytes, then one frame of the largest payload. */
export const range_bytes_max = range_seal_bytes + payload_max_bytes + frame_header_bytes + proof_bytes + 8;
/** Committed batches the durable vv may lag behind before it catches up on its own. */
export const durable_vv_pending_max = 4096;
/** fsync latencies kept for the metrics histogram until the caller drains them. */
export const fsync_latencies_max = 10_000;

assert(segment_size_min_bytes % segment_size_align_bytes === 0, "the smallest segment is whole pages");
assert(staging_bytes % segment_size_align_bytes === 0, "staging flushes whole pages of frames when full of small ones");
assert(segment_size_default_bytes >= segment_size_min_bytes, "the default segment size is allowed");

export interface LogOptions {
  dir: string;
  /** Human name stored in replica.json when the directory is created. */
  name?: string;
  sync?: SyncMode;
  sync_interval_ms?: number;
  segment_size_bytes?: number;
  /** Open without the lock and without repairing anything: for read, status and verify next to a running replica. */
  read_only?: boolean;
  /** Create the data directory when it does not exist (default true unless read_only). */
  create?: boolean;
  /** After a failed segment creation (disk full), how long appends fail fast before trying again. */
  segment_retry_interval_ms?: number;
  io?: FileIO;
  clock?: Clock;
  timers?: Timers;
  fill_random?: (bytes: Uint8Array) => void;
  /**
   * This replica's key from outside the data directory (a browser tab's
   * WebCrypto key): replica.key is then neither read nor written, and
   * replica.json must name the signer's id and public key.
   */
  signer?: Signer;
  /** The only origins (replica ids or public keys, hex) whose events this log accepts from others; unset = trust on first use. */
  trust_replicas?: readonly string[] | null;
  /** Called with recovery reports and background problems a technician should see. */
  on_warning?: (message: string, details: Record<string, unknown>) => void;
  /** The disk budget and what may be pruned to keep it (retention.ts); unset: the log only grows. */
  retention?: RetentionOptions | null;
}

export type Warn = (message: string, details: Record<string, unknown>) => void;

/** LogOptions with every default applied and every value checked. */
export interface ResolvedLogOptions {
  dir: string;
  name: string;
  sync: SyncMode;
  sync_interval_ms: number;
  segment_size_bytes: number;
  read_only: boolean;
  create: boolean;
  segment_retry_interval_ms: number;
  io: FileIO;
  clock: Clock;
  timers: Timers;
  fill_random: ((bytes: Uint8Array) => void) | undefined;
  signer: Signer | null;
  trust_replicas: readonly string[] | null;
  on_warning: Warn;
  retention: RetentionOptions | null;
}

export function resolve_log_options(options: LogOptions): ResolvedLogOptions {
  const segment_size_bytes = options.segment_size_bytes ?? segment_size_default_bytes;
  if (
    !Number.isInteger(segment_size_bytes) ||
    segment_size_bytes < segment_size_min_bytes ||
    segment_size_bytes > segment_size_max_bytes ||
    segment_size_bytes % segment_size_align_bytes !== 0
  ) {
    throw bad_argument(
      `segment size ${segment_size_bytes} bytes is invalid; use a multiple of ${segment_size_align_bytes} from ${segment_size_min_bytes} to ${segment_size_max_bytes} bytes`,
    );
  }
  if (options.sync !== undefined && !sync_modes.includes(options.sync)) {
    throw bad_argument(`sync mode "${options.sync}" is invalid; use always, interval or never`);
  }
  const sync_interval_ms = options.sync_interval_ms ?? sync_interval_default_ms;
  if (options.sync === "interval" && !(sync_interval_ms > 0 && sync_interval_ms <= sync_interval_max_ms)) {
    throw bad_argument(`sync interval ${sync_interval_ms} ms is invalid; use a positive number of milliseconds up to ${sync_interval_max_ms}`);
  }
  if (options.sync === "never" && options.signer?.asynchronous) {
    throw bad_argument(`sync mode "never" is not available to a replica whose key signs asynchronously (a browser's); use always or interval`);
  }
  const read_only = options.read_only ?? false;
  return {
    dir: options.dir,
    name: options.name ?? "",
    sync: options.sync ?? "always",
    sync_interval_ms,
    segment_size_bytes,
    read_only,
    create: options.create ?? !read_only,
    segment_retry_interval_ms: options.segment_retry_interval_ms ?? segment_retry_interval_default_ms,
    io: options.io ?? node_file_io,
    clock: options.clock ?? system_clock,
    timers: with_soon(options.timers ?? system_timers),
    fill_random: options.fill_random,
    signer: options.signer ?? null,
    trust_replicas: options.trust_replicas ?? null,
    on_warning: options.on_warning ?? (() => {}),
    retention: check_retention(options.retention ?? null, segment_size_bytes),
  };
}

/** A budget must hold the active segment, one sealed one and the spare, or nothing could ever be pruned. */
function check_retention(retention: RetentionOptions | null, segment_size_bytes: number): RetentionOptions | null {
  if (retention === null) return null;
  const min = retention_segments_min * segment_size_bytes;
  if (!Number.isSafeInteger(retention.max_bytes) || retention.max_bytes < min) {
    throw bad_argument(`retention max_bytes ${retention.max_bytes} is too small; with ${segment_size_bytes}-byte segments it must be at least ${min} (${retention_segments_min} segments)`);
  }
  if (!retention_policies.includes(retention.policy)) throw bad_argument(`retention policy "${retention.policy}" is invalid; use ${retention_policies.join(", ")}`);
  if (!Number.isSafeInteger(retention.reserve_own_bytes) || retention.reserve_own_bytes < 0 || retention.reserve_own_bytes > retention.max_bytes) {
    throw bad_argument(`retention reserve_own ${retention.reserve_own_bytes} must lie between 0 and max_bytes ${retention.max_bytes}`);
  }
  return retention;
}

/** Segments a budget holds at least: the active one, one that can be pruned, and the spare. */
export const retention_segments_min = 3;

/** Timers from an embedder written before `soon` existed get setImmediate for it, so group commit still runs. */
function with_soon(timers: Timers): Timers {
  if (typeof (timers as Partial<Timers>).soon === "function") return timers;
  return { every: (interval_ms, fn) => timers.every(interval_ms, fn), soon: (fn) => setImmediate(fn) };
}
