import path from "node:path";
import { assert } from "../lib/assert.ts";
import { type InterlogError, is_interlog_error } from "../lib/errors.ts";
import { CheckedEvents } from "./checked_events.ts";
import { DurableVv } from "./durable_vv.ts";
import { type FileHandle, type FileIO, mkdir_durable } from "./file_io.ts";
import {
  check_frame,
  flag_batch_end,
  flag_rejected,
  flag_signed,
  frame_crc,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_bytes,
  frame_time_ms,
  payload_max_bytes,
  proof_bytes,
  without_local_marks,
} from "./frame.ts";
import { KeyRing } from "./key_ring.ts";
import { keep_signed_ranges } from "./signed_ranges.ts";
import { FrameStager } from "./frame_stager.ts";
import { GroupCommit, type LogStats } from "./group_commit.ts";
import { assert_origin, format_event_id, origin_from_words, origin_hi, origin_lo } from "./ids.ts";
import {
  bad_argument,
  batch_too_large,
  data_dir_missing,
  log_closed,
  log_full_budget,
  payload_too_large,
  read_only as read_only_error,
  replica_missing,
  seq_gap,
} from "./log_errors.ts";
import { LogEvent } from "./log_event.ts";
import { type LogOptions, own_batch_room_bytes, type ResolvedLogOptions, resolve_log_options, type SyncMode } from "./log_options.ts";
import { type PrunedState, type PrunedTotals, write_pruned_state } from "./pruned_state.ts";
import { type RecoveryReport, recover } from "./recovery.ts";
import { type AckBlocker, type AckSource, describe_blocker, no_acks, plan_prune, type RetentionPolicy, segment_blocker } from "./retention.ts";
import { bytes_of_hex } from "./key_id.ts";
import { create_replica, read_replica, refuse_old_format, type Replica } from "./replica.ts";
import { Segment } from "./segment.ts";
import { SegmentFiles, segments_dir_name, write_failure_marker } from "./segment_files.ts";
import { summary_file_name } from "./segment.ts";
import { type FrameVisitor, SegmentList } from "./segment_list.ts";
import { type VerifyReport, verify_segments, verify_unrepaired } from "./verify.ts";

export { type LogOptions, type SyncMode, segment_size_default_bytes, segment_size_min_bytes, sync_interval_default_ms, sync_modes } from "./log_options.ts";
export type { LogStats } from "./group_commit.ts";
export type { RecoveryReport } from "./recovery.ts";
export type { AckSource, RetentionOptions, RetentionPolicy } from "./retention.ts";
export type { PrunedTotals } from "./pruned_state.ts";

/** What retention did and where the budget stands (status, metrics, the prune command). */
export interface RetentionStatus {
  policy: RetentionPolicy | null;
  /** null without a budget. */
  max_bytes: number | null;
  /** Segment files, the spare included. */
  used_bytes: number;
  reserve_own_bytes: number;
  /** The first position held (events before it were pruned). */
  first_pos: number;
  pruned: PrunedTotals;
  /** The origin's time of the oldest event held, or null when none is. */
  oldest_held_time_ms: number | null;
  /** Why pruning is held back while the budget needs room, or null. */
  blocked: string | null;
  /** Per upstream: record bytes of the segments it does not hold wholly. */
  unacked_bytes_by_upstream: Record<string, number>;
}

/** One segment a prune removed or would remove. */
export interface PrunedSegment {
  file: string;
  first_pos: number;
  end_pos: number;
  events: number;
  record_bytes: number;
  acked: boolean;
}

export interface PruneResult {
  segments: PrunedSegment[];
  /** When the plan stopped at a segment that is not acknowledged (drop-acked). */
  blocked: string | null;
  dry_run: boolean;
}

/**
 * The durable local log: one replica's append-only sequence of events in
 * preallocated segment files (design.md section 2). This file holds open,
 * close, the public API and rotation; the jobs behind it have files of their
 * own, each owning its state:
 *
 * - frame_stager.ts: the staging buffer and where the active segment's data ends;
 * - group_commit.ts: flushed and durable positions, fsync cycles, waiters, failure;
 * - durable_vv.ts: the version vector of durable batches (what sync may publish);
 * - segment_list.ts: the segments and lookups by position and by origin;
 * - segment_files.ts: making segment files, the spare, summaries, LOG_FULL;
 * - recovery.ts: what an open trusts, scans and repairs;
 * - log_options.ts and log_errors.ts: options, limits, defaults, and errors.
 *
 * Here: the active segment's handle, the version vector of everything held,
 * and next_pos.
 */


/** Events events_after reads per pass over the index (each pass locates its first event anew). */
const events_after_chunk_max = 256;

export class Log {
  readonly dir: string;
  readonly id: string;
  readonly name: string;
  readonly created: string;
  /** The Ed25519 public key the id stands for, 64 hex digits. */
  readonly public_key: string;
  readonly sync_mode: SyncMode;
  readonly read_only: boolean;
  readonly recovery: RecoveryReport;
  /** Public keys of the origins seen, pinned on first use; the allowlist when `trust_replicas` is set. */
  readonly keys: KeyRing;
  readonly stats: LogStats = { appends: 0, appended_events: 0, appended_bytes: 0, fsyncs: 0, fsync_seconds_total: 0, fsync_latencies_s: [] };

  private readonly options: ResolvedLogOptions;
  private readonly io: FileIO;
  private readonly lock: { release(): void } | null;
  private readonly origin_hi: number;
  private readonly origin_lo: number;
  private readonly files: SegmentFiles;
  private readonly stager: FrameStager;
  private readonly commit: GroupCommit;
  private readonly durable_vv_state: DurableVv;

  private readonly segments: SegmentList;
  private active_handle: FileHandle | null;
  /** origin -> highest seq held (written, maybe not yet durable). */
  private readonly vv_map: Map<string, number>;
  /** Events written (visible); the next event gets this pos. */
  private next_pos: number;
  /** Scratch of accept_checked, reused: origin -> next seq, and which events are already held. */
  private readonly accept_next = new Map<string, number>();
  private readonly accept_skip: number[] = [];
  private readonly seal_jobs = new Set<Promise<void>>();
  /** Writing the failure marker (see segment_files.ts), once the log has failed. */
  private failure_recorded: Promise<void> = Promise.resolve();
  private closing = false;
  private closed = false;
  /** What retention pruned: the first position held and per origin the highest seq pruned. */
  private pruned_state: PrunedState;
  private acks: AckSource = no_acks;
  /** The budget's job (pruning or making the spare), one at a time. */
  private maintaining: Promise<void> | null = null;
  private maintain_again = false;
  private blocked: string | null = null;
  /** Prunes run one at a time, each planned inside its turn (the budget's job and the prune command share it). */
  private prune_turn: Promise<unknown> = Promise.resolve();

  private constructor(init: {
    options: ResolvedLogOptions;
    replica: Replica;
    lock: { release(): void } | null;
    segments: Segment[];
    vv: Map<string, number>;
    recovery: RecoveryReport;
    active_handle: FileHandle | null;
    pruned: PrunedState;
    epoch: number;
  }) {
    const { options } = init;
    this.options = options;
    this.dir = options.dir;
    this.io = options.io;
    const info = init.replica.info;
    this.id = info.id;
    this.name = info.name;
    this.created = info.created;
    this.public_key = info.public_key;
    this.keys = new KeyRing(options.trust_replicas);
    this.keys.pin(this.id, bytes_of_hex(info.public_key));
    this.origin_hi = origin_hi(this.id);
    this.origin_lo = origin_lo(this.id);
    this.sync_mode = options.sync;
    this.read_only = options.read_only;
    this.lock = init.lock;
    this.segments = new SegmentList(init.segments, (pos_end) => this.commit.flush_if_needed(pos_end));
    this.active_handle = init.active_handle;
    this.vv_map = init.vv;
    this.recovery = init.recovery;
    this.pruned_state = init.pruned;
    this.next_pos = this.segments.end_pos;
    const segments_dir = path.join(options.dir, segments_dir_name);
    this.files = new SegmentFiles({ ...options, segments_dir });
    this.stager = new FrameStager(
      { handle: () => this.writable_handle(), wrote: (h) => this.commit.wrote(h), fail: (err) => this.commit.fail(err) },
      this.segments.active,
      init.replica.key,
      this.origin_hi,
      this.origin_lo,
      init.epoch,
    );
    this.commit = new GroupCommit({
      mode: options.sync,
      sync_interval_ms: options.sync_interval_ms,
      read_only: options.read_only,
      io: options.io,
      segments_dir,
      timers: options.timers,
      stats: this.stats,
      next_pos: this.next_pos,
      flush_staged: () => this.stager.flush(),
      settle_writes: () => this.stager.signatures_settled(),
      on_warning: options.on_warning,
      on_failed: (durable_pos, cause) => {
        this.failure_recorded = write_failure_marker(this.io, segments_dir, durable_pos, cause).catch((err: unknown) => {
          options.on_warning("could not record the failure for the next start; it may trust data the disk never took", { error: String(err) });
        });
      },
    });
    // Recovery made everything it kept durable.
    this.durable_vv_state = new DurableVv(this.vv_map, this.next_pos);
  }

  /** Opens (and on first use creates) the log in options.dir. */
  static async open(log_options: LogOptions): Promise<Log> {
    const options = resolve_log_options(log_options);
    const { io, dir, read_only } = options;
    if (!io.exists(dir)) {
      if (!options.create) throw data_dir_missing(dir);
      await mkdir_durable(io, dir);
    }
    // A directory this version cannot open is refused before anything (even the lock file) is added to it.
    refuse_old_format(io, dir);
    const lock = read_only ? null : io.lock(path.join(dir, "lock"));
    try {
      let replica = read_replica(io, dir, !read_only, options.signer);
      if (replica === null) {
        if (read_only || !options.create) throw replica_missing(dir);
        replica = await create_replica(io, dir, options.name, options.clock.now_ms(), options.fill_random, options.signer);
        // The directory may have been made by someone else just before (mkdir -p, systemd): its entry, and its
        // parents' entries, must be durable before any write is acknowledged. Once per log, so all the way up.
        for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) await io.sync_dir(path.dirname(d));
      }
      const segments_dir = path.join(dir, segments_dir_name);
      if (!read_only) await mkdir_durable(io, segments_dir);
      const opened = await recover(io, segments_dir, options.segment_size_bytes, read_only, options.on_warning, replica.info.id);
      const log = new Log({ options, replica, lock, ...opened });
      if (!read_only) void log.maintain();
      return log;
    } catch (err) {
      lock?.release();
      throw err;
    }
  }

  // ---------------------------------------------------------------- appends

  /** Appends one payload as a new event of this replica. Returns its seq. Durable once `durable()` resolves. */
  append(payload: Uint8Array): number {
    this.check_writable();
    this.check_payload(payload.length);
    this.reserve_own(frame_size_bytes(payload.length));
    const seq = (this.vv_map.get(this.id) ?? 0) + 1;
    this.stager.stage(this.segments.active, this.id, this.origin_hi, this.origin_lo, seq, this.options.clock.now_ms(), flag_batch_end, payload);
    this.vv_map.set(this.id, seq);
    this.committed(1, payload.length);
    this.note_durable_batch(this.id, seq);
    return seq;
  }

  /** Appends payloads as one atomic batch: after a crash all of them are there or none. Returns the first seq. */
  append_batch(payloads: readonly Uint8Array[]): number {
    this.check_writable();
    if (payloads.length === 0) throw bad_argument("a batch needs at least one payload");
    let bytes = 0;
    let payload_bytes = 0;
    for (const p of payloads) {
      bytes += frame_size_bytes(p.length);
      payload_bytes += p.length;
      this.check_payload(p.length);
    }
    this.reserve_own(bytes);
    const first = (this.vv_map.get(this.id) ?? 0) + 1;
    const time_ms = this.options.clock.now_ms();
    const last = payloads.length - 1;
    for (let i = 0; i <= last; i++) {
      this.stager.stage(this.segments.active, this.id, this.origin_hi, this.origin_lo, first + i, time_ms, i === last ? flag_batch_end : 0, payloads[i]);
    }
    this.vv_map.set(this.id, first + last);
    this.committed(payloads.length, payload_bytes);
    this.note_durable_batch(this.id, first + last);
    return first;
  }

  /** Appends and waits until durable under the sync mode; returns the ids `ORIGIN:SEQ`. */
  async write(payloads: Uint8Array | readonly Uint8Array[]): Promise<string[]> {
    const list = payloads instanceof Uint8Array ? [payloads] : payloads;
    const first = list.length === 1 ? this.append(list[0]) : this.append_batch(list);
    await this.durable();
    return list.map((_, i) => format_event_id(this.id, first + i));
  }

  /**
   * Appends other origins' events given as their frames, concatenated as
   * their origins wrote them (LogEvent.frame of another log, or a backup):
   * every frame's crc and every signed range's proof are checked against
   * the origin's key first; events already held are skipped, and only whole
   * verified ranges are appended. Returns what was appended and what was
   * refused, by reason.
   */
  accept_frames(region: Uint8Array): { appended: number; dropped: Record<string, number> } {
    this.check_writable();
    // Frames read from another log may carry its rejected marks: those are its own, not the origin's, so they go.
    region = without_local_marks(region);
    const events = new CheckedEvents();
    const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
    for (let at = 0; at < region.length; ) {
      const size = check_frame(region, view, at, region.length);
      if (size <= 0) throw bad_argument(`the frames are torn or corrupt at byte ${at}`);
      const origin = origin_from_words(frame_origin_hi(view, at), frame_origin_lo(view, at));
      if (origin === this.id) throw bad_argument(`the frames hold this replica's own event ${origin}:${frame_seq(view, at)}`);
      const len = frame_len(view, at);
      events.push(origin, frame_origin_hi(view, at), frame_origin_lo(view, at), frame_seq(view, at), frame_time_ms(view, at), frame_flags(view, at), frame_crc(view, at), region, at + frame_header_bytes, at + len);
      at += size;
    }
    const dropped: Record<string, number> = {};
    keep_signed_ranges(events, this.keys, (problem, n) => {
      dropped[problem] = (dropped[problem] ?? 0) + n;
    });
    // Skip what is held, and what does not continue the held chain (a gap): whole ranges only.
    const keep = new Uint8Array(events.count);
    const next = new Map<string, number>();
    let range_first = 0;
    for (let i = 0; i < events.count; i++) {
      if (i > 0 && (events.flags[i - 1] & flag_signed) !== 0) range_first = i;
      if ((events.flags[i] & flag_signed) === 0) continue;
      const origin = events.origin[i];
      const expected = next.get(origin) ?? this.held(origin) + 1;
      if (events.seq[range_first] > expected) {
        dropped.gap = (dropped.gap ?? 0) + i - range_first + 1;
        continue;
      }
      if (events.seq[i] < expected) continue;
      // Ranges of one origin meet only at their ends: one that straddles what is held was signed by another holder of the key.
      if (events.seq[range_first] < expected) {
        dropped.conflict = (dropped.conflict ?? 0) + i - range_first + 1;
        continue;
      }
      keep.fill(1, range_first, i + 1);
      next.set(origin, events.seq[i] + 1);
    }
    events.retain(keep);
    return { appended: events.count === 0 ? 0 : this.accept_checked(events), dropped };
  }

  /**
   * The merge step of sync for events whose frames the caller checked
   * (see CheckedEvents): like accept_batch, atomic and all-or-nothing on a
   * gap, but the origin's crc is written as received and payloads are copied
   * without making views. Frames are written as the origin wrote them, plus
   * this replica's rejected mark; the events of each origin must end with a
   * signed frame (whole signed ranges, checked by the caller), since
   * recovery keeps nothing past the last signed frame. Returns the number of
   * events appended; already-held ones are skipped.
   */
  accept_checked(events: CheckedEvents): number {
    this.check_writable();
    const next = this.accept_next;
    next.clear();
    let fresh = 0;
    let last_fresh = -1;
    let bytes = 0;
    let payload_bytes = 0;
    const skip = this.accept_skip;
    skip.length = 0;
    for (let i = 0; i < events.count; i++) {
      assert(events.origin[i] !== this.id, "own events are never accepted from peers");
      assert((events.flags[i] & ~(flag_batch_end | flag_signed | flag_rejected)) === 0, "incoming flags are batch-end, signed and rejected only");
      this.check_payload(events.end[i] - events.start[i] - ((events.flags[i] & flag_signed) !== 0 ? proof_bytes : 0));
      if (!this.take_seq(next, events.origin[i], events.seq[i])) {
        skip[i] = 1;
        continue;
      }
      skip[i] = 0;
      bytes += frame_size_bytes(events.end[i] - events.start[i]);
      payload_bytes += events.end[i] - events.start[i];
      fresh++;
      last_fresh = i;
    }
    if (fresh === 0) return 0;
    for (let i = last_fresh; i >= 0; i--) {
      if (skip[i] === 0 && events.seq[i] === (next.get(events.origin[i]) as number) - 1) {
        assert((events.flags[i] & flag_signed) !== 0, "accepted events of each origin end with a signed frame");
      }
    }
    this.stager.seal();
    this.reserve(bytes);
    for (let i = 0; i <= last_fresh; i++) {
      if (skip[i] === 1) continue;
      this.stager.stage_checked(this.segments.active, events, i, events.flags[i], events.crc[i]);
      this.vv_map.set(events.origin[i], events.seq[i]);
    }
    this.committed(fresh, payload_bytes);
    for (const [origin, next_seq] of next) this.note_durable_batch(origin, next_seq - 1);
    return fresh;
  }

  /**
   * Whether origin:seq is the next event to append in this batch (`next`
   * holds the batch's progress per origin): false for one already held, and
   * SEQ_GAP for one beyond the next. Records the step when true.
   */
  private take_seq(next: Map<string, number>, origin: string, seq: number): boolean {
    const expected = next.get(origin) ?? (this.vv_map.get(origin) ?? 0) + 1;
    if (seq < expected) return false;
    if (seq > expected) throw seq_gap(origin, seq, expected - 1);
    next.set(origin, seq + 1);
    return true;
  }

  /**
   * Resolves once every event before `pos` (default: all appended so far) is
   * durable under the sync mode: fsynced for always and interval, handed to
   * the OS for never.
   */
  durable(pos: number = this.next_pos): Promise<void> {
    return this.commit.durable(pos);
  }

  /**
   * Calls `listener` (soon, never inside an append) whenever durable_count
   * grew; sync pushes new events this way instead of polling. Returns the
   * function that removes it.
   */
  on_durable(listener: () => void): () => void {
    return this.commit.on_durable(listener);
  }

  // ---------------------------------------------------------------- reads

  /** Number of events in the log (the next pos). */
  get count(): number {
    return this.next_pos;
  }

  /** Events durable under the sync mode (see `durable`). */
  get durable_count(): number {
    return this.commit.durable_count;
  }

  /** Up to `limit` events from `from_pos` on, in transaction order, as zero-copy views. */
  read(from_pos: number, limit = 1000): LogEvent[] {
    const out: LogEvent[] = [];
    for (const event of this.iterate(from_pos)) {
      if (out.length >= limit) break;
      out.push(event);
    }
    return out;
  }

  /** Events from `from_pos` (or the first position held, when retention pruned the ones before) up to the current end, lazily. */
  iterate(from_pos = 0): Generator<LogEvent> {
    this.check_open();
    if (!Number.isSafeInteger(from_pos) || from_pos < 0) throw bad_argument(`position ${from_pos} is not a non-negative integer`);
    return this.segments.iterate(Math.max(from_pos, this.first_pos));
  }

  /** The event `origin:seq`, or null when this log does not hold it (see `is_pruned` for one retention removed). */
  get(origin: string, seq: number): LogEvent | null {
    this.check_open();
    assert_origin(origin);
    if (!Number.isSafeInteger(seq) || seq <= this.pruned_through(origin) || seq > (this.vv_map.get(origin) ?? 0)) return null;
    return this.segments.find(origin, seq);
  }

  /** The first position held: 0 unless retention pruned events before it. */
  get first_pos(): number {
    return this.pruned_state.first_pos;
  }

  /** The highest seq of `origin` that retention pruned (0 when none): those still count as held in the vv, but are not stored. */
  pruned_through(origin: string): number {
    return this.pruned_state.floor.get(origin) ?? 0;
  }

  /** Whether origin:seq was held and pruned. */
  is_pruned(origin: string, seq: number): boolean {
    return Number.isSafeInteger(seq) && seq >= 1 && seq <= this.pruned_through(origin);
  }

  /** Events of `origin` with seq > after_seq in seq order (what a peer that holds up to after_seq lacks), lazily. */
  *events_after(origin: string, after_seq: number): Generator<LogEvent> {
    let seq = after_seq;
    for (;;) {
      const chunk: LogEvent[] = [];
      this.scan_frames(origin, seq, (segment, offset, pos) => chunk.push(LogEvent.at(segment, offset, pos)) < events_after_chunk_max);
      if (chunk.length === 0) return;
      yield* chunk;
      seq = chunk[chunk.length - 1].seq;
    }
  }

  /**
   * Visits the frames of `origin` with seq > after_seq in seq order, in
   * place: visit(map, view, offset, pos) gets the segment mapping and the
   * frame's offset in it, and returns false to stop. Allocates nothing per
   * event (sync reads its backlog this way); the views are valid while the
   * log is open.
   */
  scan_origin(origin: string, after_seq: number, visit: (map: Uint8Array, view: DataView, offset: number, pos: number) => boolean): void {
    this.scan_frames(origin, after_seq, (segment, offset, pos) => visit(segment.map, segment.view, offset, pos));
  }

  /** Pruned events are not stored: the walk starts after them (callers that must know compare with pruned_through). */
  private scan_frames(origin: string, after_seq: number, visit: FrameVisitor): void {
    this.check_open();
    assert_origin(origin);
    const from = Math.max(after_seq, this.pruned_through(origin));
    if (from >= (this.vv_map.get(origin) ?? 0)) return;
    this.segments.visit_origin(origin, from, visit);
  }

  /**
   * The durable version vector: what is held minus events not yet durable
   * (positions from durable_count on). Only this may be published or
   * acknowledged, so a replica restarted after a crash never contradicts
   * what peers were told.
   */
  durable_vv(): Map<string, number> {
    this.check_open();
    this.durable_vv_state.catch_up(this.durable_count);
    return this.durable_vv_state.snapshot();
  }

  /** Highest seq of `origin` held durably (0 when none). */
  durable_held(origin: string): number {
    this.check_open();
    this.durable_vv_state.catch_up(this.durable_count);
    return this.durable_vv_state.get(origin);
  }

  /** The version vector: origin -> highest seq held. */
  vv(): Record<string, number> {
    return Object.fromEntries(this.vv_map);
  }

  /** Highest seq of `origin` held here (0 when none). */
  held(origin: string): number {
    return this.vv_map.get(origin) ?? 0;
  }

  get segment_count(): number {
    return this.segments.count;
  }

  /** Bytes of records written (without preallocated free space). */
  get bytes(): number {
    return this.segments.data_bytes;
  }

  /** Bytes the segment files take on disk (preallocated). */
  get disk_bytes(): number {
    return this.segments.file_bytes;
  }

  free_disk_bytes(): number | null {
    return this.io.free_bytes(this.dir);
  }

  /** Re-checks every record's crc, seq and epoch order, and every signed range's proof. */
  verify(): VerifyReport {
    this.check_open();
    // A key ring of its own: pins only by the id-key binding, so the check depends on nothing seen before.
    if (this.read_only) return verify_unrepaired(this.segments.all(), this.recovery, new KeyRing(), this.pruned_state.floor);
    this.commit.flush();
    return verify_segments(this.segments.all(), new KeyRing(), this.pruned_state.floor);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Flushes, fsyncs everything, waits for background work, releases the directory. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    // A spare being made is abandoned at once; the next open removes its temp file.
    const spare_stopped = this.files.stop();
    await this.maintaining;
    await this.prune_turn;
    try {
      // A clean shutdown is durable in every mode.
      await this.commit.close_durably(this.active_handle);
      if (!this.read_only && this.commit.failed === null) await Promise.all(this.seal_jobs);
      await spare_stopped;
      await this.failure_recorded;
    } finally {
      this.active_handle?.close();
      this.active_handle = null;
      this.closed = true;
      this.commit.stop();
      this.lock?.release();
    }
  }

  get is_closed(): boolean {
    return this.closed;
  }

  /** Set when a write or fsync failed: the log refuses writes until reopened. */
  get failed(): InterlogError | null {
    return this.commit.failed;
  }

  // ---------------------------------------------------------------- internals

  private check_open(): void {
    if (this.closed) throw log_closed();
  }

  private check_writable(): void {
    this.check_open();
    if (this.closing) throw log_closed("the log is closing");
    if (this.read_only) throw read_only_error();
    const failure = this.commit.failed;
    if (failure !== null) throw failure;
  }

  private check_payload(bytes: number): void {
    if (bytes > payload_max_bytes) throw payload_too_large(bytes, payload_max_bytes);
  }

  /** Bookkeeping after a whole batch was staged: it is now visible. */
  private committed(events: number, payload_bytes: number): void {
    this.next_pos += events;
    assert(this.next_pos === this.segments.end_pos, "next_pos matches the active segment's end");
    this.stats.appends++;
    this.stats.appended_events += events;
    this.stats.appended_bytes += payload_bytes;
    this.commit.committed(this.next_pos);
  }

  /** Notes that the batch just committed wrote origin up to seq (in the durable vv once durable). */
  private note_durable_batch(origin: string, seq: number): void {
    this.durable_vv_state.note_batch(this.next_pos, origin, seq, this.durable_count);
  }

  private writable_handle(): FileHandle {
    assert(this.active_handle !== null, "a writable log has an open handle on its active segment");
    return this.active_handle;
  }

  /** reserve() for an own batch of `bytes`, with room for the proofs that may be written with it. */
  private reserve_own(bytes: number): void {
    this.reserve(own_batch_room_bytes(bytes));
  }

  /** Makes room for `bytes` of frames in the active segment, rotating when needed. Writes nothing on failure. */
  private reserve(bytes: number): void {
    const active = this.segments.active;
    if (active.end_bytes + bytes <= active.size_bytes) return;
    if (bytes > this.options.segment_size_bytes) throw batch_too_large(bytes, this.options.segment_size_bytes);
    this.rotate();
  }

  /** Seals the active segment and continues in a fresh one. Throws LOG_FULL (changing nothing) when none can be made. */
  private rotate(): void {
    this.commit.flush();
    const first_pos = this.next_pos;
    const file = this.files.make_next(first_pos, () => this.check_may_grow());
    let handle: FileHandle;
    let map: Uint8Array;
    try {
      handle = this.io.open(file);
      map = this.io.map(file);
    } catch (err) {
      throw this.commit.fail(err);
    }
    const old = this.segments.active;
    const old_handle = this.writable_handle();
    old.sealed = true;
    const next = new Segment(first_pos, file, map);
    this.segments.push(next);
    this.active_handle = handle;
    this.stager.start_segment(next);
    this.commit.retire(old_handle);
    this.start_seal(old);
    void this.maintain();
  }

  /** Once a sealed segment is durable, persist its summary so the next open need not scan it. */
  private start_seal(segment: Segment): void {
    const run = (async () => {
      try {
        await this.commit.synced(segment.end_pos);
        await this.files.write_summary(segment);
        // Sealed and durable: what was read of it (sync publishes what it reads) need not stay resident. Older sealed
        // segments are let go again, so what catch-ups read from them since the last rotation does not pile up either.
        if (!this.closed) for (const sealed of this.segments.all()) if (sealed.sealed) this.io.release_mapped?.(sealed.map);
      } catch (err) {
        if (!is_interlog_error(err)) {
          this.options.on_warning("could not write a segment summary; the next start scans that segment instead", { error: String(err) });
        }
      }
    })();
    this.seal_jobs.add(run);
    void run.finally(() => this.seal_jobs.delete(run));
  }

  // ---------------------------------------------------------------- retention

  /** Where upstreams' acknowledgements come from (sync wires this); until then nothing is acknowledged. */
  set_acks(acks: AckSource): void {
    this.acks = acks;
  }

  /** Segment files on disk, the spare included: what the budget counts. */
  get used_bytes(): number {
    return this.segments.file_bytes + (this.files.spare_exists ? this.options.segment_size_bytes : 0);
  }

  /**
   * Throws LOG_FULL when a new segment file would break the budget (a
   * rotation without a spare). While something may be pruned, a rotation
   * may go one segment over: the background job is making room, and the
   * device must not stop recording meanwhile; maintain() brings it back.
   */
  private check_may_grow(): void {
    const retention = this.options.retention;
    if (retention === null) return;
    const used = this.used_bytes;
    const size = this.options.segment_size_bytes;
    if (used + size <= retention.max_bytes) return;
    void this.maintain();
    const why = this.blocked_now();
    if (why === null && used + size <= retention.max_bytes + size) return;
    throw log_full_budget(retention.max_bytes, used, why ?? "retention is making room; try again shortly");
  }

  private blocked_now(): string | null {
    const retention = this.options.retention;
    if (retention === null) return null;
    if (retention.policy === "reject") return "retention.policy is reject";
    const plan = plan_prune(this.prunable(), this.acks, retention.policy, 1);
    if (plan.blocker !== null) return describe_blocker(plan.blocker);
    return plan.segments.length === 0 ? "only the active segment is left" : null;
  }

  /** Sealed segments whose events are all durable and summarized, oldest first: what may be pruned. */
  private prunable(): Segment[] {
    const out: Segment[] = [];
    const durable = this.durable_count;
    for (const segment of this.segments.all()) {
      if (!segment.sealed || segment.end_pos > durable) break;
      out.push(segment);
    }
    return out;
  }

  /**
   * Keeps the budget: makes sure a spare is ready for the next rotation, from
   * a new file while the budget allows one, else by pruning the oldest
   * segment the policy lets go and recycling its file. Call it when acks
   * change; rotation calls it. Runs in the background, one at a time.
   */
  maintain(): Promise<void> {
    if (this.read_only || this.closed) return Promise.resolve();
    if (this.maintaining !== null) {
      this.maintain_again = true;
      return this.maintaining;
    }
    const run = async () => {
      do {
        this.maintain_again = false;
        await this.maintain_once();
      } while (this.maintain_again && !this.closing);
    };
    this.maintaining = run()
      .catch((err: unknown) => {
        if (!is_interlog_error(err)) this.options.on_warning("retention could not prune", { error: String(err) });
      })
      .finally(() => {
        this.maintaining = null;
      });
    return this.maintaining;
  }

  private async maintain_once(): Promise<void> {
    if (this.closing || this.commit.failed !== null) return;
    const retention = this.options.retention;
    const size = this.options.segment_size_bytes;
    if (retention === null) {
      this.files.prepare_spare();
      return;
    }
    // Over the budget (a rotation went one over, or the budget was lowered): prune without recycling.
    while (this.used_bytes > retention.max_bytes && !this.closing) {
      if (!(await this.prune_one(retention.policy, false))) return;
    }
    if (this.files.has_spare) {
      this.files.prepare_spare(() => false);
      this.blocked = null;
      return;
    }
    if (this.used_bytes + size <= retention.max_bytes) {
      this.files.prepare_spare(() => this.used_bytes + size <= retention.max_bytes);
      this.blocked = null;
      return;
    }
    await this.prune_one(retention.policy, true);
  }

  /** Prunes the oldest segment the policy lets go (its file becomes the spare when `recycle`); false, with `blocked` set, when none may go. */
  private prune_one(policy: RetentionPolicy, recycle: boolean): Promise<boolean> {
    return this.in_prune_turn(async () => {
      await Promise.all(this.seal_jobs);
      const plan = plan_prune(this.prunable(), this.acks, policy, 1);
      if (plan.segments.length === 0) {
        this.blocked = plan.blocker !== null ? describe_blocker(plan.blocker) : policy === "reject" ? "retention.policy is reject" : "only the active segment is left";
        return false;
      }
      this.blocked = null;
      await this.prune_segments(plan.segments.map((p) => p.segment), plan.segments.map((p) => p.acked), recycle);
      return true;
    });
  }

  private in_prune_turn<T>(job: () => Promise<T>): Promise<T> {
    const run = this.prune_turn.then(job, job);
    this.prune_turn = run.catch(() => {});
    return run;
  }

  /**
   * Prunes by the policy (retention's, or `policy`): under drop-acked every
   * acknowledged segment from the front; under drop-oldest as many as it
   * takes to get one segment under the budget. `dry_run` only says what
   * would go. The prune command calls this.
   */
  async prune(options: { policy?: RetentionPolicy; dry_run?: boolean } = {}): Promise<PruneResult> {
    // A dry run only reads: a read-only log (next to a stopped replica's lock) can answer it.
    if (options.dry_run === true) this.check_open();
    else this.check_writable();
    const policy = options.policy ?? this.options.retention?.policy ?? "drop-acked";
    return this.in_prune_turn(() => this.prune_in_turn(policy, options.dry_run === true));
  }

  private async prune_in_turn(policy: RetentionPolicy, dry_run: boolean): Promise<PruneResult> {
    if (dry_run) this.check_open();
    else this.check_writable();
    await Promise.all(this.seal_jobs);
    const prunable = this.prunable();
    let count = prunable.length;
    if (policy === "drop-oldest") {
      const max = this.options.retention?.max_bytes ?? 0;
      const size = this.options.segment_size_bytes;
      count = Math.max(0, Math.ceil((this.used_bytes + size - max) / size));
    }
    const plan = plan_prune(prunable, this.acks, policy, count);
    const segments = plan.segments.map(({ segment, acked }) => ({
      file: segment.file,
      first_pos: segment.first_pos,
      end_pos: segment.end_pos,
      events: segment.count,
      record_bytes: segment.end_bytes,
      acked,
    }));
    const blocked = plan.blocker === null ? null : describe_blocker(plan.blocker);
    if (!dry_run && plan.segments.length > 0) {
      await this.prune_segments(plan.segments.map((p) => p.segment), plan.segments.map((p) => p.acked), true);
    }
    return { segments, blocked, dry_run };
  }

  /**
   * Removes `victims` (a durable, sealed prefix of the log) durably: the
   * pruned state first (the next open finishes an interrupted prune), then
   * the files, the first recycled as the spare when `recycle`, then the
   * directory fsync.
   */
  private async prune_segments(victims: readonly Segment[], acked: readonly boolean[], recycle: boolean): Promise<void> {
    const all = this.segments.all();
    assert(victims.length > 0 && victims.length < all.length, "a prune leaves the active segment");
    victims.forEach((v, i) => assert(all[i] === v && v.sealed, "a prune takes sealed segments from the front"));
    const next: PrunedState = {
      first_pos: victims[victims.length - 1].end_pos,
      floor: new Map(this.pruned_state.floor),
      newest_pruned_time_ms: this.pruned_state.newest_pruned_time_ms,
      totals: { ...this.pruned_state.totals },
    };
    for (let i = 0; i < victims.length; i++) {
      const v = victims[i];
      for (const [origin, range] of v.origins) next.floor.set(origin, Math.max(next.floor.get(origin) ?? 0, range.seq_last));
      next.totals.segments++;
      next.totals.events += v.count;
      next.totals.bytes += v.size_bytes;
      if (acked[i]) {
        next.totals.acked_events += v.count;
        next.totals.acked_bytes += v.end_bytes;
      } else {
        next.totals.unacked_events += v.count;
        next.totals.unacked_bytes += v.end_bytes;
      }
      if (v.count > 0) {
        const last = LogEvent.at(v, v.offset_of(v.end_pos - 1), v.end_pos - 1);
        next.newest_pruned_time_ms = Math.max(next.newest_pruned_time_ms ?? 0, last.time_ms);
      }
    }
    const segments_dir = this.files.segments_dir;
    await write_pruned_state(this.io, segments_dir, next);
    // From here the log starts later: readers and sync see it at once.
    this.segments.drop_first(victims.length);
    this.pruned_state = next;
    for (let i = 0; i < victims.length; i++) {
      const v = victims[i];
      this.io.unlink(path.join(segments_dir, summary_file_name(v.first_pos)));
      if (recycle && i === 0 && this.files.recycle(v.file)) continue;
      // Its mapping may live until collected, and with it the file's blocks: free them now (readers then see zeros).
      this.io.release_blocks?.(v.file);
      this.io.unlink(v.file);
    }
    await this.io.sync_dir(segments_dir);
  }

  /** Where the budget stands and what retention did. */
  retention_status(): RetentionStatus {
    this.check_open();
    const retention = this.options.retention;
    const upstreams = this.acks.upstreams();
    const unacked: Record<string, number> = {};
    for (const u of upstreams) unacked[u] = 0;
    // One pass per segment over its origins and each origin's upstreams: a segment counts once for each upstream lacking any of it.
    const lacking = new Set<string>();
    for (const segment of this.segments.all()) {
      lacking.clear();
      for (const [origin, range] of segment.origins) {
        for (const u of this.acks.upstreams_of(origin)) if (!lacking.has(u) && this.acks.held_by(u, origin) < range.seq_last) lacking.add(u);
      }
      for (const u of lacking) if (u in unacked) unacked[u] += segment.end_bytes;
    }
    let oldest: number | null = null;
    if (this.next_pos > this.first_pos) oldest = this.segments.iterate(this.first_pos).next().value?.time_ms ?? null;
    return {
      policy: retention?.policy ?? null,
      max_bytes: retention?.max_bytes ?? null,
      used_bytes: this.used_bytes,
      reserve_own_bytes: retention?.reserve_own_bytes ?? 0,
      first_pos: this.first_pos,
      pruned: { ...this.pruned_state.totals },
      oldest_held_time_ms: oldest,
      // As of now: an acknowledgement that arrived since the budget's job last ran may have cleared it.
      blocked: retention === null || this.blocked === null ? null : this.blocked_now(),
      unacked_bytes_by_upstream: unacked,
    };
  }

  /** Why a segment cannot go under drop-acked (null when it can): for tests and the prune command. */
  segment_blocker(index: number): AckBlocker | null {
    return segment_blocker(this.segments.all()[index], this.acks);
  }
}
