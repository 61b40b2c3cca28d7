import { assert } from "../lib/assert.ts";
import { read_u64, write_u64 } from "../lib/bytes.ts";
import { crc32c_update } from "../lib/crc32c.ts";

/**
 * The record frame, identical on disk and on the wire. 8-byte aligned,
 * little-endian:
 *
 *   0  u32 len        header + payload bytes, without padding (>= 40; 0 = end of data)
 *   4  u32 crc32c     over bytes [8, len)
 *   8  u64 origin     (hi word at 8, lo word at 12: the id's hex digits in order)
 *  16  u64 seq
 *  24  u64 time_ms
 *  32  u32 flags
 *  36  u32 reserved   (0)
 *  40  payload, then zero padding up to the next multiple of 8
 */
export const frame_len_offset = 0;
export const frame_crc_offset = 4;
/** The crc covers the frame from here to its len. */
export const frame_crc_from_offset = 8;
export const frame_origin_hi_offset = 8;
export const frame_origin_lo_offset = 12;
export const frame_seq_offset = 16;
export const frame_time_offset = 24;
export const frame_flags_offset = 32;
export const frame_reserved_offset = 36;
export const frame_header_bytes = 40;
export const frame_align_bytes = 8;
/** Largest payload of one event; keeps `len` far from u32 overflow and one frame far below a segment. */
export const payload_max_bytes = 16 * 1024 * 1024;

export const flag_batch_end = 1;
export const flag_rejected = 2;
const flags_known = flag_batch_end | flag_rejected;
/** High word of a u64 below 2^53. */
const u64_safe_hi_word_limit = 0x200000;

// The layout above, checked once at load: fields tile the header, and frames stay aligned.
assert(frame_crc_offset === frame_len_offset + 4 && frame_crc_from_offset === frame_crc_offset + 4, "len and crc lead the frame");
assert(frame_origin_lo_offset === frame_origin_hi_offset + 4 && frame_seq_offset === frame_origin_lo_offset + 4, "origin words then seq");
assert(frame_time_offset === frame_seq_offset + 8 && frame_flags_offset === frame_time_offset + 8, "seq, time, flags follow each other");
assert(frame_header_bytes === frame_reserved_offset + 4 && frame_header_bytes % frame_align_bytes === 0, "the header ends aligned");
assert(payload_max_bytes + frame_header_bytes < 2 ** 32, "len fits in its u32");

export function frame_size_bytes(payload_bytes: number): number {
  return (frame_header_bytes + payload_bytes + frame_align_bytes - 1) & ~(frame_align_bytes - 1);
}

/**
 * Writes header fields [8, 40) of a frame: origin, seq, time, flags and the
 * zero reserved word. The crc and len words are the caller's (len last, so
 * a reader of a half-written frame sees 0).
 */
export function write_frame_fields(view: DataView, at: number, origin_hi: number, origin_lo: number, seq: number, time_ms: number, flags: number): void {
  view.setUint32(at + frame_origin_hi_offset, origin_hi, true);
  view.setUint32(at + frame_origin_lo_offset, origin_lo, true);
  write_u64(view, at + frame_seq_offset, seq);
  write_u64(view, at + frame_time_offset, time_ms);
  view.setUint32(at + frame_flags_offset, flags, true);
  view.setUint32(at + frame_reserved_offset, 0, true);
}

/**
 * Writes the 40-byte header of a frame into `bytes` at `at`. The crc covers
 * header bytes [8, 40) and the payload, which may live elsewhere (it is
 * passed in so big payloads need not be copied next to their header first).
 * `len` is written last so a reader of a half-written frame sees 0.
 */
export function write_frame_header(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  origin_hi: number,
  origin_lo: number,
  seq: number,
  time_ms: number,
  flags: number,
  payload: Uint8Array,
): void {
  assert(at % frame_align_bytes === 0, "frame offset is 8-byte aligned");
  assert(Number.isSafeInteger(seq) && seq >= 1, "seq is a positive safe integer");
  assert(Number.isSafeInteger(time_ms) && time_ms >= 0, "time_ms is a non-negative safe integer");
  assert(payload.length <= payload_max_bytes, "payload within payload_max_bytes");
  write_frame_fields(view, at, origin_hi, origin_lo, seq, time_ms, flags);
  let crc = crc32c_update(0, bytes, at + frame_crc_from_offset, at + frame_header_bytes);
  crc = crc32c_update(crc, payload, 0, payload.length);
  view.setUint32(at + frame_crc_offset, crc, true);
  view.setUint32(at + frame_len_offset, frame_header_bytes + payload.length, true);
}

/** What `check_frame` found at an offset. */
export const frame_end = 0;
export const frame_bad = -1;

/**
 * Checks the frame at `at` within bytes[0, limit). Returns its padded size
 * when it is whole and its crc matches, `frame_end` when the len word is 0
 * (end of written data), `frame_bad` when it is torn, overlong or corrupt.
 * Allocates nothing.
 */
export function check_frame(bytes: Uint8Array, view: DataView, at: number, limit: number): number {
  if (at + 4 > limit) return frame_end;
  const len = view.getUint32(at + frame_len_offset, true);
  if (len === 0) return frame_end;
  if (len < frame_header_bytes || len - frame_header_bytes > payload_max_bytes) return frame_bad;
  const size = frame_size_bytes(len - frame_header_bytes);
  if (at + size > limit) return frame_bad;
  if (view.getUint32(at + frame_reserved_offset, true) !== 0) return frame_bad;
  if ((view.getUint32(at + frame_flags_offset, true) & ~flags_known) !== 0) return frame_bad;
  // seq and time are below 2^53: their high words below 2^21.
  if (view.getUint32(at + frame_seq_offset + 4, true) >= u64_safe_hi_word_limit || view.getUint32(at + frame_time_offset + 4, true) >= u64_safe_hi_word_limit) {
    return frame_bad;
  }
  const crc = crc32c_update(0, bytes, at + frame_crc_from_offset, at + len);
  if (crc !== view.getUint32(at + frame_crc_offset, true)) return frame_bad;
  for (let i = at + len; i < at + size; i++) if (bytes[i] !== 0) return frame_bad;
  return size;
}

export function frame_len(view: DataView, at: number): number {
  return view.getUint32(at + frame_len_offset, true);
}
/** Padded size of the whole frame at `at`. */
export function frame_size_at(view: DataView, at: number): number {
  return frame_size_bytes(view.getUint32(at + frame_len_offset, true) - frame_header_bytes);
}
export function frame_origin_hi(view: DataView, at: number): number {
  return view.getUint32(at + frame_origin_hi_offset, true);
}
export function frame_origin_lo(view: DataView, at: number): number {
  return view.getUint32(at + frame_origin_lo_offset, true);
}
export function frame_seq(view: DataView, at: number): number {
  return read_u64(view, at + frame_seq_offset);
}
export function frame_time_ms(view: DataView, at: number): number {
  return read_u64(view, at + frame_time_offset);
}
export function frame_flags(view: DataView, at: number): number {
  return view.getUint32(at + frame_flags_offset, true);
}
export function frame_crc(view: DataView, at: number): number {
  return view.getUint32(at + frame_crc_offset, true);
}
