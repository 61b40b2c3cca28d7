import { assert } from "../lib/assert.ts";
import { is_interlog_error } from "../lib/errors.ts";
import {
  flag_rejected,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_bytes,
  frame_time_ms,
} from "../log/frame.ts";
import { origin_from_words } from "../log/ids.ts";
import type { IncomingEvent } from "../log/log.ts";
import type { SyncCounters } from "./counters.ts";
import type { GapBuffer } from "./gap_buffer.ts";
import type { ReplicaLog } from "./replica_log.ts";

/** A sync validator (design.md section 4): an error message, or null when the event is fine. */
export type SyncValidator = (payload: Uint8Array, ctx: SyncValidationContext) => string | null;

export interface SyncValidationContext {
  origin: string;
  seq: number;
  time_ms: number;
  /** The peer the event came from (not necessarily its origin). */
  from: string;
}

/** A rejected placeholder keeps at most this much of the validator's message. */
export const rejection_message_max_bytes = 1024;
/** Conflicts and log errors are reported to on_warning at most this many times each. */
const warnings_max = 20;

export interface MergeOptions {
  log: ReplicaLog;
  counters: SyncCounters;
  gap: GapBuffer;
  pulls: (origin: string) => boolean;
  validate: SyncValidator | null;
  accept_batch_max_bytes: number;
  on_warning: (message: string, details: Record<string, unknown>) => void;
}

const encoder = new TextEncoder();

function bytes_equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The merge step of design.md section 3 for frames already checked by
 * check_frames: a held seq is a duplicate (different content = a replica-id
 * conflict), held + 1 passes the sync validator and is appended, anything
 * further is parked in the gap buffer. Appends go through log.accept_batch,
 * which copies the payload out of the received message.
 */
export class Merger {
  private readonly log: ReplicaLog;
  private readonly counters: SyncCounters;
  private readonly gap: GapBuffer;
  private readonly pulls: (origin: string) => boolean;
  private readonly validate: SyncValidator | null;
  private readonly accept_batch_max_bytes: number;
  private readonly on_warning: (message: string, details: Record<string, unknown>) => void;
  private warnings = 0;

  private batch: IncomingEvent[] = [];
  private batch_bytes = 0;
  /** origin -> next seq expected, for events staged in `batch` but not yet in the log. */
  private readonly next = new Map<string, number>();
  private failed = false;

  constructor(options: MergeOptions) {
    this.log = options.log;
    this.counters = options.counters;
    this.gap = options.gap;
    this.pulls = options.pulls;
    this.validate = options.validate;
    this.accept_batch_max_bytes = options.accept_batch_max_bytes;
    this.on_warning = options.on_warning;
  }

  /**
   * Merges every frame of `frames` (checked beforehand). `note` sees each
   * (origin, seq) the sender evidently holds. Returns the events appended.
   */
  merge(frames: Uint8Array, from: string, now_ms: number, note: (origin: string, seq: number) => void): number {
    assert(this.batch.length === 0 && this.next.size === 0, "no merge in progress");
    const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
    const me = this.log.id;
    const appended_before = this.counters.events_appended;
    this.failed = false;
    let hi = -1;
    let lo = -1;
    let origin = "";
    /** Highest seq seen in the current run of one origin's frames, reported to `note` once per run. */
    let noted_seq = 0;
    let at = 0;
    while (at < frames.length && !this.failed) {
      const size = frame_size_bytes(frame_len(view, at) - frame_header_bytes);
      const h = frame_origin_hi(view, at);
      const l = frame_origin_lo(view, at);
      if (h !== hi || l !== lo) {
        if (noted_seq > 0) note(origin, noted_seq);
        noted_seq = 0;
        hi = h;
        lo = l;
        origin = origin_from_words(h, l);
      }
      const seq = frame_seq(view, at);
      if (seq > noted_seq) noted_seq = seq;
      if (origin === me) {
        if (seq <= this.log.held(me)) this.duplicate(origin, seq, frames, view, at);
        else this.counters.events_dropped.own_origin++;
      } else if (!this.pulls(origin)) {
        this.counters.events_dropped.not_pulled++;
      } else {
        const expected = this.next.get(origin) ?? this.log.held(origin) + 1;
        if (seq < expected) {
          if (seq <= this.log.held(origin)) this.duplicate(origin, seq, frames, view, at);
          else this.counters.events_duplicate++;
        } else if (seq > expected) {
          if (this.gap.put(origin, seq, frames.subarray(at, at + size), now_ms)) this.counters.events_buffered++;
          else this.counters.events_dropped.gap_buffer_full++;
        } else {
          this.stage(origin, seq, frames, view, at, from);
          this.drain(origin, from);
        }
      }
      at += size;
    }
    if (noted_seq > 0) note(origin, noted_seq);
    this.flush();
    this.next.clear();
    return this.counters.events_appended - appended_before;
  }

  /** Appends parked frames that now continue origin's chain. */
  private drain(origin: string, from: string): void {
    for (;;) {
      const seq = this.next.get(origin) as number;
      const frame = this.gap.take(origin, seq);
      if (frame === undefined || this.failed) return;
      this.stage(origin, seq, frame, new DataView(frame.buffer, frame.byteOffset, frame.byteLength), 0, from);
    }
  }

  private stage(origin: string, seq: number, bytes: Uint8Array, view: DataView, at: number, from: string): void {
    const len = frame_len(view, at);
    const time_ms = frame_time_ms(view, at);
    let flags = frame_flags(view, at) & flag_rejected;
    let payload = bytes.subarray(at + frame_header_bytes, at + len);
    if (flags === 0 && this.validate !== null) {
      let problem: string | null;
      try {
        problem = this.validate(payload, { origin, seq, time_ms, from });
      } catch (err) {
        problem = `validator failed: ${String(err)}`;
      }
      if (problem !== null) {
        payload = encoder.encode(problem).subarray(0, rejection_message_max_bytes);
        flags = flag_rejected;
        this.counters.events_rejected++;
      }
    }
    if (this.gap.has_origin(origin)) this.gap.take(origin, seq);
    this.batch.push({ origin, seq, time_ms, payload, flags });
    this.batch_bytes += frame_size_bytes(payload.length);
    this.next.set(origin, seq + 1);
    if (this.batch_bytes >= this.accept_batch_max_bytes) this.flush();
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = [];
    this.batch_bytes = 0;
    if (batch.length === 0 || this.failed) return;
    this.accept(batch);
  }

  /** Appends a staged batch, halving it when the log says it does not fit in one segment. */
  private accept(batch: IncomingEvent[]): void {
    try {
      const results = this.log.accept_batch(batch);
      for (const r of results) {
        if (r === "appended") this.counters.events_appended++;
        else this.counters.events_duplicate++;
      }
    } catch (err) {
      if (is_interlog_error(err, "BATCH_TOO_LARGE") && batch.length > 1) {
        const half = batch.length >> 1;
        this.accept(batch.slice(0, half));
        if (!this.failed) this.accept(batch.slice(half));
        return;
      }
      // The log is full, failed or closed: stop this message; repair fetches the rest later.
      this.failed = true;
      this.next.clear();
      this.counters.events_dropped.log_error += batch.length;
      this.warn("the log refused events received from a peer; they will be fetched again", { error: String(err) });
    }
  }

  private duplicate(origin: string, seq: number, bytes: Uint8Array, view: DataView, at: number): void {
    this.counters.events_duplicate++;
    if ((frame_flags(view, at) & flag_rejected) !== 0) return;
    const local = this.log.get(origin, seq);
    if (local === null || local.rejected) return;
    const payload = bytes.subarray(at + frame_header_bytes, at + frame_len(view, at));
    if (local.time_ms === frame_time_ms(view, at) && bytes_equal(local.payload, payload)) return;
    this.counters.conflicts++;
    this.warn(
      `replica-id conflict: event ${origin}:${seq} arrived with content different from the one held; two devices may share the replica id ${origin} (was a data directory copied?)`,
      { origin, seq },
    );
  }

  private warn(message: string, details: Record<string, unknown>): void {
    if (this.warnings >= warnings_max) return;
    this.warnings++;
    this.on_warning(message, details);
  }
}
