/** Fast checks for all-zero byte ranges (a segment's unwritten tail must be zeros). */
const chunk_bytes = 64 * 1024;
const zeros = Buffer.alloc(chunk_bytes);

/** First offset in [from, to) holding a non-zero byte, or -1. */
export function first_nonzero(bytes: Uint8Array, from: number, to: number): number {
  for (let at = from; at < to; at += chunk_bytes) {
    const end = Math.min(to, at + chunk_bytes);
    if (Buffer.compare(bytes.subarray(at, end), zeros.subarray(0, end - at)) !== 0) {
      for (let i = at; i < end; i++) if (bytes[i] !== 0) return i;
    }
  }
  return -1;
}

/** Last offset in [from, to) holding a non-zero byte, or -1. */
export function last_nonzero(bytes: Uint8Array, from: number, to: number): number {
  for (let end = to; end > from; end -= chunk_bytes) {
    const at = Math.max(from, end - chunk_bytes);
    if (Buffer.compare(bytes.subarray(at, end), zeros.subarray(0, end - at)) !== 0) {
      for (let i = end - 1; i >= at; i--) if (bytes[i] !== 0) return i;
    }
  }
  return -1;
}
