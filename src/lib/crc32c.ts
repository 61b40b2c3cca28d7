/**
 * CRC-32C (Castagnoli), slicing-by-16, over a range of a byte array.
 * Written in JS on purpose: it takes (start, end) instead of a subarray, so
 * checking a record in a mapping allocates nothing (Bun takes about 200 ns
 * to make a view of a large buffer). Slicing-by-16 measured 25 % faster than
 * slicing-by-8 here on 256-byte records (about 120 ns against 160 ns).
 */
const slices = 16;
const table = new Uint32Array(slices * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  table[n] = c >>> 0;
}
for (let n = 0; n < 256; n++) {
  let c = table[n];
  for (let k = 1; k < slices; k++) {
    c = table[c & 255] ^ (c >>> 8);
    table[k * 256 + n] = c >>> 0;
  }
}

/** Continue a CRC-32C over bytes[start, end). Start a new one with crc = 0. */
export function crc32c_update(crc: number, bytes: Uint8Array, start: number, end: number): number {
  let c = ~crc;
  let i = start;
  const end16 = end - ((end - start) & 15);
  const t = table;
  while (i < end16) {
    const a = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c =
      t[3840 + (a & 255)] ^
      t[3584 + ((a >>> 8) & 255)] ^
      t[3328 + ((a >>> 16) & 255)] ^
      t[3072 + (a >>> 24)] ^
      t[2816 + bytes[i + 4]] ^
      t[2560 + bytes[i + 5]] ^
      t[2304 + bytes[i + 6]] ^
      t[2048 + bytes[i + 7]] ^
      t[1792 + bytes[i + 8]] ^
      t[1536 + bytes[i + 9]] ^
      t[1280 + bytes[i + 10]] ^
      t[1024 + bytes[i + 11]] ^
      t[768 + bytes[i + 12]] ^
      t[512 + bytes[i + 13]] ^
      t[256 + bytes[i + 14]] ^
      t[bytes[i + 15]];
    i += 16;
  }
  while (i < end) c = t[(c ^ bytes[i++]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32c_update(0, bytes, start, end);
}
