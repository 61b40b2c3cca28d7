import { assert } from "../lib/assert.ts";
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
export const frame_header_bytes = 40;
export const frame_align_bytes = 8;
/** Largest payload of one event; keeps `len` far from u32 overflow and one frame far below a segment. */
export const payload_max_bytes = 16 * 1024 * 1024;

export const flag_batch_end = 1;
export const flag_rejected = 2;
const flags_known = flag_batch_end | flag_rejected;

const two_pow_32 = 4294967296;

export function frame_size_bytes(payload_bytes: number): number {
  return (frame_header_bytes + payload_bytes + frame_align_bytes - 1) & ~(frame_align_bytes - 1);
}

export function write_u64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % two_pow_32, true);
  view.setUint32(at + 4, Math.floor(value / two_pow_32), true);
}

export function read_u64(view: DataView, at: number): number {
  const hi = view.getUint32(at + 4, true);
  // seq and time stay below 2^53 (asserted on write), so a number is exact.
  return hi * two_pow_32 + view.getUint32(at, true);
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
  view.setUint32(at + 8, origin_hi, true);
  view.setUint32(at + 12, origin_lo, true);
  write_u64(view, at + 16, seq);
  write_u64(view, at + 24, time_ms);
  view.setUint32(at + 32, flags, true);
  view.setUint32(at + 36, 0, true);
  let crc = crc32c_update(0, bytes, at + 8, at + frame_header_bytes);
  crc = crc32c_update(crc, payload, 0, payload.length);
  view.setUint32(at + 4, crc, true);
  view.setUint32(at, frame_header_bytes + payload.length, true);
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
  const len = view.getUint32(at, true);
  if (len === 0) return frame_end;
  if (len < frame_header_bytes || len - frame_header_bytes > payload_max_bytes) return frame_bad;
  const size = frame_size_bytes(len - frame_header_bytes);
  if (at + size > limit) return frame_bad;
  if (view.getUint32(at + 36, true) !== 0) return frame_bad;
  if ((view.getUint32(at + 32, true) & ~flags_known) !== 0) return frame_bad;
  if (view.getUint32(at + 20, true) >= 0x200000 || view.getUint32(at + 28, true) >= 0x200000) return frame_bad;
  const crc = crc32c_update(0, bytes, at + 8, at + len);
  if (crc !== view.getUint32(at + 4, true)) return frame_bad;
  for (let i = at + len; i < at + size; i++) if (bytes[i] !== 0) return frame_bad;
  return size;
}

export function frame_len(view: DataView, at: number): number {
  return view.getUint32(at, true);
}
/** Padded size of the whole frame at `at`. */
export function frame_size_at(view: DataView, at: number): number {
  return frame_size_bytes(view.getUint32(at, true) - frame_header_bytes);
}
export function frame_origin_hi(view: DataView, at: number): number {
  return view.getUint32(at + 8, true);
}
export function frame_origin_lo(view: DataView, at: number): number {
  return view.getUint32(at + 12, true);
}
export function frame_seq(view: DataView, at: number): number {
  return read_u64(view, at + 16);
}
export function frame_time_ms(view: DataView, at: number): number {
  return read_u64(view, at + 24);
}
export function frame_flags(view: DataView, at: number): number {
  return view.getUint32(at + 32, true);
}
export function frame_crc(view: DataView, at: number): number {
  return view.getUint32(at + 4, true);
}
