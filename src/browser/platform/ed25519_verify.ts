import { hex_of } from "../../log/key_id.ts";

/**
 * The browser twin of src/log/ed25519_verify.ts: WebCrypto Ed25519, which
 * answers only asynchronously (so the page's replicator verifies through
 * Replicator.on_message_async). Imported keys are kept per public key.
 */
export type PublicKeyHandle = Uint8Array;

export function import_public_key(public_key: Uint8Array): PublicKeyHandle {
  return public_key;
}

export function verify_now(_key: PublicKeyHandle, _message: Uint8Array, _signature: Uint8Array): boolean {
  throw new Error("a browser verifies Ed25519 asynchronously: use verify_async (Replicator.on_message_async)");
}

/** Imported keys by hex, at most keys_max (the oldest goes first). */
const keys = new Map<string, Promise<CryptoKey>>();
const keys_max = 1024;

function key_of(public_key: Uint8Array): Promise<CryptoKey> {
  const name = hex_of(public_key);
  let key = keys.get(name);
  if (key === undefined) {
    key = crypto.subtle.importKey("raw", public_key.slice(), { name: "Ed25519" }, false, ["verify"]);
    keys.set(name, key);
    if (keys.size > keys_max) keys.delete(keys.keys().next().value as string);
  }
  return key;
}

/** Whether `signature` is public_key's over message. Never rejects on bad input. */
export async function verify_async(public_key: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  // Copied before the first await: the caller's buffers may be reused once it moves on.
  const signature_copy = signature.slice();
  const message_copy = message.slice();
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, await key_of(public_key), signature_copy, message_copy);
  } catch {
    return false;
  }
}
