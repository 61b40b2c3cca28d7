import { check_frame, flag_batch_end, flag_signed, frame_bad, frame_end, frame_flags, frame_origin_hi, frame_origin_lo, frame_seq } from "./frame.ts";
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
export function scan_segment(segment: Segment, vv: Map<string, number>, pos_end_max = Number.POSITIVE_INFINITY, own = ""): ScanResult {
  const { map, view } = segment;
  const limit = segment.size_bytes;
  const names = new OriginCache();
  const pending_origin: string[] = [];
  const pending_seq: number[] = [];
  const pending_offset: number[] = [];
  const batch_next = new Map<string, number>();
  let at = 0;
  let reason = "";
  for (;;) {
    const size = check_frame(map, view, at, limit);
    if (size === frame_end) {
      if (pending_origin.length > 0) reason = `batch without its end record at offset ${at}`;
      break;
    }
    if (size === frame_bad) {
      reason = `torn or corrupt record at offset ${at}`;
      break;
    }
    const origin = names.get(frame_origin_hi(view, at), frame_origin_lo(view, at));
    const seq = frame_seq(view, at);
    const expected = batch_next.get(origin) ?? (vv.get(origin) ?? 0) + 1;
    if (seq !== expected) {
      reason = `record ${origin}:${seq} at offset ${at} does not follow seq ${expected - 1}`;
      break;
    }
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
      pending_origin.length = 0;
      pending_seq.length = 0;
      pending_offset.length = 0;
      batch_next.clear();
    }
  }
  return { clean: reason === "", cut_bytes: segment.end_bytes, reason, pending_events: pending_origin.length };
}
