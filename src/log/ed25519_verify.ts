import { createPublicKey, type KeyObject, verify } from "node:crypto";

/**
 * Ed25519 verification with node:crypto, synchronous (~45 µs). The browser
 * build swaps in src/browser/platform/ed25519_verify.ts (WebCrypto, async:
 * its replicator verifies through Replicator.on_message_async).
 */
export type PublicKeyHandle = KeyObject;

// DER wrapper of a raw Ed25519 public key (RFC 8410): node:crypto takes keys as KeyObjects only.
const spki_prefix = Buffer.from("302a300506032b6570032100", "hex");

export function import_public_key(public_key: Uint8Array): PublicKeyHandle {
  return createPublicKey({ key: Buffer.concat([spki_prefix, public_key]), format: "der", type: "spki" });
}

/** Whether `signature` is key's over message. Never throws on bad input. */
export function verify_now(key: PublicKeyHandle, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** The same as a promise, for code written for both platforms. */
export async function verify_async(public_key: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return verify_now(import_public_key(public_key), message, signature);
}
