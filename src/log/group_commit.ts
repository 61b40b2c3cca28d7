import { assert } from "../lib/assert.ts";
import type { TimerHandle, Timers } from "../lib/clock.ts";
import { type InterlogError, errno_code } from "../lib/errors.ts";
import type { FileHandle, FileIO } from "./file_io.ts";
import { log_closed, log_failed } from "./log_errors.ts";
import { fsync_latencies_max, inline_fsync_max_ms, type SyncMode, type Warn } from "./log_options.ts";
import { WaiterQueue } from "./waiter_queue.ts";

export interface LogStats {
  appends: number;
  appended_events: number;
  appended_bytes: number;
  fsyncs: number;
  fsync_seconds_total: number;
  /** Recent fsync latencies in seconds, for histograms; drained by the caller. */
  fsync_latencies_s: number[];
}

export interface GroupCommitInit {
  mode: SyncMode;
  sync_interval_ms: number;
  read_only: boolean;
  io: FileIO;
  segments_dir: string;
  timers: Timers;
  stats: LogStats;
  /** Events visible so far: the position the next flush or fsync covers. */
  next_pos: number;
  /** Writes staged frames to the file (FrameStager.flush). */
  flush_staged: () => void;
  /** Writes still to come before an fsync may cover what was flushed (an async signer's signatures), or null. */
  settle_writes?: () => Promise<void> | null;
  on_warning: Warn;
  /** The log just stopped after a failed write or fsync; `durable_pos` is the last position it had made durable. */
  on_failed: (durable_pos: number, cause: unknown) => void;
}

const resolved = Promise.resolve();
/** Weight of the newest fsync in the moving average that picks inline or thread-pool fsyncs. */
const fsync_average_new_weight = 0.2;
/** The average starts high, so the first fsyncs go through the thread pool and measure the disk. */
const fsync_average_initial_ms = 1000;

/**
 * Durability: when appended events reach the OS (`flushed_pos`) and the
 * medium (`durable_pos`). Appends of one event-loop turn share one fsync
 * (group commit, scheduled with timers.soon); `interval` mode fsyncs on a
 * timer; `never` flushes only. Tracks which files an fsync must cover, closes
 * sealed segments' handles once covered, and stops the log for good after a
 * failed write or fsync (the page cache can no longer be trusted).
 *
 * Invariants: durable_pos <= flushed_pos <= next_pos, and both only grow.
 */
export class GroupCommit {
  readonly mode: SyncMode;
  private readonly read_only: boolean;
  private readonly io: FileIO;
  private readonly segments_dir: string;
  private readonly timers: Timers;
  private readonly stats: LogStats;
  private readonly flush_staged: () => void;
  private readonly settle_writes: () => Promise<void> | null;
  private readonly on_warning: Warn;
  private readonly on_failed: (durable_pos: number, cause: unknown) => void;

  /** Events visible; the log moves it forward after each committed batch. */
  private next_pos: number;
  /** Events handed to the OS (survive a process crash). */
  private flushed_pos: number;
  /** Events fsynced (survive a power cut). */
  private durable_pos: number;

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
  private readonly interval_timer: TimerHandle | null = null;
  /** Moving average of recent fsync cycles. */
  private fsync_recent_ms = fsync_average_initial_ms;
  private readonly durable_listeners: (() => void)[] = [];
  private durable_notify_scheduled = false;
  private failure: InterlogError | null = null;
  private stopped = false;

  constructor(init: GroupCommitInit) {
    this.mode = init.mode;
    this.read_only = init.read_only;
    this.io = init.io;
    this.segments_dir = init.segments_dir;
    this.timers = init.timers;
    this.stats = init.stats;
    this.flush_staged = init.flush_staged;
    this.settle_writes = init.settle_writes ?? (() => null);
    this.on_warning = init.on_warning;
    this.on_failed = init.on_failed;
    this.next_pos = init.next_pos;
    this.flushed_pos = init.next_pos;
    this.durable_pos = init.next_pos;
    if (!this.read_only && this.mode === "interval") {
      assert(init.sync_interval_ms > 0, "sync_interval_ms > 0");
      this.interval_timer = this.timers.every(init.sync_interval_ms, () => {
        if (this.next_pos > this.durable_pos || this.dir_dirty) void this.run_sync();
      });
    }
  }

  /** Events durable under the mode: fsynced for always and interval, handed to the OS for never. */
  get durable_count(): number {
    return this.mode === "never" ? this.flushed_pos : this.durable_pos;
  }

  get flushed_count(): number {
    return this.flushed_pos;
  }

  /** Set when a write or fsync failed: the log refuses writes until reopened. */
  get failed(): InterlogError | null {
    return this.failure;
  }

  /** A batch was staged and is now visible up to next_pos: schedule its flush or fsync by mode. */
  committed(next_pos: number): void {
    assert(next_pos >= this.next_pos, "the visible position only grows");
    this.next_pos = next_pos;
    if (this.mode === "always") this.request_sync();
    else if (this.mode === "never") this.request_flush();
  }

  /** Resolves once every event before `pos` is durable under the mode. */
  durable(pos: number = this.next_pos): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (pos <= this.durable_count) return resolved;
    if (this.mode === "never") {
      this.request_flush();
      return this.flush_waiters.wait(pos);
    }
    if (this.mode === "always") this.request_sync();
    return this.sync_waiters.wait(pos);
  }

  /** Resolves after an fsync cycle that starts after this call has covered every event before `pos`, whatever the mode. */
  synced(pos: number): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    this.request_sync();
    return this.sync_waiters.wait(pos);
  }

  /** Hands staged frames to the OS and releases whoever waited for that. */
  flush(): void {
    this.flush_staged();
    if (this.flushed_pos < this.next_pos) {
      this.flushed_pos = this.next_pos;
      this.flush_waiters.release(this.flushed_pos);
      if (this.mode === "never") this.notify_durable();
    }
  }

  /** Readers see the mapping, so anything they read must have left the staging buffer. */
  flush_if_needed(pos_end: number): void {
    if (pos_end > this.flushed_pos && !this.read_only) this.flush();
  }

  /** `handle` was written: the next fsync cycle covers it. */
  wrote(handle: FileHandle): void {
    if (!this.unsynced.includes(handle)) this.unsynced.push(handle);
  }

  /** A sealed segment's handle: synced once more (with the directory that gained a segment), then closed. */
  retire(handle: FileHandle): void {
    this.wrote(handle);
    this.retired.add(handle);
    this.dir_dirty = true;
    if (this.mode === "always") this.request_sync();
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
      if (this.stopped) return;
      for (const listener of [...this.durable_listeners]) listener();
    });
  }

  private request_flush(): void {
    if (this.flush_scheduled) return;
    this.timers.soon(() => {
      this.flush_scheduled = false;
      if (this.stopped || this.failure !== null) return;
      try {
        this.flush();
      } catch {
        // fail() recorded it and rejected the waiters.
      }
    });
    // Set once scheduling worked: a flag left set with nothing scheduled would stop flushes for good.
    this.flush_scheduled = true;
  }

  private request_sync(): void {
    if (this.sync_scheduled) return;
    // Appends of the same turn of the event loop share one fsync (group commit).
    this.timers.soon(() => {
      this.sync_scheduled = false;
      void this.run_sync();
    });
    this.sync_scheduled = true;
  }

  /** One group commit: flush, fdatasync every dirty file (and the directory), then release the waiters. */
  private async run_sync(): Promise<void> {
    if (this.stopped || this.failure !== null || this.read_only) return;
    if (this.syncing) {
      this.sync_again = true;
      return;
    }
    this.syncing = true;
    this.sync_again = false;
    try {
      this.flush();
      const target = this.next_pos;
      // Taken before waiting for the signatures: a handle written meanwhile (a rotation, a new signature to come)
      // stays in unsynced, so this cycle does not close it under a patch still on its way.
      const handles = this.unsynced;
      this.unsynced = [];
      const settling = this.settle_writes();
      if (settling !== null) await settling;
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
      if (synced) this.record_fsync((performance.now() - started) / 1000);
      assert(target >= this.durable_pos, "the durable position only grows");
      assert(target <= this.flushed_pos, "only flushed events become durable");
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
    if (this.failure === null && (this.sync_again || (this.mode === "always" && this.sync_waiters.pending))) this.request_sync();
  }

  private record_fsync(seconds: number): void {
    this.fsync_recent_ms += fsync_average_new_weight * (seconds * 1000 - this.fsync_recent_ms);
    this.stats.fsyncs++;
    this.stats.fsync_seconds_total += seconds;
    if (this.stats.fsync_latencies_s.length < fsync_latencies_max) this.stats.fsync_latencies_s.push(seconds);
  }

  /** A write or fsync failed: after fsync errors the page cache cannot be trusted, so stop writing. */
  fail(err: unknown): InterlogError {
    if (this.failure === null) {
      this.failure = log_failed(err);
      this.on_warning(this.failure.message, { code: errno_code(err) });
      this.on_failed(this.durable_count, err);
      this.flush_waiters.reject_all(this.failure);
      this.sync_waiters.reject_all(this.failure);
    }
    return this.failure;
  }

  /** A clean shutdown is durable in every mode: flush, fsync `active` and everything pending. */
  async close_durably(active: FileHandle | null): Promise<void> {
    this.interval_timer?.cancel();
    if (this.read_only || this.failure !== null) return;
    this.flush();
    if (active !== null) this.wrote(active);
    await this.synced(this.next_pos);
  }

  /** Stops for good: closes retired handles and rejects whoever still waits. */
  stop(): void {
    this.interval_timer?.cancel();
    this.stopped = true;
    for (const handle of this.retired) handle.close();
    this.retired.clear();
    const err = log_closed("the log was closed before these events were durable");
    this.flush_waiters.reject_all(err);
    this.sync_waiters.reject_all(err);
  }
}
