import { assert } from "../lib/assert.ts";
import { copy_bytes } from "../lib/bytes.ts";
import { is_interlog_error } from "../lib/errors.ts";
import { CheckedEvents } from "../log/checked_events.ts";
import {
  flag_rejected,
  frame_crc,
  frame_crc_offset,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_len_offset,
  frame_origin_hi,
  frame_origin_lo,
  frame_size_bytes,
  frame_time_ms,
  write_frame_fields,
} from "../log/frame.ts";
import type { SyncCounters } from "./counters.ts";
import type { GapBuffer } from "./gap_buffer.ts";
import type { PeerQuota } from "./peer_quota.ts";
import type { ReplicaLog } from "./replica_log.ts";
import type { DecodedEvents } from "./wire_events.ts";

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
  /** The disk quota for synced events, checked before each batch is appended. */
  quota: PeerQuota;
  pulls: (origin: string) => boolean;
  validate: SyncValidator | null;
  accept_batch_max_bytes: number;
  on_warning: (message: string, details: Record<string, unknown>) => void;
}

const encoder = new TextEncoder();

function bytes_equal(a: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

/**
 * The merge step of design.md section 3 for events already decoded and
 * checked by decode_events: a held seq is a duplicate (different content = a
 * replica-id conflict), held + 1 passes the sync validator and is appended,
 * anything further is parked in the gap buffer. Appends go through
 * log.accept_checked, which copies each payload out of the received message
 * and keeps the origin's crc; no object is made per event.
 */
export class Merger {
  private readonly log: ReplicaLog;
  private readonly counters: SyncCounters;
  private readonly gap: GapBuffer;
  private readonly quota: PeerQuota;
  private readonly pulls: (origin: string) => boolean;
  private readonly validate: SyncValidator | null;
  private readonly accept_batch_max_bytes: number;
  private readonly on_warning: (message: string, details: Record<string, unknown>) => void;
  private warnings = 0;
  private warned_quota = false;

  private readonly batch = new CheckedEvents();
  /** origin -> next seq expected, for events staged in `batch` but not yet in the log. */
  private readonly next = new Map<string, number>();
  private failed = false;

  constructor(options: MergeOptions) {
    this.log = options.log;
    this.counters = options.counters;
    this.gap = options.gap;
    this.quota = options.quota;
    this.pulls = options.pulls;
    this.validate = options.validate;
    this.accept_batch_max_bytes = options.accept_batch_max_bytes;
    this.on_warning = options.on_warning;
  }

  /**
   * Merges every event of `d` (checked beforehand). `note` sees, per run,
   * the highest (origin, seq) the sender evidently holds. Returns the events
   * appended.
   */
  merge(d: DecodedEvents, from: string, now_ms: number, note: (origin: string, seq: number) => void): number {
    assert(this.batch.count === 0 && this.next.size === 0, "no merge in progress");
    const me = this.log.id;
    const appended_before = this.counters.events_appended;
    this.failed = false;
    for (let r = 0; r < d.run_first.length && !this.failed; r++) {
      const first = d.run_first[r];
      const end = r + 1 < d.run_first.length ? d.run_first[r + 1] : d.count;
      const origin = d.origin[first];
      note(origin, d.seq[end - 1]);
      if (origin === me) {
        for (let i = first; i < end; i++) {
          if (d.seq[i] <= this.log.held(me)) this.duplicate(d, i);
          else this.counters.events_dropped.own_origin++;
        }
        continue;
      }
      if (!this.pulls(origin)) {
        this.counters.events_dropped.not_pulled += end - first;
        continue;
      }
      for (let i = first; i < end && !this.failed; i++) {
        const seq = d.seq[i];
        const expected = this.next.get(origin) ?? this.log.held(origin) + 1;
        if (seq < expected) {
          if (seq <= this.log.held(origin)) this.duplicate(d, i);
          else this.counters.events_duplicate++;
        } else if (seq > expected) {
          const refused = this.gap.put(origin, seq, rebuild_frame(d, i), now_ms, from);
          if (refused === null) this.counters.events_buffered++;
          else this.counters.events_dropped[refused]++;
        } else {
          this.stage(origin, d.origin_hi[i], d.origin_lo[i], seq, d.time_ms[i], d.flags[i], d.crc[i], d.src[i], d.start[i], d.end[i], from);
          this.drain(origin, from);
        }
      }
    }
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
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      this.stage(
        origin,
        frame_origin_hi(view, 0),
        frame_origin_lo(view, 0),
        seq,
        frame_time_ms(view, 0),
        frame_flags(view, 0),
        frame_crc(view, 0),
        frame,
        frame_header_bytes,
        frame_len(view, 0),
        from,
      );
    }
  }

  private stage(
    origin: string,
    hi: number,
    lo: number,
    seq: number,
    time_ms: number,
    flags: number,
    crc: number,
    src: Uint8Array,
    start: number,
    end: number,
    from: string,
  ): void {
    if ((flags & flag_rejected) === 0 && this.validate !== null) {
      let problem: string | null;
      try {
        problem = this.validate(src.subarray(start, end), { origin, seq, time_ms, from });
      } catch (err) {
        problem = `validator failed: ${String(err)}`;
      }
      // A validator sees the received bytes themselves; should it change them, the crc must follow, or recovery would cut the log there.
      crc = -1;
      if (problem !== null) {
        src = encoder.encode(problem).subarray(0, rejection_message_max_bytes);
        start = 0;
        end = src.length;
        flags = flag_rejected;
        crc = -1;
        this.counters.events_rejected++;
      }
    }
    if (this.gap.has_origin(origin)) this.gap.take(origin, seq);
    this.batch.push(origin, hi, lo, seq, time_ms, flags, crc, src, start, end);
    this.next.set(origin, seq + 1);
    if (this.batch.frame_bytes >= this.accept_batch_max_bytes) this.flush();
  }

  private flush(): void {
    const batch = this.batch;
    if (batch.count === 0) return;
    if (!this.failed) this.accept(batch);
    batch.clear();
  }

  /** Appends a staged batch, halving it when the log says it does not fit in one segment. */
  private accept(batch: CheckedEvents): void {
    if (!this.quota.admits(batch.frame_bytes)) {
      // Other origins' events would pass their share of the disk: take what fits, drop the rest of this message; nothing is asked for until there is room.
      const room = this.quota.room_bytes();
      let fits = 0;
      for (let bytes = 0; fits < batch.count; fits++) {
        bytes += frame_size_bytes(batch.end[fits] - batch.start[fits]);
        if (bytes > room) break;
      }
      if (fits > 0) this.accept(prefix(batch, fits));
      this.quota.refused();
      this.failed = true;
      this.next.clear();
      this.counters.events_dropped.peer_quota += batch.count - fits;
      if (this.warned_quota) return;
      this.warned_quota = true;
      this.on_warning(`synced events reached their disk quota (replication.peer_events_max, ${this.quota.max_bytes} bytes); events from peers are dropped, local appends keep the rest of the disk`, {
        peer_events_max_bytes: this.quota.max_bytes,
      });
      return;
    }
    try {
      const appended = this.log.accept_checked(batch);
      this.counters.events_appended += appended;
      this.counters.events_duplicate += batch.count - appended;
    } catch (err) {
      if (is_interlog_error(err, "BATCH_TOO_LARGE") && batch.count > 1) {
        const [first, second] = batch.halves();
        this.accept(first);
        if (!this.failed) this.accept(second);
        return;
      }
      // The log is full, failed or closed: stop this message; repair fetches the rest later.
      this.failed = true;
      this.next.clear();
      this.counters.events_dropped.log_error += batch.count;
      this.warn("the log refused events received from a peer; they will be fetched again", { error: String(err) });
    }
  }

  private duplicate(d: DecodedEvents, i: number): void {
    this.counters.events_duplicate++;
    if ((d.flags[i] & flag_rejected) !== 0) return;
    const origin = d.origin[i];
    const seq = d.seq[i];
    const local = this.log.get(origin, seq);
    if (local === null || local.rejected) return;
    if (local.time_ms === d.time_ms[i] && bytes_equal(local.payload, d.src[i], d.start[i], d.end[i])) return;
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

/** The first `count` events of `batch`, as a batch of their own. */
function prefix(batch: CheckedEvents, count: number): CheckedEvents {
  const part = new CheckedEvents();
  for (let i = 0; i < count; i++) {
    part.push(batch.origin[i], batch.origin_hi[i], batch.origin_lo[i], batch.seq[i], batch.time_ms[i], batch.flags[i], batch.crc[i], batch.src[i], batch.start[i], batch.end[i]);
  }
  return part;
}

/** The record frame event i of `d` was on its origin's disk (a copy, for the gap buffer). */
function rebuild_frame(d: DecodedEvents, i: number): Uint8Array {
  const start = d.start[i];
  const payload_bytes = d.end[i] - start;
  const frame = new Uint8Array(frame_size_bytes(payload_bytes));
  copy_bytes(d.src[i], start, d.end[i], frame, frame_header_bytes);
  const view = new DataView(frame.buffer);
  write_frame_fields(view, 0, d.origin_hi[i], d.origin_lo[i], d.seq[i], d.time_ms[i], d.flags[i]);
  view.setUint32(frame_crc_offset, d.crc[i], true);
  view.setUint32(frame_len_offset, frame_header_bytes + payload_bytes, true);
  return frame;
}
