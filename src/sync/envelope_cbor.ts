import { encode } from "cbor2";

/**
 * CBOR encoding of sync envelopes: maps with text keys whose values are
 * text, unsigned safe integers, booleans, byte strings or arrays of unsigned
 * integers. These few shapes are written here directly, byte for byte as
 * cbor2 writes them (preferred, shortest heads; keys in insertion order):
 * cbor2 costs ~8 us and some garbage per small envelope, and a hub
 * acknowledging 10 000 spokes encodes one per push. Anything else (never
 * built by messages.ts, but a caller could) goes to cbor2. Decoding stays
 * with cbor2: it parses what peers send.
 */
export type EnvelopeValue = string | number | boolean | Uint8Array | readonly number[];

const text_encoder = new TextEncoder();

export function encode_envelope(envelope: Readonly<Record<string, unknown>>): Uint8Array {
  const keys = Object.keys(envelope);
  let size = head_bytes(keys.length);
  const texts = new Map<string, Uint8Array>();
  const text = (s: string): Uint8Array => {
    let t = texts.get(s);
    if (t === undefined) {
      t = text_encoder.encode(s);
      texts.set(s, t);
    }
    return t;
  };
  for (const key of keys) {
    const k = text(key);
    size += head_bytes(k.length) + k.length;
    const v = envelope[key];
    if (typeof v === "string") {
      const t = text(v);
      size += head_bytes(t.length) + t.length;
    } else if (typeof v === "number") {
      if (!Number.isSafeInteger(v) || v < 0) return encode(envelope);
      size += head_bytes(v);
    } else if (typeof v === "boolean") size += 1;
    else if (v instanceof Uint8Array) size += head_bytes(v.length) + v.length;
    else if (Array.isArray(v) && v.every((n) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0)) {
      size += head_bytes(v.length);
      for (const n of v as number[]) size += head_bytes(n);
    } else return encode(envelope);
  }
  const out = new Uint8Array(size);
  let at = write_head(out, 0, 5, keys.length);
  for (const key of keys) {
    const k = text(key);
    at = write_head(out, at, 3, k.length);
    out.set(k, at);
    at += k.length;
    const v = envelope[key] as EnvelopeValue;
    if (typeof v === "string") {
      const t = text(v);
      at = write_head(out, at, 3, t.length);
      out.set(t, at);
      at += t.length;
    } else if (typeof v === "number") at = write_head(out, at, 0, v);
    else if (typeof v === "boolean") out[at++] = v ? 0xf5 : 0xf4;
    else if (v instanceof Uint8Array) {
      at = write_head(out, at, 2, v.length);
      out.set(v, at);
      at += v.length;
    } else {
      at = write_head(out, at, 4, v.length);
      for (const n of v) at = write_head(out, at, 0, n);
    }
  }
  if (at !== size) throw new Error(`envelope encoding wrote ${at} of ${size} bytes`);
  return out;
}

/** Bytes of a CBOR head carrying `n` (an argument or length). */
function head_bytes(n: number): number {
  if (n < 24) return 1;
  if (n < 0x100) return 2;
  if (n < 0x10000) return 3;
  if (n < 0x100000000) return 5;
  return 9;
}

function write_head(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = m | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = m | 25;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  if (n < 0x100000000) {
    out[at] = m | 26;
    new DataView(out.buffer, out.byteOffset + at + 1, 4).setUint32(0, n);
    return at + 5;
  }
  out[at] = m | 27;
  const view = new DataView(out.buffer, out.byteOffset + at + 1, 8);
  view.setUint32(0, Math.floor(n / 0x100000000));
  view.setUint32(4, n >>> 0);
  return at + 9;
}
