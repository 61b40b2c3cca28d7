import { assert } from "../lib/assert.ts";
import { read_u64, write_u64 } from "../lib/bytes.ts";
import { crc32c_update } from "../lib/crc32c.ts";

/**
 * The record frame, identical on disk and on the wire. 8-byte aligned,
 * little-endian:
 *
 *   0  u32 len        header + payload + proof bytes, without padding (>= 40; 0 = end of data)
 *   4  u32 crc32c     over bytes [8, 36) and [40, len): everything the origin wrote
 *   8  u64 origin     (hi word at 8, lo word at 12: the id's hex digits in order)
 *  16  u64 seq
 *  24  u64 time_ms
 *  32  u32 flags      the origin's: batch-end, signed
 *  36  u32 local      this replica's own word: its marks (rejected) in bits
 *                     0-1, a 14-bit check in bits 2-15, the write epoch in
 *                     bits 16-31 (see local_word); covered by neither the crc nor the
 *                     signature, so a relay stores the origin's bytes as they
 *                     are and marks them without breaking the proof. 0 on the
 *                     wire and in every signed hash
 *  40  payload
 *      proof          when flags & signed (see proof.ts): u64 first_seq |
 *                     32-byte Ed25519 public key | 64-byte signature, over the
 *                     origin's frames first_seq..seq
 *      zero padding up to the next multiple of 8
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
export const frame_local_offset = 36;
export const frame_header_bytes = 40;
export const frame_align_bytes = 8;
/** Largest payload of one event; keeps `len` far from u32 overflow and one frame far below a segment. */
export const payload_max_bytes = 16 * 1024 * 1024;

/** Origin flags (the frame's flags word, signed with the frame). */
export const flag_batch_end = 1;
/** The frame ends a signed range: a proof follows its payload. */
export const flag_signed = 4;
export const frame_flags_known = flag_batch_end | flag_signed;
/**
 * This replica's mark (the frame's local word, and the same bit in
 * CheckedEvents.flags / LogEvent.flags): a synced event that failed a sync
 * validator. Its bytes stay the origin's; readers see it as quarantined.
 */
export const flag_rejected = 2;
const local_known = flag_rejected;
/** Bytes of the proof a signed frame carries after its payload: u64 first_seq, public key, signature. */
export const proof_bytes = 8 + 32 + 64;
/** High word of a u64 below 2^53. */
const u64_safe_hi_word_limit = 0x200000;

// The layout above, checked once at load: fields tile the header, and frames stay aligned.
assert(frame_crc_offset === frame_len_offset + 4 && frame_crc_from_offset === frame_crc_offset + 4, "len and crc lead the frame");
assert(frame_origin_lo_offset === frame_origin_hi_offset + 4 && frame_seq_offset === frame_origin_lo_offset + 4, "origin words then seq");
assert(frame_time_offset === frame_seq_offset + 8 && frame_flags_offset === frame_time_offset + 8, "seq, time, flags follow each other");
assert(frame_header_bytes === frame_local_offset + 4 && frame_header_bytes % frame_align_bytes === 0, "the header ends aligned");
assert(payload_max_bytes + frame_header_bytes + proof_bytes < 2 ** 32, "len fits in its u32");
assert((frame_flags_known & local_known) === 0, "origin flags and local marks use different bits");

/**
 * The local word: marks in bits 0-1, a check in bits 2-15, the write epoch
 * in bits 16-31. The epoch (a 16-bit counter the log bumps at every
 * writable open) tells this incarnation's frames from stale ones: recycled
 * segment files are not zeroed, and a frame left by an earlier run or an
 * earlier use of the file must never continue the log (scan.ts). The check
 * (a CRC-14 of epoch and marks) makes any single flipped bit of the word a
 * bad frame, as a flip anywhere else is. A frame written before epochs
 * existed carried its marks in both halves (0, or 0x00020002 for a
 * rejected one) and reads as epoch 0.
 */
export function local_word(marks: number, epoch = 0): number {
  assert((marks & ~local_marks_mask) === 0 && epoch >= 0 && epoch <= epoch_mask, "marks fit 2 bits, the epoch 16");
  return ((epoch << 16) | (local_check(epoch, marks) << 2) | marks) >>> 0;
}

/** Epochs compare as serial numbers (RFC 1982): `a` is not before `b` when fewer than 2^15 bumps lie from b to a. */
export function epoch_not_before(a: number, b: number): boolean {
  return ((a - b) & 0xffff) < 0x8000;
}
export const epoch_mask = 0xffff;
const local_marks_mask = 3;
/** The local word of a rejected frame written before epochs existed. */
const local_word_old_rejected = ((flag_rejected << 16) | flag_rejected) >>> 0;
/** CRC-14 (x^14 + x^11 + x^2 + 1) of the 18 bits epoch | marks << 16, by tables of its linear parts. */
const check_poly = 0x0805;
function crc14_of_bit(bit: number): number {
  let r = 1;
  for (let i = 0; i < bit + 14; i++) r = r & 0x2000 ? ((r << 1) ^ check_poly) & 0x3fff : (r << 1) & 0x3fff;
  return r;
}
const check_lo = new Uint16Array(256);
const check_hi = new Uint16Array(256);
const check_marks = new Uint16Array(4);
for (let v = 0; v < 256; v++) {
  for (let b = 0; b < 8; b++) {
    if (v & (1 << b)) {
      check_lo[v] ^= crc14_of_bit(b);
      check_hi[v] ^= crc14_of_bit(b + 8);
    }
  }
}
for (let m = 0; m < 4; m++) for (let b = 0; b < 2; b++) if (m & (1 << b)) check_marks[m] ^= crc14_of_bit(16 + b);
function local_check(epoch: number, marks: number): number {
  return check_lo[epoch & 0xff] ^ check_hi[epoch >>> 8] ^ check_marks[marks];
}
assert(local_word(0, 0) === 0, "a fresh frame's local word is 0");
assert(local_word(flag_rejected, 2) !== local_word_old_rejected, "the old rejected form is not a new word");

/** Whether a local word is whole: its check matches (or it is a word written before epochs). */
function local_word_ok(local: number): boolean {
  if ((local & local_marks_mask & ~local_known) !== 0) return false;
  return ((local >>> 2) & 0x3fff) === local_check(local >>> 16, local & local_marks_mask) || local === local_word_old_rejected;
}

/** The crc32c of the frame at `at` in bytes (its len word already written): [8, 36) and [40, len). */
export function frame_crc_compute(bytes: Uint8Array, at: number, len: number): number {
  return crc32c_update(crc32c_update(0, bytes, at + frame_crc_from_offset, at + frame_local_offset), bytes, at + frame_header_bytes, at + len);
}

/** Padded size of a frame whose len word is `len`. */
export function frame_size_of_len(len: number): number {
  return (len + frame_align_bytes - 1) & ~(frame_align_bytes - 1);
}

/** Padded size of an unsigned frame with this payload (a signed one: frame_size_bytes(payload + proof_bytes)). */
export function frame_size_bytes(payload_bytes: number): number {
  return (frame_header_bytes + payload_bytes + frame_align_bytes - 1) & ~(frame_align_bytes - 1);
}

/**
 * Writes header fields [8, 40) of a frame: origin, seq, time, the origin's
 * flags and the local word (from the flag_rejected bit of `flags`). The crc
 * and len words are the caller's (len last, so a reader of a half-written
 * frame sees 0).
 */
export function write_frame_fields(view: DataView, at: number, origin_hi: number, origin_lo: number, seq: number, time_ms: number, flags: number): void {
  view.setUint32(at + frame_origin_hi_offset, origin_hi, true);
  view.setUint32(at + frame_origin_lo_offset, origin_lo, true);
  write_u64(view, at + frame_seq_offset, seq);
  write_u64(view, at + frame_time_offset, time_ms);
  view.setUint32(at + frame_flags_offset, flags & frame_flags_known, true);
  view.setUint32(at + frame_local_offset, local_word(flags & local_known), true);
}

/**
 * Writes the 40-byte header of a frame into `bytes` at `at`. The crc covers
 * header bytes [8, 36) and the payload (with the proof, for a signed frame
 * received whole), which may live elsewhere (it is
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
  // For a signed frame received whole, `payload` holds the proof too.
  assert(payload.length <= payload_max_bytes + ((flags & flag_signed) !== 0 ? proof_bytes : 0), "payload within payload_max_bytes");
  write_frame_fields(view, at, origin_hi, origin_lo, seq, time_ms, flags);
  let crc = crc32c_update(0, bytes, at + frame_crc_from_offset, at + frame_local_offset);
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
  // The payload is at most payload_max_bytes; a signed frame's proof comes on top (checked with the flags below).
  if (len < frame_header_bytes || len - frame_header_bytes > payload_max_bytes + proof_bytes) return frame_bad;
  const size = frame_size_of_len(len);
  if (at + size > limit) return frame_bad;
  if (!local_word_ok(view.getUint32(at + frame_local_offset, true))) return frame_bad;
  const flags = view.getUint32(at + frame_flags_offset, true);
  if ((flags & ~frame_flags_known) !== 0) return frame_bad;
  const proof = (flags & flag_signed) !== 0 ? proof_bytes : 0;
  if (len < frame_header_bytes + proof || len - frame_header_bytes - proof > payload_max_bytes) return frame_bad;
  // seq and time are below 2^53: their high words below 2^21.
  if (view.getUint32(at + frame_seq_offset + 4, true) >= u64_safe_hi_word_limit || view.getUint32(at + frame_time_offset + 4, true) >= u64_safe_hi_word_limit) {
    return frame_bad;
  }
  if (frame_crc_compute(bytes, at, len) !== view.getUint32(at + frame_crc_offset, true)) return frame_bad;
  for (let i = at + len; i < at + size; i++) if (bytes[i] !== 0) return frame_bad;
  return size;
}

export function frame_len(view: DataView, at: number): number {
  return view.getUint32(at + frame_len_offset, true);
}
/** Padded size of the whole frame at `at`. */
export function frame_size_at(view: DataView, at: number): number {
  return frame_size_of_len(view.getUint32(at + frame_len_offset, true));
}
/** Where the payload of the frame at `at` ends: before its proof when signed. */
export function frame_payload_end(view: DataView, at: number): number {
  const len = view.getUint32(at + frame_len_offset, true);
  return at + len - ((view.getUint32(at + frame_flags_offset, true) & flag_signed) !== 0 ? proof_bytes : 0);
}
/** This replica's marks on the frame (flag_rejected). */
export function frame_local(view: DataView, at: number): number {
  return view.getUint32(at + frame_local_offset, true) & local_marks_mask;
}
/** The write epoch of the frame at `at` (see local_word). */
export function frame_epoch(view: DataView, at: number): number {
  const local = view.getUint32(at + frame_local_offset, true);
  return local === local_word_old_rejected ? 0 : local >>> 16;
}
/** Sets the epoch of the frame at `at`, keeping its marks. */
export function set_frame_epoch(view: DataView, at: number, epoch: number): void {
  view.setUint32(at + frame_local_offset, local_word(view.getUint32(at + frame_local_offset, true) & local_marks_mask, epoch), true);
}
/**
 * Whether the header at `at` names a record whose seq is a safe integer
 * and whose local word is whole: a frame check that fails elsewhere (its
 * len word, its crc) may then still be told by its header.
 */
export function frame_header_plausible(view: DataView, at: number): boolean {
  return local_word_ok(view.getUint32(at + frame_local_offset, true)) && view.getUint32(at + frame_seq_offset + 4, true) < u64_safe_hi_word_limit;
}

/** Whether the frame at `at` carries anything in its local word (marks or an epoch): such a frame is not as its origin wrote it. */
export function frame_has_local(view: DataView, at: number): boolean {
  return view.getUint32(at + frame_local_offset, true) !== 0;
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

/**
 * `region` (whole frames, concatenated) with every frame's local word
 * zeroed, as their origins wrote them: a copy when any frame carries a mark or epoch,
 * else `region` itself. Stops at a len word too short for a frame.
 */
export function without_local_marks(region: Uint8Array): Uint8Array {
  const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
  let copy: Uint8Array | null = null;
  for (let at = 0; at + frame_header_bytes <= region.length; ) {
    const len = frame_len(view, at);
    if (len < frame_header_bytes) break;
    if (frame_has_local(view, at)) {
      copy ??= region.slice();
      new DataView(copy.buffer).setUint32(at + frame_local_offset, 0, true);
    }
    at += frame_size_of_len(len);
  }
  return copy ?? region;
}
