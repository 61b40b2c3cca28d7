/**
 * CRC-32C (Castagnoli), slicing-by-8, over a range of a byte array.
 * Written in JS on purpose: it takes (start, end) instead of a subarray, so
 * checking a record in a mapping allocates nothing, and it measured faster
 * here than Bun.hash.crc32 plus a subarray per record.
 */
const table = new Uint32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  table[n] = c >>> 0;
}
for (let n = 0; n < 256; n++) {
  let c = table[n];
  for (let k = 1; k < 8; k++) {
    c = table[c & 255] ^ (c >>> 8);
    table[k * 256 + n] = c >>> 0;
  }
}

/** Continue a CRC-32C over bytes[start, end). Start a new one with crc = 0. */
export function crc32c_update(crc: number, bytes: Uint8Array, start: number, end: number): number {
  let c = ~crc;
  let i = start;
  const end8 = end - ((end - start) & 7);
  const t = table;
  while (i < end8) {
    const a = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c =
      t[1792 + (a & 255)] ^
      t[1536 + ((a >>> 8) & 255)] ^
      t[1280 + ((a >>> 16) & 255)] ^
      t[1024 + (a >>> 24)] ^
      t[768 + bytes[i + 4]] ^
      t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
    i += 8;
  }
  while (i < end) c = t[(c ^ bytes[i++]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32c_update(0, bytes, start, end);
}
