import path from "node:path";
import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";
import { errno_code } from "../lib/errors.ts";
import type { FileIO } from "./file_io.ts";
import { io_error, log_full } from "./log_errors.ts";
import type { Warn } from "./log_options.ts";
import { type Segment, segment_file_name, summary_file_name } from "./segment.ts";

/**
 * The segment files of one log directory: creating them (reading as zeros,
 * every block allocated, never sparse, so a full disk shows here and not as
 * SIGBUS mid-write; see FileIO.create_zeroed), the spare made ahead of need so
 * rotation only renames, and summaries of sealed segments. Disk-full becomes
 * LOG_FULL here and nowhere else.
 */

export const spare_file_name = "spare";
/** Written when a write or fsync fails: the last durable position, beyond which the next open trusts nothing. */
export const failure_marker_name = "failed.json";
export const segments_dir_name = "segments";

/** Whether a failed file operation means "no space" (a full disk, or a quota). */
export function is_disk_full(err: unknown): boolean {
  const code = errno_code(err);
  return code === "ENOSPC" || code === "EDQUOT";
}

/** The error for a segment file that could not be made: LOG_FULL when the disk is full, IO_ERROR otherwise. */
export function segment_create_error(io: FileIO, segments_dir: string, file: string, segment_size_bytes: number, err: unknown): Error {
  if (is_disk_full(err)) return log_full(segment_size_bytes, segments_dir, io.free_bytes(segments_dir), err);
  return io_error(`could not create segment ${file}`, err);
}

/** Creates segment `first_pos` (zero-filled, fsynced, directory fsynced) when the directory holds none. */
export async function create_first_segment(io: FileIO, segments_dir: string, segment_size_bytes: number, first_pos = 0): Promise<string> {
  const file = path.join(segments_dir, segment_file_name(first_pos));
  const tmp = `${file}.tmp`;
  try {
    await io.create_zeroed(tmp, segment_size_bytes);
  } catch (err) {
    throw segment_create_error(io, segments_dir, file, segment_size_bytes, err);
  }
  io.rename(tmp, file);
  await io.sync_dir(segments_dir);
  return file;
}

/**
 * Records that the log stopped after a failed write or fsync with events
 * durable up to `durable_pos`. The kernel may already have dropped the pages
 * it failed to write while the page cache still shows them, and a later fsync
 * on a new descriptor succeeds without writing them: only this marker tells
 * the next open not to call that tail durable.
 */
export async function write_failure_marker(io: FileIO, segments_dir: string, durable_pos: number, cause: unknown): Promise<void> {
  const body = { durable_pos, error: errno_code(cause) ?? String(cause) };
  await io.write_file_atomic(path.join(segments_dir, failure_marker_name), new TextEncoder().encode(`${JSON.stringify(body)}\n`));
}

/** The durable position a failure marker holds, or null when there is none (or it is unreadable: then it was never made durable). */
export function read_failure_marker(io: FileIO, segments_dir: string): number | null {
  const bytes = io.read_file(path.join(segments_dir, failure_marker_name));
  if (bytes === null) return null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { durable_pos?: unknown };
    return typeof parsed.durable_pos === "number" && Number.isSafeInteger(parsed.durable_pos) && parsed.durable_pos >= 0 ? parsed.durable_pos : null;
  } catch {
    return null;
  }
}

/** Once recovery has made the log durable without the untrusted tail, the marker goes. */
export async function remove_failure_marker(io: FileIO, segments_dir: string): Promise<void> {
  io.unlink(path.join(segments_dir, failure_marker_name));
  await io.sync_dir(segments_dir);
}

export interface SegmentFilesInit {
  io: FileIO;
  segments_dir: string;
  segment_size_bytes: number;
  segment_retry_interval_ms: number;
  clock: Clock;
  on_warning: Warn;
}

export class SegmentFiles {
  readonly segments_dir: string;
  private readonly io: FileIO;
  private readonly segment_size_bytes: number;
  private readonly segment_retry_interval_ms: number;
  private readonly clock: Clock;
  private readonly on_warning: Warn;
  private readonly spare_file: string;

  private spare_ready = false;
  private spare_job: Promise<void> | null = null;
  /** When making a segment last failed; appends fail fast until segment_retry_interval_ms has passed. */
  private failed_at_ms = Number.NEGATIVE_INFINITY;
  private stopping = false;

  constructor(init: SegmentFilesInit) {
    this.io = init.io;
    this.segments_dir = init.segments_dir;
    this.segment_size_bytes = init.segment_size_bytes;
    this.segment_retry_interval_ms = init.segment_retry_interval_ms;
    this.clock = init.clock;
    this.on_warning = init.on_warning;
    this.spare_file = path.join(this.segments_dir, spare_file_name);
  }

  /**
   * Makes the file of segment `first_pos` and returns its path: the spare
   * renamed into place, or a new file made right now when none is ready.
   * Throws LOG_FULL (and leaves nothing behind) when no segment can be made.
   */
  make_next(first_pos: number, may_grow: () => void = () => {}): string {
    const file = path.join(this.segments_dir, segment_file_name(first_pos));
    this.take_spare_as(file, may_grow);
    return file;
  }

  /** `may_grow` throws when a new file would break the disk budget. */
  private take_spare_as(file: string, may_grow: () => void): void {
    if (this.spare_ready) {
      this.spare_ready = false;
      this.io.rename(this.spare_file, file);
      return;
    }
    may_grow();
    if (this.clock.now_ms() - this.failed_at_ms < this.segment_retry_interval_ms) {
      throw log_full(this.segment_size_bytes, this.segments_dir, this.io.free_bytes(this.segments_dir));
    }
    const tmp = `${file}.tmp`;
    try {
      this.io.create_zeroed_sync(tmp, this.segment_size_bytes);
      this.io.rename(tmp, file);
    } catch (err) {
      this.io.unlink(tmp);
      this.failed_at_ms = this.clock.now_ms();
      throw segment_create_error(this.io, this.segments_dir, file, this.segment_size_bytes, err);
    }
    this.failed_at_ms = Number.NEGATIVE_INFINITY;
  }

  /** Whether a spare is ready or being made. */
  get has_spare(): boolean {
    return this.spare_ready || this.spare_job !== null || (!this.stopping && this.io.exists(this.spare_file));
  }

  /** Whether a spare file exists (ready, or left by the last run), for the disk budget. */
  get spare_exists(): boolean {
    return this.spare_ready || this.spare_job !== null || this.io.exists(this.spare_file);
  }

  /**
   * Takes a pruned segment file as the spare, without writing to it: its
   * frames are stale (every seq in it is held, and recovery ends the data at
   * them, scan.ts). Returns false when a spare exists already (the caller
   * removes the file). The rename is made durable by the caller's directory fsync.
   */
  recycle(file: string): boolean {
    if (this.has_spare || this.stopping) return false;
    if (this.io.size_bytes(file) !== this.segment_size_bytes) return false;
    this.io.rename(file, this.spare_file);
    this.spare_ready = true;
    return true;
  }

  /**
   * Prepares the next segment file in the background so rotation only
   * renames it. `may_grow` says whether a new file fits the disk budget;
   * when it does not, a spare comes only from recycle().
   */
  prepare_spare(may_grow: () => boolean = () => true): void {
    if (this.spare_ready || this.spare_job !== null || this.stopping) return;
    // A spare left by the last run may hold frames a power cut kept while it reverted a rotation's rename:
    // frames of the log's own newest seqs, which would continue it. Its first len word is zeroed (durably)
    // before it is used; any frame after the next append's belongs to an older epoch and ends the scan.
    if (this.io.exists(this.spare_file)) {
      this.spare_job = this.clear_leftover_spare().finally(() => {
        this.spare_job = null;
      });
      return;
    }
    if (!may_grow()) return;
    const tmp = `${this.spare_file}.tmp`;
    this.spare_job = (async () => {
      try {
        await this.io.create_zeroed(tmp, this.segment_size_bytes, () => this.stopping);
        if (this.stopping) {
          this.io.unlink(tmp);
          return;
        }
        this.io.rename(tmp, this.spare_file);
        this.spare_ready = true;
      } catch (err) {
        try {
          this.io.unlink(tmp);
        } catch {
          // Left for the next open, which removes *.tmp files.
        }
        if (!this.stopping) {
          this.failed_at_ms = this.clock.now_ms();
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

  private async clear_leftover_spare(): Promise<void> {
    try {
      if (this.io.size_bytes(this.spare_file) !== this.segment_size_bytes) {
        this.io.unlink(this.spare_file);
        return;
      }
      const handle = this.io.open(this.spare_file);
      try {
        handle.write(new Uint8Array(8), 0, 8, 0);
        await handle.sync();
      } finally {
        handle.close();
      }
      if (!this.stopping) this.spare_ready = true;
    } catch (err) {
      this.on_warning("could not check the spare segment left by the last run; it is made anew", { error: String(err) });
      try {
        this.io.unlink(this.spare_file);
      } catch {
        // The next open tries again.
      }
    }
  }

  /** Persists a sealed, durable segment's summary so the next open need not scan it. */
  async write_summary(segment: Segment): Promise<void> {
    assert(segment.sealed, "only sealed segments get a summary");
    await this.io.write_file_atomic(path.join(this.segments_dir, summary_file_name(segment.first_pos)), segment.summary_bytes());
  }

  /** Stops making spares (a spare being made is abandoned) and waits for the background job. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.spare_job;
  }
}
