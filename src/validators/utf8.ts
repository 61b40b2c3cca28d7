import { define_validator, no_options } from "./validator.ts";

/**
 * Offset of the first byte that breaks UTF-8 (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF), or -1 when all of `bytes` is valid UTF-8.
 */
export function utf8_error_offset(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // no overlong 3-byte forms
      if (b === 0xed) hi = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // no overlong 4-byte forms
      if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    if (i + 1 >= n || bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k <= need; k++) {
      const c = bytes[i + k];
      if (i + k >= n || c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

export function utf8_message(bytes: Uint8Array): string | null {
  const at = utf8_error_offset(bytes);
  return at < 0 ? null : `payload is not valid UTF-8 text: bad byte 0x${bytes[at].toString(16).padStart(2, "0")} at offset ${at}`;
}

/** Accepts payloads that are valid UTF-8 text. */
export const utf8 = define_validator({
  name: "utf8",
  summary: "accepts only valid UTF-8 text",
  options: no_options,
  create: () => (payload) => utf8_message(payload),
});
