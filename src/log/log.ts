import path from "node:path";
import { assert } from "../lib/assert.ts";
import { type Clock, type Timers, type TimerHandle, system_clock, system_timers } from "../lib/clock.ts";
import { InterlogError, errno_code, is_interlog_error } from "../lib/errors.ts";
import { type FileHandle, type FileIO, node_file_io } from "./file_io.ts";
import { copy_bytes } from "../lib/bytes.ts";
import { crc32c_update } from "../lib/crc32c.ts";
import {
  flag_batch_end,
  flag_rejected,
  frame_header_bytes,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_at,
  frame_size_bytes,
  payload_max_bytes,
  write_frame_header,
} from "./frame.ts";
import { write_u64 } from "../lib/bytes.ts";
import { assert_origin, format_event_id, origin_hi, origin_lo } from "./ids.ts";
import { LogEvent } from "./log_event.ts";
import type { CheckedEvents } from "./checked_events.ts";
import { WaiterQueue } from "./waiter_queue.ts";
import { type ReplicaInfo, create_replica, read_replica } from "./replica.ts";
import { recover } from "./recovery.ts";
import {
  Segment,
  parse_segment_file_name,
  segment_file_name,
  summary_file_name,
} from "./segment.ts";
import { type VerifyReport, verify_segments } from "./verify.ts";

export type SyncMode = "always" | "interval" | "never";
export const sync_modes: readonly SyncMode[] = ["always", "interval", "never"];

export const segment_size_default_bytes = 64 * 1024 * 1024;
export const segment_size_min_bytes = 64 * 1024;
export const sync_interval_default_ms = 10;
/** fsyncs run on the JS thread while they average below this (blocking it that long is harmless); else in the thread pool. */
const inline_fsync_max_ms = 1;
/** Frames are assembled here and written with one pwrite; see DESIGN NOTE in README (mmap writes + fdatasync were 4-5x slower). */
const staging_bytes = 256 * 1024;
const spare_file_name = "spare";

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
  /** Called with recovery reports and background problems a technician should see. */
  on_warning?: (message: string, details: Record<string, unknown>) => void;
}

export interface RecoveryReport {
  /** Bytes after the last whole record (torn tail, garbage) that were zeroed. */
  dropped_bytes: number;
  /** Whole segment files removed because they came after a torn segment. */
  dropped_segments: number;
  /** The position where the log was cut (start of the torn batch), when anything was dropped. */
  cut_at_pos: number | null;
  /** The position of the first bad record itself (cut_at_pos plus the good records of its unfinished batch). */
  bad_at_pos: number | null;
  reason: string;
  /** Bytes that had to be scanned record by record (the tail since the last sealed segment). */
  scanned_bytes: number;
}

export interface LogStats {
  appends: number;
  appended_events: number;
  appended_bytes: number;
  fsyncs: number;
  fsync_seconds_total: number;
  /** Recent fsync latencies in seconds, for histograms; drained by the caller. */
  fsync_latencies_s: number[];
}

export type AcceptResult = "appended" | "duplicate";

export interface IncomingEvent {
  origin: string;
  seq: number;
  time_ms: number;
  payload: Uint8Array;
  flags?: number;
}

const resolved = Promise.resolve();

/**
 * The durable local log: one replica's append-only sequence of events in
 * preallocated segment files. See design.md section 2.
 */
export class Log {
  readonly dir: string;
  readonly id: string;
  readonly name: string;
  readonly created: string;
  readonly sync_mode: SyncMode;
  readonly read_only: boolean;
  readonly recovery: RecoveryReport;
  readonly stats: LogStats = {
    appends: 0,
    appended_events: 0,
    appended_bytes: 0,
    fsyncs: 0,
    fsync_seconds_total: 0,
    fsync_latencies_s: [],
  };

  private readonly segments_dir: string;
  private readonly io: FileIO;
  private readonly clock: Clock;
  private readonly segment_size_bytes: number;
  private readonly segment_retry_interval_ms: number;
  private readonly on_warning: (message: string, details: Record<string, unknown>) => void;
  private readonly lock: { release(): void } | null;
  private readonly origin_hi: number;
  private readonly origin_lo: number;

  private segments: Segment[];
  private active: Segment;
  private active_handle: FileHandle | null;
  private readonly vv_map: Map<string, number>;

  private readonly staging = new Uint8Array(staging_bytes);
  private readonly staging_view = new DataView(this.staging.buffer);
  /** Scratch of accept_checked, reused: origin -> next seq, and which events are already held. */
  private readonly accept_next = new Map<string, number>();
  private readonly accept_skip: number[] = [];
  private staged_bytes = 0;
  /** Offset in the active segment where staging[0] belongs. */
  private staged_at = 0;
  private readonly big_header = new Uint8Array(frame_header_bytes);
  private readonly big_header_view = new DataView(this.big_header.buffer);

  /** Events written (visible); the next event gets this pos. */
  private next_pos: number;
  /** Events handed to the OS (survive a process crash). */
  private flushed_pos: number;
  /** Events fsynced (survive a power cut). */
  private durable_pos: number;
  /** origin -> highest seq durable, brought up to durable_count lazily from the pending batches below. */
  private readonly durable_vv_map: Map<string, number>;
  /** Committed batches not yet applied to durable_vv_map: the position after each and the seq it reached for one origin. */
  private readonly pending_end_pos: number[] = [];
  private readonly pending_origin: string[] = [];
  private readonly pending_seq: number[] = [];
  private pending_head = 0;
  private readonly durable_listeners: (() => void)[] = [];
  private durable_notify_scheduled = false;
  /** Moving average of recent fsync cycles; starts high, so the first ones go through the thread pool and measure the disk. */
  private fsync_recent_ms = 1000;

  /** Waiting for a flush (never mode's durability). */
  private readonly flush_waiters = new WaiterQueue();
  /** Waiting for an fsync cycle that covers their position. */
  private readonly sync_waiters = new WaiterQueue();
  /** Files written since their last fdatasync. */
  private unsynced: FileHandle[] = [];
  /** Handles of sealed segments, closed once an fsync cycle has covered them. */
  private readonly retired = new Set<FileHandle>();
  private dir_dirty = false;
  private sync_scheduled = false;
  private flush_scheduled = false;
  private syncing = false;
  private sync_again = false;
  private interval_timer: TimerHandle | null = null;
  private seal_jobs = new Set<Promise<void>>();

  private spare_ready = false;
  private spare_job: Promise<void> | null = null;
  private segment_failed_at_ms = Number.NEGATIVE_INFINITY;
  private failure: InterlogError | null = null;
  private closing = false;
  private closed = false;

  private constructor(init: {
    options: LogOptions;
    io: FileIO;
    replica: ReplicaInfo;
    lock: { release(): void } | null;
    segments: Segment[];
    vv: Map<string, number>;
    recovery: RecoveryReport;
    active_handle: FileHandle | null;
  }) {
    const { options } = init;
    this.dir = options.dir;
    this.segments_dir = path.join(options.dir, "segments");
    this.io = init.io;
    this.clock = options.clock ?? system_clock;
    this.id = init.replica.id;
    this.name = init.replica.name;
    this.created = init.replica.created;
    this.origin_hi = origin_hi(this.id);
    this.origin_lo = origin_lo(this.id);
    this.sync_mode = options.sync ?? "always";
    this.read_only = options.read_only ?? false;
    this.segment_size_bytes = options.segment_size_bytes ?? segment_size_default_bytes;
    this.segment_retry_interval_ms = options.segment_retry_interval_ms ?? 1000;
    this.on_warning = options.on_warning ?? (() => {});
    this.lock = init.lock;
    this.segments = init.segments;
    this.active = init.segments[init.segments.length - 1];
    this.active_handle = init.active_handle;
    this.vv_map = init.vv;
    this.recovery = init.recovery;
    this.next_pos = this.active.end_pos;
    this.flushed_pos = this.next_pos;
    this.durable_pos = this.next_pos;
    // Recovery made everything it kept durable.
    this.durable_vv_map = new Map(this.vv_map);
    this.staged_at = this.active.end_bytes;
    if (!this.read_only && this.sync_mode === "interval") {
      const interval_ms = options.sync_interval_ms ?? sync_interval_default_ms;
      assert(interval_ms > 0, "sync_interval_ms > 0");
      this.interval_timer = (options.timers ?? system_timers).every(interval_ms, () => {
        if (this.next_pos > this.durable_pos || this.dir_dirty) void this.run_sync();
      });
    }
  }

  /** Opens (and on first use creates) the log in options.dir. */
  static async open(options: LogOptions): Promise<Log> {
    const io = options.io ?? node_file_io;
    const clock = options.clock ?? system_clock;
    const read_only = options.read_only ?? false;
    const create = options.create ?? !read_only;
    const segment_size = options.segment_size_bytes ?? segment_size_default_bytes;
    if (!Number.isInteger(segment_size) || segment_size < segment_size_min_bytes || segment_size % 4096 !== 0) {
      throw new InterlogError(
        "BAD_ARGUMENT",
        `segment size ${segment_size} bytes is invalid; use a multiple of 4096 of at least ${segment_size_min_bytes} bytes`,
      );
    }
    if (options.sync !== undefined && !sync_modes.includes(options.sync)) {
      throw new InterlogError("BAD_ARGUMENT", `sync mode "${options.sync}" is invalid; use always, interval or never`);
    }
    const dir = options.dir;
    if (!io.exists(dir)) {
      if (!create) {
        throw new InterlogError("DATA_DIR_INVALID", `no data directory at ${dir}; create one with: interlog init --data-dir ${dir}`);
      }
      io.mkdirp(dir);
    }
    const lock = read_only ? null : io.lock(path.join(dir, "lock"));
    try {
      let replica = read_replica(io, dir);
      if (replica === null) {
        if (read_only || !create) {
          throw new InterlogError("DATA_DIR_INVALID", `${dir} holds no replica.json; create a log with: interlog init --data-dir ${dir}`);
        }
        replica = await create_replica(io, dir, options.name ?? "", clock.now_ms(), options.fill_random);
      }
      const segments_dir = path.join(dir, "segments");
      io.mkdirp(segments_dir);
      const opened = await recover(io, segments_dir, segment_size, read_only, options.on_warning);
      const log = new Log({ options, io, replica, lock, ...opened });
      if (!read_only) log.prepare_spare();
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
    this.reserve(frame_size_bytes(payload.length));
    const seq = (this.vv_map.get(this.id) ?? 0) + 1;
    this.stage(this.id, this.origin_hi, this.origin_lo, seq, this.clock.now_ms(), flag_batch_end, payload);
    this.vv_map.set(this.id, seq);
    this.committed(1, payload.length);
    this.pending_push(this.id, seq);
    return seq;
  }

  /** Appends payloads as one atomic batch: after a crash all of them are there or none. Returns the first seq. */
  append_batch(payloads: readonly Uint8Array[]): number {
    this.check_writable();
    if (payloads.length === 0) throw new InterlogError("BAD_ARGUMENT", "a batch needs at least one payload");
    let bytes = 0;
    let payload_bytes = 0;
    for (const p of payloads) {
      bytes += frame_size_bytes(p.length);
      payload_bytes += p.length;
      this.check_payload(p.length);
    }
    this.reserve(bytes);
    const first = (this.vv_map.get(this.id) ?? 0) + 1;
    const time_ms = this.clock.now_ms();
    const last = payloads.length - 1;
    for (let i = 0; i <= last; i++) {
      this.stage(this.id, this.origin_hi, this.origin_lo, first + i, time_ms, i === last ? flag_batch_end : 0, payloads[i]);
    }
    this.vv_map.set(this.id, first + last);
    this.committed(payloads.length, payload_bytes);
    this.pending_push(this.id, first + last);
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
   * The merge step of sync: appends another replica's event when it is the
   * next one expected from its origin (`seq == vv[origin] + 1`), ignores it
   * when already held, and refuses a gap with SEQ_GAP.
   */
  accept(event: IncomingEvent): AcceptResult {
    return this.accept_batch([event])[0];
  }

  /** Accepts events atomically: all checks pass before anything is written; duplicates are skipped. */
  accept_batch(events: readonly IncomingEvent[]): AcceptResult[] {
    this.check_writable();
    const results: AcceptResult[] = [];
    const next = new Map<string, number>();
    let bytes = 0;
    let payload_bytes = 0;
    let fresh = 0;
    for (const e of events) {
      assert_origin(e.origin);
      if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new InterlogError("BAD_ARGUMENT", `seq ${e.seq} is not a positive integer`);
      if (!Number.isSafeInteger(e.time_ms) || e.time_ms < 0) throw new InterlogError("BAD_ARGUMENT", `time ${e.time_ms} is not a valid time`);
      if (((e.flags ?? 0) & ~flag_rejected) !== 0) throw new InterlogError("BAD_ARGUMENT", `flags ${e.flags} are not allowed on an incoming event`);
      this.check_payload(e.payload.length);
      const expected = next.get(e.origin) ?? (this.vv_map.get(e.origin) ?? 0) + 1;
      if (e.seq < expected) {
        results.push("duplicate");
        continue;
      }
      if (e.seq > expected) {
        throw new InterlogError(
          "SEQ_GAP",
          `event ${e.origin}:${e.seq} cannot be appended: this log holds ${e.origin} only up to seq ${expected - 1}; fetch the missing events first`,
          { origin: e.origin, seq: e.seq, held: expected - 1 },
        );
      }
      next.set(e.origin, e.seq + 1);
      results.push("appended");
      bytes += frame_size_bytes(e.payload.length);
      payload_bytes += e.payload.length;
      fresh++;
    }
    if (fresh === 0) return results;
    this.reserve(bytes);
    let written = 0;
    for (let i = 0; i < events.length; i++) {
      if (results[i] !== "appended") continue;
      const e = events[i];
      written++;
      const flags = (e.flags ?? 0) | (written === fresh ? flag_batch_end : 0);
      this.stage(e.origin, origin_hi(e.origin), origin_lo(e.origin), e.seq, e.time_ms, flags, e.payload);
      this.vv_map.set(e.origin, e.seq);
    }
    this.committed(fresh, payload_bytes);
    for (const [origin, next_seq] of next) this.pending_push(origin, next_seq - 1);
    return results;
  }

  /**
   * The merge step of sync for events whose frames the caller checked
   * (see CheckedEvents): like accept_batch, atomic and all-or-nothing on a
   * gap, but the origin's crc is written as received and payloads are copied
   * without making views. Frames keep the origin's flags; the batch's last
   * frame also gets batch-end (its crc is then computed anew). Returns the
   * number of events appended; already-held ones are skipped.
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
      const origin = events.origin[i];
      const seq = events.seq[i];
      assert(origin !== this.id, "own events are never accepted from peers");
      assert((events.flags[i] & ~(flag_batch_end | flag_rejected)) === 0, "incoming flags are batch-end and rejected only");
      this.check_payload(events.end[i] - events.start[i]);
      const expected = next.get(origin) ?? (this.vv_map.get(origin) ?? 0) + 1;
      if (seq < expected) {
        skip[i] = 1;
        continue;
      }
      if (seq > expected) {
        throw new InterlogError(
          "SEQ_GAP",
          `event ${origin}:${seq} cannot be appended: this log holds ${origin} only up to seq ${expected - 1}; fetch the missing events first`,
          { origin, seq, held: expected - 1 },
        );
      }
      skip[i] = 0;
      next.set(origin, seq + 1);
      bytes += frame_size_bytes(events.end[i] - events.start[i]);
      payload_bytes += events.end[i] - events.start[i];
      fresh++;
      last_fresh = i;
    }
    if (fresh === 0) return 0;
    this.reserve(bytes);
    for (let i = 0; i <= last_fresh; i++) {
      if (skip[i] === 1) continue;
      const flags = events.flags[i] | (i === last_fresh ? flag_batch_end : 0);
      const crc = flags === events.flags[i] ? events.crc[i] : -1;
      this.stage_checked(events, i, flags, crc);
      this.vv_map.set(events.origin[i], events.seq[i]);
    }
    this.committed(fresh, payload_bytes);
    for (const [origin, next_seq] of next) this.pending_push(origin, next_seq - 1);
    return fresh;
  }

  /**
   * Resolves once every event before `pos` (default: all appended so far) is
   * durable under the sync mode: fsynced for always and interval, handed to
   * the OS for never.
   */
  durable(pos: number = this.next_pos): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const done = this.sync_mode === "never" ? this.flushed_pos : this.durable_pos;
    if (pos <= done) return resolved;
    if (this.sync_mode === "never") {
      this.request_flush();
      return this.flush_waiters.wait(pos);
    }
    if (this.sync_mode === "always") this.request_sync();
    return this.sync_waiters.wait(pos);
  }

  /** Resolves after an fsync cycle that starts after this call has covered every event before `pos`, whatever the mode. */
  private synced(pos: number): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    this.request_sync();
    return this.sync_waiters.wait(pos);
  }

  // ---------------------------------------------------------------- reads

  /** Number of events in the log (the next pos). */
  get count(): number {
    return this.next_pos;
  }

  /** Events durable under the sync mode (see `durable`). */
  get durable_count(): number {
    return this.sync_mode === "never" ? this.flushed_pos : this.durable_pos;
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

  /** Events from `from_pos` up to the current end, lazily. */
  *iterate(from_pos = 0): Generator<LogEvent> {
    this.check_open();
    if (!Number.isSafeInteger(from_pos) || from_pos < 0) throw new InterlogError("BAD_ARGUMENT", `position ${from_pos} is not a non-negative integer`);
    let pos = from_pos;
    let index = this.segment_index_of(pos);
    while (index >= 0 && pos < this.next_pos) {
      const segment = this.segments[index];
      this.flush_if_needed(pos + 1);
      let offset = segment.offset_of(pos);
      while (pos < segment.end_pos) {
        this.flush_if_needed(pos + 1);
        const event = LogEvent.at(segment, offset, pos);
        yield event;
        offset += event.frame_bytes;
        pos++;
      }
      index++;
      if (index >= this.segments.length) break;
    }
  }

  /** The event `origin:seq`, or null when this log does not hold it. */
  get(origin: string, seq: number): LogEvent | null {
    this.check_open();
    assert_origin(origin);
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > (this.vv_map.get(origin) ?? 0)) return null;
    const hi = origin_hi(origin);
    const lo = origin_lo(origin);
    this.flush_if_needed(this.next_pos);
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const segment = this.segments[i];
      const at = segment.locate(origin, hi, lo, seq);
      if (at !== null) {
        return LogEvent.at(segment, at.offset, at.pos);
      }
    }
    assert(false, `event ${origin}:${seq} is below the vv but in no segment`);
  }

  /** Events of `origin` with seq > after_seq in seq order (what a peer that holds up to after_seq lacks). */
  *events_after(origin: string, after_seq: number): Generator<LogEvent> {
    this.check_open();
    assert_origin(origin);
    const last = this.vv_map.get(origin) ?? 0;
    if (after_seq >= last) return;
    const hi = origin_hi(origin);
    const lo = origin_lo(origin);
    let seq = after_seq + 1;
    for (const segment of this.segments) {
      const range = segment.origins.get(origin);
      if (range === undefined || range.seq_last < seq) continue;
      this.flush_if_needed(this.next_pos);
      const at = segment.locate(origin, hi, lo, seq);
      assert(at !== null, "an origin's seqs continue in the next segment that holds it");
      let offset = at.offset;
      let pos = at.pos;
      while (pos < segment.end_pos && seq <= range.seq_last) {
        this.flush_if_needed(pos + 1);
        const event = LogEvent.at(segment, offset, pos);
        if (event.origin_hi === hi && event.origin_lo === lo) {
          assert(event.seq === seq, "an origin's events appear in seq order");
          yield event;
          seq++;
        }
        offset += event.frame_bytes;
        pos++;
      }
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
    this.check_open();
    assert_origin(origin);
    const last = this.vv_map.get(origin) ?? 0;
    if (after_seq >= last) return;
    const hi = origin_hi(origin);
    const lo = origin_lo(origin);
    let seq = after_seq + 1;
    this.flush_if_needed(this.next_pos);
    for (const segment of this.segments) {
      const range = segment.origins.get(origin);
      if (range === undefined || range.seq_last < seq) continue;
      const at = segment.locate(origin, hi, lo, seq);
      assert(at !== null, "an origin's seqs continue in the next segment that holds it");
      const { map, view } = segment;
      let offset = at.offset;
      let pos = at.pos;
      while (pos < segment.end_pos && seq <= range.seq_last) {
        if (frame_origin_hi(view, offset) === hi && frame_origin_lo(view, offset) === lo) {
          assert(frame_seq(view, offset) === seq, "an origin's events appear in seq order");
          if (!visit(map, view, offset, pos)) return;
          seq++;
        }
        offset += frame_size_at(view, offset);
        pos++;
      }
    }
  }

  /**
   * The durable version vector: what is held minus events not yet durable
   * (positions from durable_count on). Only this may be published or
   * acknowledged, so a replica restarted after a crash never contradicts
   * what peers were told.
   */
  durable_vv(): Map<string, number> {
    this.check_open();
    this.catch_up_durable_vv();
    return new Map(this.durable_vv_map);
  }

  /** Highest seq of `origin` held durably (0 when none). */
  durable_held(origin: string): number {
    this.check_open();
    this.catch_up_durable_vv();
    return this.durable_vv_map.get(origin) ?? 0;
  }

  /** Applies the batches that became durable to durable_vv_map. */
  private catch_up_durable_vv(): void {
    const durable = this.durable_count;
    const ends = this.pending_end_pos;
    let head = this.pending_head;
    while (head < ends.length && ends[head] <= durable) {
      this.durable_vv_map.set(this.pending_origin[head], this.pending_seq[head]);
      head++;
    }
    if (head === ends.length) {
      ends.length = 0;
      this.pending_origin.length = 0;
      this.pending_seq.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > ends.length) {
      ends.splice(0, head);
      this.pending_origin.splice(0, head);
      this.pending_seq.splice(0, head);
      head = 0;
    }
    this.pending_head = head;
  }

  /** Notes that the batch just committed wrote origin up to seq (applied to durable_vv once durable). */
  private pending_push(origin: string, seq: number): void {
    this.pending_end_pos.push(this.next_pos);
    this.pending_origin.push(origin);
    this.pending_seq.push(seq);
    if (this.pending_end_pos.length - this.pending_head > 4096) this.catch_up_durable_vv();
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
    return this.segments.length;
  }

  /** Bytes of records written (without preallocated free space). */
  get bytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.end_bytes;
    return total;
  }

  /** Bytes the segment files take on disk (preallocated). */
  get disk_bytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size_bytes;
    return total;
  }

  free_disk_bytes(): number | null {
    return this.io.free_bytes(this.dir);
  }

  /** Re-checks every record's crc, seq order and the zero tail of every segment. */
  verify(): VerifyReport {
    this.check_open();
    if (!this.read_only) this.flush();
    const report = verify_segments(this.segments);
    const r = this.recovery;
    if (!this.read_only || (r.cut_at_pos === null && r.dropped_bytes === 0)) return report;
    // Opened without repair: the damage recovery would cut away is what to report, unless something earlier is bad too.
    if (!report.ok && report.first_bad !== null && report.first_bad.pos < (r.cut_at_pos ?? this.next_pos)) return report;
    const reason = r.cut_at_pos === null ? `${r.dropped_bytes} stray bytes past the last record` : r.reason;
    const pos = r.bad_at_pos ?? this.next_pos;
    return { ...report, ok: false, first_bad: { pos, segment: this.active.file, offset_bytes: this.active.end_bytes, reason } };
  }

  // ---------------------------------------------------------------- lifecycle

  /** Flushes, fsyncs everything, waits for background work, releases the directory. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    try {
      this.interval_timer?.cancel();
      if (!this.read_only && this.failure === null) {
        // A clean shutdown is durable in every mode.
        this.flush();
        this.unsynced_add(this.active_handle);
        await this.synced(this.next_pos);
        await Promise.all(this.seal_jobs);
      }
      await this.spare_job;
    } finally {
      this.active_handle?.close();
      this.active_handle = null;
      for (const handle of this.retired) handle.close();
      this.retired.clear();
      this.closed = true;
      const err = new InterlogError("LOG_CLOSED", "the log was closed before these events were durable");
      this.flush_waiters.reject_all(err);
      this.sync_waiters.reject_all(err);
      this.lock?.release();
    }
  }

  get is_closed(): boolean {
    return this.closed;
  }

  /** Set when a write or fsync failed: the log refuses writes until reopened. */
  get failed(): InterlogError | null {
    return this.failure;
  }

  // ---------------------------------------------------------------- internals

  private check_open(): void {
    if (this.closed) throw new InterlogError("LOG_CLOSED", "the log is closed");
  }

  private check_writable(): void {
    this.check_open();
    if (this.closing) throw new InterlogError("LOG_CLOSED", "the log is closing");
    if (this.read_only) throw new InterlogError("READ_ONLY", "the log was opened read-only");
    if (this.failure !== null) throw this.failure;
  }

  private check_payload(bytes: number): void {
    if (bytes > payload_max_bytes) {
      throw new InterlogError("PAYLOAD_TOO_LARGE", `payload of ${bytes} bytes exceeds the limit of ${payload_max_bytes} bytes`);
    }
  }

  /** Makes room for `bytes` of frames in the active segment, rotating when needed. Writes nothing on failure. */
  private reserve(bytes: number): void {
    if (this.active.end_bytes + bytes <= this.active.size_bytes) return;
    if (bytes > this.segment_size_bytes) {
      throw new InterlogError(
        "BATCH_TOO_LARGE",
        `a batch of ${bytes} bytes does not fit in one segment of ${this.segment_size_bytes} bytes; split it or raise log.segment_size`,
      );
    }
    this.rotate();
  }

  /** Writes one frame (header + payload + padding) after the active segment's last one. */
  private stage(origin: string, hi: number, lo: number, seq: number, time_ms: number, flags: number, payload: Uint8Array): void {
    const size = frame_size_bytes(payload.length);
    const segment = this.active;
    const offset = segment.end_bytes;
    assert(offset + size <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (size <= this.staging.length) {
      if (this.staged_bytes + size > this.staging.length) this.flush();
      const at = this.staged_bytes;
      this.staging.set(payload, at + frame_header_bytes);
      this.staging.fill(0, at + frame_header_bytes + payload.length, at + size);
      write_frame_header(this.staging, this.staging_view, at, hi, lo, seq, time_ms, flags, payload);
      this.staged_bytes = at + size;
    } else {
      // Too big for staging: payload straight to the file, header last so a crash in between leaves len = 0.
      this.flush();
      const handle = this.writable_handle();
      write_frame_header(this.big_header, this.big_header_view, 0, hi, lo, seq, time_ms, flags, payload);
      try {
        handle.write(payload, 0, payload.length, offset + frame_header_bytes);
        const padding = size - frame_header_bytes - payload.length;
        if (padding > 0) handle.write(new Uint8Array(padding), 0, padding, offset + frame_header_bytes + payload.length);
        handle.write(this.big_header, 0, frame_header_bytes, offset);
      } catch (err) {
        throw this.fail(err);
      }
      // Written around the staging buffer, so flush() will not note the file: the next fsync cycle must cover it.
      this.unsynced_add(handle);
      this.staged_at = offset + size;
    }
    segment.note_record(origin, seq, offset);
    segment.end_bytes = offset + size;
  }

  /** Writes event i of `events` like stage(), with `crc` as given (-1: compute it). */
  private stage_checked(events: CheckedEvents, i: number, flags: number, crc: number): void {
    const src = events.src[i];
    const start = events.start[i];
    const payload_bytes = events.end[i] - start;
    const size = frame_size_bytes(payload_bytes);
    if (size > this.staging.length) {
      const payload = src.subarray(start, events.end[i]);
      this.stage(events.origin[i], events.origin_hi[i], events.origin_lo[i], events.seq[i], events.time_ms[i], flags, payload);
      return;
    }
    const segment = this.active;
    const offset = segment.end_bytes;
    assert(offset + size <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (this.staged_bytes + size > this.staging.length) this.flush();
    const at = this.staged_bytes;
    const view = this.staging_view;
    copy_bytes(src, start, events.end[i], this.staging, at + frame_header_bytes);
    this.staging.fill(0, at + frame_header_bytes + payload_bytes, at + size);
    view.setUint32(at + 8, events.origin_hi[i], true);
    view.setUint32(at + 12, events.origin_lo[i], true);
    write_u64(view, at + 16, events.seq[i]);
    write_u64(view, at + 24, events.time_ms[i]);
    view.setUint32(at + 32, flags, true);
    view.setUint32(at + 36, 0, true);
    const len = frame_header_bytes + payload_bytes;
    view.setUint32(at + 4, crc >= 0 ? crc : crc32c_update(0, this.staging, at + 8, at + len), true);
    view.setUint32(at, len, true);
    this.staged_bytes = at + size;
    segment.note_record(events.origin[i], events.seq[i], offset);
    segment.end_bytes = offset + size;
  }

  /** Bookkeeping after a whole batch was staged: it is now visible. */
  private committed(events: number, payload_bytes: number): void {
    this.next_pos += events;
    assert(this.next_pos === this.active.end_pos, "next_pos matches the active segment's end");
    this.stats.appends++;
    this.stats.appended_events += events;
    this.stats.appended_bytes += payload_bytes;
    if (this.sync_mode === "always") this.request_sync();
    else if (this.sync_mode === "never") this.request_flush();
  }

  private writable_handle(): FileHandle {
    assert(this.active_handle !== null, "a writable log has an open handle on its active segment");
    return this.active_handle;
  }

  /** Hands staged frames to the OS (one pwrite). */
  private flush(): void {
    if (this.staged_bytes > 0) {
      try {
        this.writable_handle().write(this.staging, 0, this.staged_bytes, this.staged_at);
      } catch (err) {
        throw this.fail(err);
      }
      this.staged_at += this.staged_bytes;
      this.staged_bytes = 0;
      this.unsynced_add(this.active_handle);
    }
    if (this.flushed_pos < this.next_pos) {
      this.flushed_pos = this.next_pos;
      this.flush_waiters.release(this.flushed_pos);
      if (this.sync_mode === "never") this.notify_durable();
    }
  }

  /**
   * Calls `listener` (soon, never inside an append) whenever durable_count
   * grew; sync pushes new events this way instead of polling. Returns the
   * function that removes it.
   */
  on_durable(listener: () => void): () => void {
    this.durable_listeners.push(listener);
    return () => {
      const at = this.durable_listeners.indexOf(listener);
      if (at >= 0) this.durable_listeners.splice(at, 1);
    };
  }

  private notify_durable(): void {
    if (this.durable_listeners.length === 0 || this.durable_notify_scheduled) return;
    this.durable_notify_scheduled = true;
    // Deferred: a flush can happen halfway through staging a batch, which listeners must not see.
    queueMicrotask(() => {
      this.durable_notify_scheduled = false;
      if (this.closed) return;
      for (const listener of [...this.durable_listeners]) listener();
    });
  }

  /** Readers see the mapping, so anything they read must have left the staging buffer. */
  private flush_if_needed(pos_end: number): void {
    if (pos_end > this.flushed_pos && !this.read_only) this.flush();
  }

  private unsynced_add(handle: FileHandle | null): void {
    if (handle !== null && !this.unsynced.includes(handle)) this.unsynced.push(handle);
  }

  private request_flush(): void {
    if (this.flush_scheduled) return;
    this.flush_scheduled = true;
    setImmediate(() => {
      this.flush_scheduled = false;
      if (this.closed || this.failure !== null) return;
      try {
        this.flush();
      } catch {
        // fail() recorded it and rejected the waiters.
      }
    });
  }

  private request_sync(): void {
    if (this.sync_scheduled) return;
    this.sync_scheduled = true;
    // Appends of the same turn of the event loop share one fsync (group commit).
    setImmediate(() => {
      this.sync_scheduled = false;
      void this.run_sync();
    });
  }

  /** One group commit: flush, fdatasync every dirty file (and the directory), then release the waiters. */
  private async run_sync(): Promise<void> {
    if (this.closed || this.failure !== null || this.read_only) return;
    if (this.syncing) {
      this.sync_again = true;
      return;
    }
    this.syncing = true;
    this.sync_again = false;
    try {
      this.flush();
      const target = this.next_pos;
      const handles = this.unsynced;
      this.unsynced = [];
      const started = performance.now();
      let synced = false;
      const only = handles.length === 1 && !this.dir_dirty ? handles[0] : null;
      if (only?.sync_now !== undefined && this.fsync_recent_ms < inline_fsync_max_ms) {
        // A fast disk: the thread-pool hop (~0.1 ms) would cost a fifth of the fsync itself, so block briefly instead.
        only.sync_now();
        synced = true;
      } else {
        // async wrappers: a sync call that throws at once must not leave the others' rejections unhandled.
        const jobs = handles.map(async (h) => h.sync());
        if (this.dir_dirty) {
          this.dir_dirty = false;
          jobs.push((async () => this.io.sync_dir(this.segments_dir))());
        }
        synced = jobs.length > 0;
        await Promise.all(jobs);
      }
      if (synced) {
        const seconds = (performance.now() - started) / 1000;
        this.fsync_recent_ms = 0.8 * this.fsync_recent_ms + 0.2 * seconds * 1000;
        this.stats.fsyncs++;
        this.stats.fsync_seconds_total += seconds;
        if (this.stats.fsync_latencies_s.length < 10_000) this.stats.fsync_latencies_s.push(seconds);
      }
      assert(target >= this.durable_pos, "durable position only grows");
      this.durable_pos = target;
      for (const handle of handles) {
        // A rotation during this cycle may have queued the handle again: the cycle that syncs it last closes it.
        if (!this.unsynced.includes(handle) && this.retired.delete(handle)) handle.close();
      }
      this.sync_waiters.release(target);
      this.notify_durable();
    } catch (err) {
      this.fail(err);
    } finally {
      this.syncing = false;
    }
    if (this.failure === null && (this.sync_again || (this.sync_mode === "always" && this.sync_waiters.pending))) this.request_sync();
  }

  /** A write or fsync failed: after fsync errors the page cache cannot be trusted, so stop writing. */
  private fail(err: unknown): InterlogError {
    if (this.failure === null) {
      this.failure = new InterlogError(
        "LOG_FAILED",
        `a write or fsync of the log failed (${errno_code(err) ?? String(err)}); the log accepts no more writes. Restart the service; if it happens again check the disk (dmesg) and run interlog verify`,
        {},
        err,
      );
      this.on_warning(this.failure.message, { code: errno_code(err) });
      this.flush_waiters.reject_all(this.failure);
      this.sync_waiters.reject_all(this.failure);
    }
    return this.failure;
  }

  private segment_index_of(pos: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    if (pos >= this.next_pos) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].first_pos <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Seals the active segment and continues in a fresh one. Throws LOG_FULL (changing nothing) when none can be made. */
  private rotate(): void {
    this.flush();
    const first_pos = this.next_pos;
    const file = path.join(this.segments_dir, segment_file_name(first_pos));
    this.take_spare_as(file);
    let handle: FileHandle;
    let map: Uint8Array;
    try {
      handle = this.io.open(file);
      map = this.io.map(file);
    } catch (err) {
      throw this.fail(err);
    }
    const old = this.active;
    const old_handle = this.writable_handle();
    old.sealed = true;
    const next = new Segment(first_pos, file, map);
    this.segments.push(next);
    this.active = next;
    this.active_handle = handle;
    this.staged_at = 0;
    this.dir_dirty = true;
    this.unsynced_add(old_handle);
    this.retired.add(old_handle);
    this.start_seal(old);
    this.prepare_spare();
    if (this.sync_mode === "always") this.request_sync();
  }

  /** Renames the prepared spare to `file`, or makes a segment right now when none is ready. */
  private take_spare_as(file: string): void {
    const spare = path.join(this.segments_dir, spare_file_name);
    if (this.spare_ready) {
      this.spare_ready = false;
      this.io.rename(spare, file);
      return;
    }
    if (this.clock.now_ms() - this.segment_failed_at_ms < this.segment_retry_interval_ms) throw this.log_full(null);
    const tmp = `${file}.tmp`;
    try {
      this.io.create_zeroed_sync(tmp, this.segment_size_bytes);
      this.io.rename(tmp, file);
    } catch (err) {
      this.io.unlink(tmp);
      this.segment_failed_at_ms = this.clock.now_ms();
      const code = errno_code(err);
      if (code === "ENOSPC" || code === "EDQUOT") throw this.log_full(err);
      throw new InterlogError("IO_ERROR", `could not create segment ${file}: ${String(err)}`, { code }, err);
    }
    this.segment_failed_at_ms = Number.NEGATIVE_INFINITY;
  }

  private log_full(cause: unknown): InterlogError {
    const free = this.io.free_bytes(this.dir);
    return new InterlogError(
      "LOG_FULL",
      `the log is full: no space for a new ${this.segment_size_bytes}-byte segment in ${this.segments_dir}` +
        `${free === null ? "" : ` (${free} bytes free)`}; free disk space and appends resume. Nothing was written`,
      { free_bytes: free },
      cause ?? undefined,
    );
  }

  /** Prepares the next segment file in the background so rotation only renames it. */
  private prepare_spare(): void {
    if (this.read_only || this.spare_ready || this.spare_job !== null || this.closing) return;
    const spare = path.join(this.segments_dir, spare_file_name);
    // A spare left by the last run was zero-filled and fsynced before it got its name: reuse it.
    if (this.io.exists(spare) && this.io.size_bytes(spare) === this.segment_size_bytes) {
      this.spare_ready = true;
      return;
    }
    const tmp = `${spare}.tmp`;
    this.spare_job = (async () => {
      try {
        await this.io.create_zeroed(tmp, this.segment_size_bytes, () => this.closing);
        if (this.closing) {
          this.io.unlink(tmp);
          return;
        }
        this.io.rename(tmp, spare);
        this.spare_ready = true;
      } catch (err) {
        try {
          this.io.unlink(tmp);
        } catch {
          // Left for the next open, which removes *.tmp files.
        }
        if (!this.closing) {
          this.segment_failed_at_ms = this.clock.now_ms();
          this.on_warning("could not prepare the next segment; appends will fail with LOG_FULL when the current one is full", {
            code: errno_code(err),
            error: String(err),
          });
        }
      } finally {
        this.spare_job = null;
      }
    })();
  }

  /** Once a sealed segment is durable, persist its summary so the next open need not scan it. */
  private start_seal(segment: Segment): void {
    const run = (async () => {
      try {
        await this.synced(segment.end_pos);
        await this.io.write_file_atomic(path.join(this.segments_dir, summary_file_name(segment.first_pos)), segment.summary_bytes());
      } catch (err) {
        if (!is_interlog_error(err)) {
          this.on_warning("could not write a segment summary; the next start scans that segment instead", { error: String(err) });
        }
      }
    })();
    this.seal_jobs.add(run);
    void run.finally(() => this.seal_jobs.delete(run));
  }
}
