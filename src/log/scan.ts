import {
  check_frame,
  epoch_not_before,
  flag_batch_end,
  flag_signed,
  frame_bad,
  frame_crc,
  frame_crc_compute,
  frame_end,
  frame_epoch,
  frame_flags,
  frame_header_bytes,
  frame_header_plausible,
  frame_len,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_of_len,
} from "./frame.ts";
import { origin_from_words } from "./ids.ts";
import type { Segment } from "./segment.ts";

/**
 * Walks a segment's records from the start, checking every crc, and indexes
 * each complete batch whose seqs follow `vv` densely. A batch here is what
 * one write made durable together: frames up to and including a signed one
 * that, for this replica's own frames, also ends one of its batches (an
 * origin may sign inside a big batch, and every flush signs; a replica
 * writes other origins' events in whole signed ranges). So nothing unsigned
 * survives a crash, and an own batch is whole or absent. Stops at the first end
 * marker, bad or torn record, seq out of order, or batch without its end.
 * Updates the segment index and `vv` for what it accepts.
 *
 * Segment files are recycled without zeroing, and a run that crashed may
 * leave frames past where the next run cut the log. Neither may continue
 * it: frames of one batch carry one write epoch, and epochs never go back
 * along a segment (frame.ts local_word); a whole frame whose seq is already
 * held is an earlier use's. Where nothing is pending, stale bytes end the
 * data cleanly; only a frame of the last run (`epoch_last_run`) that is not
 * whole counts as torn.
 */
export interface ScanResult {
  /** Whether the scan ended at a clean end marker on a batch boundary. */
  clean: boolean;
  /** Offset where the unaccepted bytes begin (== segment.end_bytes). */
  cut_bytes: number;
  /** Why it stopped when not clean. */
  reason: string;
  /** Records of the unfinished batch before the bad one (the bad record's pos is the segment end pos plus this). */
  pending_events: number;
  /** Where the scan stopped (the unfinished batch lies between cut_bytes and here). */
  stop_bytes: number;
  /** Epoch of the last batch kept, or -1 when none was. */
  epoch_last: number;
}

/** Turns (hi, lo) into the id string, reusing the last one: runs of one origin allocate nothing. */
export class OriginCache {
  private hi = -1;
  private lo = -1;
  private text = "";
  get(hi: number, lo: number): string {
    if (hi !== this.hi || lo !== this.lo) {
      this.hi = hi;
      this.lo = lo;
      this.text = origin_from_words(hi, lo);
    }
    return this.text;
  }
}

/**
 * `pos_end_max`: batches may end at most there (a log that stopped after a
 * failed fsync proves nothing past its last durable position); the first
 * batch reaching beyond it ends the scan as if torn.
 */
export function scan_segment(segment: Segment, vv: Map<string, number>, pos_end_max = Number.POSITIVE_INFINITY, own = "", epoch_last_run = 0): ScanResult {
  const { map, view } = segment;
  const limit = segment.size_bytes;
  const names = new OriginCache();
  const pending_origin: string[] = [];
  const pending_seq: number[] = [];
  const pending_offset: number[] = [];
  const batch_next = new Map<string, number>();
  let at = 0;
  let reason = "";
  /** Epoch of the last committed batch in this segment (-1: none yet), and of the pending one. */
  let epoch_committed = -1;
  let epoch_batch = -1;
  for (;;) {
    const size = check_frame(map, view, at, limit);
    if (size === frame_end) {
      if (pending_origin.length > 0) reason = `batch without its end record at offset ${at}`;
      break;
    }
    if (size === frame_bad) {
      if (pending_origin.length > 0 || torn_by_last_run(map, view, at, limit, epoch_last_run) || continues_data(view, at, limit, vv, names, epoch_committed, epoch_last_run)) {
        reason = `torn or corrupt record at offset ${at}`;
      }
      break;
    }
    const epoch = frame_epoch(view, at);
    const origin = names.get(frame_origin_hi(view, at), frame_origin_lo(view, at));
    const seq = frame_seq(view, at);
    const expected = batch_next.get(origin) ?? (vv.get(origin) ?? 0) + 1;
    if (pending_origin.length === 0 ? epoch_committed >= 0 && !epoch_not_before(epoch, epoch_committed) : epoch !== epoch_batch) {
      // Stale: before a batch it ends the data (a crashed run's leftover, or an earlier use of the file; a flipped
      // bit in a local word fails its check instead); inside one, the batch is torn.
      if (pending_origin.length > 0) reason = `record ${origin}:${seq} at offset ${at} was written in epoch ${epoch}, after records of epoch ${epoch_batch}`;
      break;
    }
    if (seq !== expected) {
      // A held seq where a batch would begin is an earlier use's frame (a recycled file): the data ends here.
      if (pending_origin.length > 0 || seq > (vv.get(origin) ?? 0)) reason = `record ${origin}:${seq} at offset ${at} does not follow seq ${expected - 1}`;
      break;
    }
    if (pending_origin.length === 0) epoch_batch = epoch;
    batch_next.set(origin, seq + 1);
    pending_origin.push(origin);
    pending_seq.push(seq);
    pending_offset.push(at);
    at += size;
    const flags = frame_flags(view, at - size);
    if ((flags & flag_signed) !== 0 && ((flags & flag_batch_end) !== 0 || origin !== own)) {
      if (segment.end_pos + pending_origin.length > pos_end_max) {
        reason = `the batch ending at offset ${at} lies past position ${pos_end_max}, the last one durable before a write or fsync failed`;
        break;
      }
      for (let i = 0; i < pending_origin.length; i++) {
        segment.note_record(pending_origin[i], pending_seq[i], pending_offset[i]);
        vv.set(pending_origin[i], pending_seq[i]);
      }
      segment.end_bytes = at;
      epoch_committed = epoch_batch;
      pending_origin.length = 0;
      pending_seq.length = 0;
      pending_offset.length = 0;
      batch_next.clear();
    }
  }
  return { clean: reason === "", cut_bytes: segment.end_bytes, reason, pending_events: pending_origin.length, stop_bytes: at, epoch_last: epoch_committed };
}

/**
 * Whether a record that fails its check, where a batch would begin, is the
 * data going on with a damaged len or crc rather than stale bytes: its
 * header (whole local word) names the next seq of its origin, in an epoch
 * not before the data's so far (the last run's, at a segment's start). A
 * flipped bit in the len word of a frame written by an earlier run
 * otherwise read as the end of the data, and the acknowledged events after
 * it vanished without a word, from verify too.
 */
function continues_data(view: DataView, at: number, limit: number, vv: Map<string, number>, names: OriginCache, epoch_committed: number, epoch_last_run: number): boolean {
  if (at + frame_header_bytes > limit || !frame_header_plausible(view, at)) return false;
  const epoch = frame_epoch(view, at);
  if (epoch_committed >= 0 ? !epoch_not_before(epoch, epoch_committed) : epoch !== epoch_last_run) return false;
  const origin = names.get(frame_origin_hi(view, at), frame_origin_lo(view, at));
  return frame_seq(view, at) === (vv.get(origin) ?? 0) + 1;
}

/**
 * Whether a record that is not whole, where a batch would begin, is damage
 * to report rather than stale bytes of the file's earlier use: a torn write
 * of the last run (its header names that run's epoch and a length that
 * fits), or a record whose crc still matches (a flipped bit in its local word).
 */
function torn_by_last_run(bytes: Uint8Array, view: DataView, at: number, limit: number, epoch_last_run: number): boolean {
  if (at + frame_header_bytes > limit) return false;
  const len = frame_len(view, at);
  // len first against the room left: a garbage len near 2^32 must not reach the padding arithmetic or the crc.
  if (len < frame_header_bytes || len > limit - at || at + frame_size_of_len(len) > limit) return false;
  return frame_epoch(view, at) === epoch_last_run || frame_crc_compute(bytes, at, len) === frame_crc(view, at);
}
