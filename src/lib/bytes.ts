const buffer_copy = Buffer.prototype.copy;

/**
 * Copies src[start, end) to dst at `at` without making a view of the source.
 * Bun makes a typed-array view in about 200 ns when its buffer is large (a
 * 64 MiB segment mapping); Buffer's native copy takes offsets and measured
 * ten times faster per 256-byte event here.
 */
export function copy_bytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): void {
  buffer_copy.call(src, dst, at, start, end);
}

const two_pow_32 = 4294967296;

/** Writes a non-negative safe integer as a little-endian u64 (low word first). */
export function write_u64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % two_pow_32, true);
  view.setUint32(at + 4, Math.floor(value / two_pow_32), true);
}

/** Reads a little-endian u64 the caller knows to be below 2^53 (seqs and times are checked on write). */
export function read_u64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * two_pow_32 + view.getUint32(at, true);
}
