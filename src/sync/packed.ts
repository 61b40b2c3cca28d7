import { read_u64, write_u64 } from "../lib/bytes.ts";
import { is_origin, origin_from_words, origin_hi, origin_lo } from "../log/ids.ts";
import { Malformed } from "./malformed.ts";

/**
 * Fixed-width binary lists carried as CBOR byte strings: 16 bytes per
 * version-vector entry instead of a CBOR map keyed by 17-byte strings, so a
 * hub's vv with a thousand origins stays near 16 KiB. Little-endian like the
 * record frame: origin hi u32, origin lo u32, then u64 numbers.
 */
export const vv_entry_bytes = 16;
export const range_entry_bytes = 24;
export const id_entry_bytes = 8;

/** Seqs stay below 2^53 so a JS number holds them exactly; the u64's high word must stay below this. */
export const seq_hi_word_max = 0x200000;

export interface SeqRange {
  origin: string;
  /** The requester holds origin's events 1..after. */
  after: number;
  /** It wants them up to and including upto. */
  upto: number;
}

function origin_at(view: DataView, at: number): string {
  const origin = origin_from_words(view.getUint32(at, true), view.getUint32(at + 4, true));
  if (!is_origin(origin)) throw new Malformed("bad_shape", "a replica id of zero");
  return origin;
}

function seq_at(view: DataView, at: number): number {
  if (view.getUint32(at + 4, true) >= seq_hi_word_max) throw new Malformed("seq_overflow", "a seq beyond 2^53");
  return read_u64(view, at);
}

function view_of(bytes: Uint8Array, entry_bytes: number): DataView {
  if (bytes.length % entry_bytes !== 0) throw new Malformed("bad_shape", `a packed list of ${bytes.length} bytes, not a multiple of ${entry_bytes}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encode_vv(vv: ReadonlyMap<string, number>): Uint8Array {
  const bytes = new Uint8Array(vv.size * vv_entry_bytes);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const [origin, seq] of vv) {
    view.setUint32(at, origin_hi(origin), true);
    view.setUint32(at + 4, origin_lo(origin), true);
    write_u64(view, at + 8, seq);
    at += vv_entry_bytes;
  }
  return bytes;
}

/**
 * Throws Malformed on a bad length, a zero id, a seq beyond 2^53, an origin
 * listed twice, or seq 0 unless allow_zero ("holds none of it", in answers).
 */
export function decode_vv(bytes: Uint8Array, allow_zero = false): Map<string, number> {
  const view = view_of(bytes, vv_entry_bytes);
  const vv = new Map<string, number>();
  for (let at = 0; at < bytes.length; at += vv_entry_bytes) {
    const origin = origin_at(view, at);
    const seq = seq_at(view, at + 8);
    if ((seq < 1 && !allow_zero) || vv.has(origin)) throw new Malformed("bad_shape", "a vv entry with seq 0 or a repeated origin");
    vv.set(origin, seq);
  }
  return vv;
}

export function encode_ranges(ranges: readonly SeqRange[]): Uint8Array {
  const bytes = new Uint8Array(ranges.length * range_entry_bytes);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const r of ranges) {
    view.setUint32(at, origin_hi(r.origin), true);
    view.setUint32(at + 4, origin_lo(r.origin), true);
    write_u64(view, at + 8, r.after);
    write_u64(view, at + 16, r.upto);
    at += range_entry_bytes;
  }
  return bytes;
}

/** Throws Malformed on a bad length, a zero id, after >= upto, numbers beyond 2^53, an origin twice. */
export function decode_ranges(bytes: Uint8Array): SeqRange[] {
  const view = view_of(bytes, range_entry_bytes);
  const ranges: SeqRange[] = [];
  const seen = new Set<string>();
  for (let at = 0; at < bytes.length; at += range_entry_bytes) {
    const origin = origin_at(view, at);
    const after = seq_at(view, at + 8);
    const upto = seq_at(view, at + 16);
    if (upto <= after || seen.has(origin)) throw new Malformed("bad_shape", "a range that is empty or repeats an origin");
    seen.add(origin);
    ranges.push({ origin, after, upto });
  }
  return ranges;
}

export function encode_ids(ids: readonly string[]): Uint8Array {
  const bytes = new Uint8Array(ids.length * id_entry_bytes);
  const view = new DataView(bytes.buffer);
  ids.forEach((id, i) => {
    view.setUint32(i * id_entry_bytes, origin_hi(id), true);
    view.setUint32(i * id_entry_bytes + 4, origin_lo(id), true);
  });
  return bytes;
}

export function decode_ids(bytes: Uint8Array): string[] {
  const view = view_of(bytes, id_entry_bytes);
  const ids: string[] = [];
  for (let at = 0; at < bytes.length; at += id_entry_bytes) ids.push(origin_at(view, at));
  return ids;
}
