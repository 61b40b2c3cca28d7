import { assert } from "../lib/assert.ts";
import { copy_bytes } from "../lib/bytes.ts";
import { is_interlog_error } from "../lib/errors.ts";
import { CheckedEvents } from "../log/checked_events.ts";
import {
  flag_rejected,
  flag_signed,
  frame_crc,
  frame_crc_offset,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_len_offset,
  frame_origin_hi,
  frame_origin_lo,
  frame_size_bytes,
  frame_seq,
  frame_size_of_len,
  frame_time_ms,
  proof_bytes,
  write_frame_fields,
} from "../log/frame.ts";
import type { ProofProblem, RangeCheck } from "../log/key_ring.ts";
import { proof_at, proof_first_seq } from "../log/proof.ts";
import type { Conflicts } from "./conflicts.ts";
import type { RejectionMessages } from "./rejections.ts";
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

/** Log errors are reported to on_warning at most this many times (conflicts: see conflicts.ts). */
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
  /** Replica-id conflicts seen, by origin (shared with the replicator's status). */
  conflicts: Conflicts;
  /** The validators' messages of recent rejections (for /api/quarantine). */
  rejections: RejectionMessages;
  on_warning: (message: string, details: Record<string, unknown>) => void;
}

function bytes_equal(a: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

/**
 * The merge step of design.md section 3 for events already decoded and
 * checked by decode_events and keep_signed_ranges (whole signed ranges, each
 * verified): a held seq is a duplicate (different content = a replica-id
 * conflict), held + 1 passes the sync validator and is appended, anything
 * further is parked in the gap buffer. An event the validator refuses is
 * kept as the origin wrote it, marked rejected (quarantined): the origin's
 * chain and its proof stay whole for every replica downstream, which runs
 * its own validators. Appends go through log.accept_checked in whole signed
 * ranges, which copies each frame out of the received message and keeps the
 * origin's crc; no object is made per event.
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
  private readonly conflicts: Conflicts;
  private readonly rejections: RejectionMessages;
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
    this.conflicts = options.conflicts;
    this.rejections = options.rejections;
  }

  /**
   * Merges every event of `d` (checked beforehand). `note` sees, per run,
   * the highest (origin, seq) the sender evidently holds. Returns the events
   * appended. In steps: yields the signature checks of parked ranges joined
   * again (drain) and takes back whether each verified, so the replicator
   * verifies them as it verifies a message's ranges (on a device at once,
   * in a browser with WebCrypto).
   */
  *merge_steps(d: DecodedEvents, from: string, now_ms: number, note: (origin: string, seq: number) => void): Generator<RangeCheck[], number, boolean[]> {
    assert(this.batch.count === 0 && this.next.size === 0, "no merge in progress");
    try {
      return yield* this.merge_runs(d, from, now_ms, note);
    } finally {
      // Whatever happened, the next message starts clean.
      this.batch.clear();
      this.next.clear();
    }
  }

  private *merge_runs(d: DecodedEvents, from: string, now_ms: number, note: (origin: string, seq: number) => void): Generator<RangeCheck[], number, boolean[]> {
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
          if (d.seq[i] <= this.log.held(me)) this.duplicate(d, i, from, now_ms);
          else this.counters.events_dropped.own_origin++;
        }
        continue;
      }
      if (!this.pulls(origin)) {
        this.counters.events_dropped.not_pulled += end - first;
        continue;
      }
      // Whole signed ranges: keep_signed_ranges left no other events.
      for (let i = first; i < end && !this.failed; ) {
        let k = i;
        while ((d.flags[k] & flag_signed) === 0) k++;
        assert(k < end, "a run holds whole signed ranges");
        yield* this.merge_range(d, i, k, from, now_ms);
        i = k + 1;
      }
    }
    this.flush();
    this.next.clear();
    return this.counters.events_appended - appended_before;
  }

  /** Merges the signed range d[i..k] (one origin's consecutive seqs, event k signed). */
  private *merge_range(d: DecodedEvents, i: number, k: number, from: string, now_ms: number): Generator<RangeCheck[], void, boolean[]> {
    const origin = d.origin[i];
    const held = this.log.held(origin);
    const expected = this.next.get(origin) ?? held + 1;
    if (d.seq[k] < expected) {
      for (let j = i; j <= k; j++) {
        if (d.seq[j] <= held) this.duplicate(d, j, from, now_ms);
        else this.counters.events_duplicate++;
      }
    } else if (d.seq[i] < expected) {
      // Ranges of one origin never overlap but at their ends: another holder of its key wrote these seqs differently.
      this.counters.events_dropped.conflict += k - i + 1;
      this.conflict(origin, d.seq[i], from, now_ms, `events ${origin}:${d.seq[i]}..${d.seq[k]} arrived signed in a range that overlaps the one held`);
    } else if (d.seq[i] > expected) {
      for (let j = i; j <= k; j++) {
        const refused = this.gap.put(origin, d.seq[j], rebuild_frame(d, j), now_ms, from);
        if (refused === null) this.counters.events_buffered++;
        else this.counters.events_dropped[refused]++;
      }
    } else {
      for (let j = i; j <= k; j++) this.stage(origin, d.origin_hi[j], d.origin_lo[j], d.seq[j], d.time_ms[j], d.flags[j], d.crc[j], d.src[j], d.start[j], d.end[j], from);
      yield* this.drain(origin, from, now_ms);
    }
  }

  /** Appends parked frames that now continue origin's chain, whole ranges only (the rest of a cut one is fetched again). */
  private *drain(origin: string, from: string, now_ms: number): Generator<RangeCheck[], void, boolean[]> {
    const range: Uint8Array[] = [];
    for (;;) {
      const seq = (this.next.get(origin) as number) + range.length;
      const frame = this.failed ? undefined : this.gap.take(origin, seq);
      if (frame === undefined) {
        if (range.length > 0) this.counters.events_dropped.partial_range += range.length;
        return;
      }
      range.push(frame);
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      if ((frame_flags(view, 0) & flag_signed) === 0) continue;
      // Parked frames came in verified ranges, but perhaps of two holders of one key (a clone) with parts refused by the
      // buffer's limits: the frames joined here are checked again as the range they now make.
      const joined = new Uint8Array(Buffer.concat(range));
      const jview = new DataView(joined.buffer);
      const last_at = joined.length - frame.length;
      let problem: ProofProblem | "partial_range" | null = "partial_range";
      if (proof_first_seq(jview, proof_at(last_at, frame_len(jview, last_at))) === (this.next.get(origin) as number)) {
        const check = this.log.keys.prepare_range(origin, joined, jview, 0, last_at);
        problem = typeof check === "string" ? check : this.log.keys.settle(check, (yield [check])[0] === true);
      }
      if (problem !== null) {
        if (problem === "bad_signature") {
          this.counters.events_dropped.conflict += range.length;
          this.conflict(origin, seq, from, now_ms, `parked events ${origin}:${this.next.get(origin)}..${seq} do not make one signed range`);
        } else this.counters.events_dropped.partial_range += range.length;
        return;
      }
      for (const f of range) {
        const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
        this.stage(origin, frame_origin_hi(v, 0), frame_origin_lo(v, 0), frame_seq(v, 0), frame_time_ms(v, 0), frame_flags(v, 0), frame_crc(v, 0), f, frame_header_bytes, frame_len(v, 0), from);
      }
      range.length = 0;
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
    if (this.validate !== null) {
      // A validator sees the payload only, never the proof, and a copy: what is stored must stay the origin's signed bytes.
      const payload_end = (flags & flag_signed) !== 0 ? end - proof_bytes : end;
      let problem: string | null;
      try {
        problem = this.validate(src.slice(start, payload_end), { origin, seq, time_ms, from });
      } catch (err) {
        problem = `validator failed: ${String(err)}`;
      }
      if (problem !== null) {
        flags |= flag_rejected;
        this.counters.events_rejected++;
        this.rejections.note(origin, seq, problem);
      }
    }
    if (this.gap.has_origin(origin)) this.gap.take(origin, seq);
    this.batch.push(origin, hi, lo, seq, time_ms, flags, crc, src, start, end);
    this.next.set(origin, seq + 1);
    // The log takes whole signed ranges only.
    if ((flags & flag_signed) !== 0 && this.batch.frame_bytes >= this.accept_batch_max_bytes) this.flush();
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
      // The longest prefix of whole ranges that fits.
      let fits = 0;
      for (let i = 0, bytes = 0; i < batch.count; i++) {
        bytes += frame_size_bytes(batch.end[i] - batch.start[i]);
        if (bytes > room) break;
        if ((batch.flags[i] & flag_signed) !== 0) fits = i + 1;
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
      const halves = is_interlog_error(err, "BATCH_TOO_LARGE") ? batch.halves() : null;
      if (halves !== null) {
        const [first, second] = halves;
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

  private duplicate(d: DecodedEvents, i: number, from: string, now_ms: number): void {
    this.counters.events_duplicate++;
    const origin = d.origin[i];
    const seq = d.seq[i];
    const local = this.log.get(origin, seq);
    if (local === null) return;
    const payload_end = (d.flags[i] & flag_signed) !== 0 ? d.end[i] - proof_bytes : d.end[i];
    if (local.time_ms === d.time_ms[i] && bytes_equal(local.payload, d.src[i], d.start[i], payload_end)) return;
    this.conflict(origin, seq, from, now_ms, `event ${origin}:${seq} arrived, signed, with content different from the one held`);
  }

  /** A replica-id conflict: counted, remembered by origin, and named in the log (rate-limited, see conflicts.ts). */
  private conflict(origin: string, seq: number, from: string, now_ms: number, what: string): void {
    this.counters.conflicts++;
    if (!this.conflicts.note(origin, seq, from, now_ms)) return;
    this.on_warning(
      `replica-id conflict: ${what}; two devices hold the key of replica ${origin} and write different events (was its data directory copied, e.g. an SD card cloned?). Keep one of them; give the other a new data directory (interlog init)`,
      { origin, seq, from },
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
  const body_bytes = d.end[i] - start;
  const frame = new Uint8Array(frame_size_of_len(frame_header_bytes + body_bytes));
  copy_bytes(d.src[i], start, d.end[i], frame, frame_header_bytes);
  const view = new DataView(frame.buffer);
  write_frame_fields(view, 0, d.origin_hi[i], d.origin_lo[i], d.seq[i], d.time_ms[i], d.flags[i]);
  view.setUint32(frame_crc_offset, d.crc[i], true);
  view.setUint32(frame_len_offset, frame_header_bytes + body_bytes, true);
  return frame;
}
