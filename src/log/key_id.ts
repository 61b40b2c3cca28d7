import { assert } from "../lib/assert.ts";
import { sha256 } from "../lib/sha256.ts";

/**
 * Sizes of a replica's Ed25519 key and signatures, and the replica id a
 * public key stands for: the first 64 bits of SHA-256(public key), in hex,
 * so an id cannot be claimed without the key, and a peer that sees a key
 * checks it against the id before pinning it (design.md section 3,
 * "Trust"). Portable: the browser build uses it as it is.
 */
export const public_key_bytes = 32;
export const signature_bytes = 64;
export const private_seed_bytes = 32;

const hex_digits = "0123456789abcdef";

export function hex_of(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += hex_digits[b >> 4] + hex_digits[b & 15];
  return out;
}

/** Bytes of an even-length hex string (validated by the caller). */
export function bytes_of_hex(hex: string): Uint8Array {
  assert(hex.length % 2 === 0, "hex comes in pairs of digits");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The replica id a public key stands for. */
export function id_of_public_key(public_key: Uint8Array): string {
  assert(public_key.length === public_key_bytes, "an Ed25519 public key is 32 bytes");
  return hex_of(sha256(public_key).subarray(0, 8));
}
