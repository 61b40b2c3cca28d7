import { InterlogError } from "../lib/errors.ts";

/**
 * Replica ids are random 64-bit numbers shown as 16 lowercase hex digits.
 * On disk and on the wire they are two little-endian u32 words, so the hot
 * path never touches BigInt.
 */
const origin_pattern = /^[0-9a-f]{16}$/;

export function is_origin(text: string): boolean {
  return origin_pattern.test(text) && text !== "0000000000000000";
}

export function assert_origin(text: string): void {
  if (!is_origin(text)) {
    throw new InterlogError("BAD_ARGUMENT", `"${text}" is not a replica id; expected 16 lowercase hex digits, not all zero`);
  }
}

export function origin_hi(origin: string): number {
  return Number.parseInt(origin.slice(0, 8), 16) >>> 0;
}

export function origin_lo(origin: string): number {
  return Number.parseInt(origin.slice(8, 16), 16) >>> 0;
}

export function origin_from_words(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

export function new_origin(fill_random: (bytes: Uint8Array) => void = (b) => crypto.getRandomValues(b)): string {
  const bytes = new Uint8Array(8);
  for (;;) {
    fill_random(bytes);
    const text = Buffer.from(bytes).toString("hex");
    if (is_origin(text)) return text;
  }
}

/** `ORIGIN:SEQ`, e.g. `3f09c2a41b7e55d0:42`. */
export function format_event_id(origin: string, seq: number): string {
  return `${origin}:${seq}`;
}

export function parse_event_id(text: string): { origin: string; seq: number } {
  const m = /^([0-9a-f]{16}):([1-9][0-9]*)$/.exec(text);
  if (!m || !is_origin(m[1]) || !Number.isSafeInteger(Number(m[2]))) {
    throw new InterlogError("BAD_ARGUMENT", `"${text}" is not an event id; expected ORIGIN:SEQ like 3f09c2a41b7e55d0:42`);
  }
  return { origin: m[1], seq: Number(m[2]) };
}
