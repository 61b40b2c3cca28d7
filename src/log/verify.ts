import { check_frame, epoch_not_before, flag_signed, frame_bad, frame_end, frame_flags, frame_epoch, frame_has_local, frame_len, frame_origin_hi, frame_origin_lo, frame_seq, frame_size_at, without_local_marks } from "./frame.ts";
import type { KeyRing } from "./key_ring.ts";
import { proof_at, proof_first_seq } from "./proof.ts";
import { OriginCache } from "./scan.ts";
import type { RecoveryReport } from "./recovery.ts";
import type { Segment } from "./segment.ts";

export interface VerifyProblem {
  /** Position of the first bad record, or of the record after which bad bytes were found. */
  pos: number;
  segment: string;
  offset_bytes: number;
  reason: string;
}

export interface VerifyReport {
  ok: boolean;
  events: number;
  segments: number;
  bytes: number;
  first_bad: VerifyProblem | null;
}

/**
 * Re-checks every record (crc, padding, seq order from `floor`, the seqs
 * retention pruned, signed range ends) and every signed range's proof
 * against its origin's key (`keys`); any range that does not verify is
 * reported at its first event. Bytes past a segment's data are not looked
 * at: a recycled segment file holds stale frames there, which recovery
 * tells apart by seq and epoch (scan.ts).
 */
export function verify_segments(segments: readonly Segment[], keys: KeyRing | null = null, floor: ReadonlyMap<string, number> = new Map()): VerifyReport {
  const vv = new Map<string, number>(floor);
  const names = new OriginCache();
  let events = 0;
  let bytes = 0;
  const bad = (pos: number, segment: Segment, offset: number, reason: string): VerifyReport => ({
    ok: false,
    events,
    segments: segments.length,
    bytes,
    first_bad: { pos, segment: segment.file, offset_bytes: offset, reason },
  });
  for (const segment of segments) {
    const { map, view } = segment;
    let at = 0;
    let pos = segment.first_pos;
    let last_flags = flag_signed;
    // Per origin: the offset and position where its open range began in this segment.
    const range_at = new Map<string, { at: number; pos: number; marked: boolean }>();
    // Epochs never go back along a segment (scan.ts); a flipped bit in a local word shows here.
    let epoch_last = -1;
    while (pos < segment.end_pos) {
      const size = check_frame(map, view, at, segment.end_bytes);
      if (size === frame_end || size === frame_bad) {
        return bad(pos, segment, at, size === frame_end ? "record missing (zero length word)" : "crc mismatch or malformed record");
      }
      const origin = names.get(frame_origin_hi(view, at), frame_origin_lo(view, at));
      const seq = frame_seq(view, at);
      const expected = (vv.get(origin) ?? 0) + 1;
      if (seq !== expected) return bad(pos, segment, at, `seq ${seq} of ${origin} where ${expected} was expected`);
      vv.set(origin, seq);
      const epoch = frame_epoch(view, at);
      if (epoch_last >= 0 && !epoch_not_before(epoch, epoch_last)) return bad(pos, segment, at, `record written in epoch ${epoch} after one of epoch ${epoch_last} (a flipped bit in its local word or the one before)`);
      epoch_last = epoch;
      last_flags = frame_flags(view, at);
      let range = range_at.get(origin);
      if (range === undefined) range_at.set(origin, (range = { at, pos, marked: false }));
      if (frame_has_local(view, at)) range.marked = true;
      if ((last_flags & flag_signed) !== 0) {
        range_at.delete(origin);
        if (keys !== null) {
          const problem = check_stored_range(keys, origin, map, range.at, at, range.marked);
          if (problem !== null) return bad(range.pos, segment, range.at, `the signed range of ${origin} ending at seq ${seq} fails its proof: ${problem}`);
        }
      }
      at += size;
      pos++;
      events++;
    }
    if (at !== segment.end_bytes) return bad(pos, segment, at, `records end at offset ${at}, index says ${segment.end_bytes}`);
    if (segment.count > 0 && (last_flags & flag_signed) === 0) return bad(pos - 1, segment, at, "last record does not end a signed range");
    bytes += at;
  }
  return { ok: true, events, segments: segments.length, bytes, first_bad: null };
}

/**
 * verify_segments for a log opened read-only, which repaired nothing: the
 * damage recovery would cut away (a torn tail, stray bytes) is the first
 * problem, unless something earlier is bad too.
 */
export function verify_unrepaired(segments: readonly Segment[], recovery: RecoveryReport, keys: KeyRing | null = null, floor: ReadonlyMap<string, number> = new Map()): VerifyReport {
  const report = verify_segments(segments, keys, floor);
  if (recovery.cut_at_pos === null && recovery.dropped_bytes === 0) return report;
  const active = segments[segments.length - 1];
  if (!report.ok && report.first_bad !== null && report.first_bad.pos < (recovery.cut_at_pos ?? active.end_pos)) return report;
  const reason = recovery.cut_at_pos === null ? `${recovery.dropped_bytes} stray bytes past the last record` : recovery.reason;
  const pos = recovery.bad_at_pos ?? active.end_pos;
  return { ...report, ok: false, first_bad: { pos, segment: active.file, offset_bytes: active.end_bytes, reason } };
}

/**
 * Checks a stored signed range (frames [first_at, end of last_at's frame)
 * of one segment): as stored when no frame carries a local word, else on a
 * copy with the local words zeroed (marks and epochs are this replica's, not signed).
 */
function check_stored_range(keys: KeyRing, origin: string, map: Uint8Array, first_at: number, last_at: number, marked: boolean): string | null {
  const view = new DataView(map.buffer, map.byteOffset, map.byteLength);
  const first_seq = proof_first_seq(view, proof_at(last_at, frame_len(view, last_at)));
  if (first_seq !== frame_seq(view, first_at)) return `its proof covers seqs from ${first_seq}, the range here begins at ${frame_seq(view, first_at)}`;
  if (!marked) return keys.check_range(origin, map, view, first_at, last_at);
  const canonical = without_local_marks(map.subarray(first_at, last_at + frame_size_at(view, last_at)));
  return keys.check_range(origin, canonical, new DataView(canonical.buffer, canonical.byteOffset, canonical.byteLength), 0, last_at - first_at);
}
