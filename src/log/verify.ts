import { check_frame, flag_signed, frame_bad, frame_end, frame_flags, frame_origin_hi, frame_origin_lo, frame_seq } from "./frame.ts";
import { OriginCache } from "./scan.ts";
import type { RecoveryReport } from "./recovery.ts";
import type { Segment } from "./segment.ts";
import { first_nonzero } from "./zero.ts";

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

/** Re-checks every record (crc, padding, seq order, batch ends) and that every byte past the data is zero. */
export function verify_segments(segments: readonly Segment[]): VerifyReport {
  const vv = new Map<string, number>();
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
      last_flags = frame_flags(view, at);
      at += size;
      pos++;
      events++;
    }
    if (at !== segment.end_bytes) return bad(pos, segment, at, `records end at offset ${at}, index says ${segment.end_bytes}`);
    if (segment.count > 0 && (last_flags & flag_signed) === 0) return bad(pos - 1, segment, at, "last record does not end a signed range");
    const stray = first_nonzero(map, at, segment.size_bytes);
    if (stray >= 0) return bad(pos, segment, stray, `non-zero byte past the last record (at offset ${stray})`);
    bytes += at;
  }
  return { ok: true, events, segments: segments.length, bytes, first_bad: null };
}

/**
 * verify_segments for a log opened read-only, which repaired nothing: the
 * damage recovery would cut away (a torn tail, stray bytes) is the first
 * problem, unless something earlier is bad too.
 */
export function verify_unrepaired(segments: readonly Segment[], recovery: RecoveryReport): VerifyReport {
  const report = verify_segments(segments);
  if (recovery.cut_at_pos === null && recovery.dropped_bytes === 0) return report;
  const active = segments[segments.length - 1];
  if (!report.ok && report.first_bad !== null && report.first_bad.pos < (recovery.cut_at_pos ?? active.end_pos)) return report;
  const reason = recovery.cut_at_pos === null ? `${recovery.dropped_bytes} stray bytes past the last record` : recovery.reason;
  const pos = recovery.bad_at_pos ?? active.end_pos;
  return { ...report, ok: false, first_bad: { pos, segment: active.file, offset_bytes: active.end_bytes, reason } };
}
