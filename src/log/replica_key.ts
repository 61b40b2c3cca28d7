import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { assert } from "../lib/assert.ts";

/**
 * A replica's Ed25519 key pair. The replica id is bound to the public key:
 * it is the first 64 bits of SHA-256(public key), in hex, so an id cannot be
 * claimed without the key, and a peer that sees a key checks it against the
 * id before pinning it (design.md section 3, "Trust").
 */
export const public_key_bytes = 32;
export const signature_bytes = 64;
export const private_seed_bytes = 32;

// DER wrappers of a raw Ed25519 key (RFC 8410): node:crypto takes keys as KeyObjects only.
const pkcs8_prefix = Buffer.from("302e020100300506032b657004220420", "hex");
const spki_prefix = Buffer.from("302a300506032b6570032100", "hex");

/** The replica id a public key stands for. */
export function id_of_public_key(public_key: Uint8Array): string {
  assert(public_key.length === public_key_bytes, "an Ed25519 public key is 32 bytes");
  return createHash("sha256").update(public_key).digest("hex").slice(0, 16);
}

export function public_key_object(public_key: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([spki_prefix, public_key]), format: "der", type: "spki" });
}

/** Whether `signature` is public_key's over message. Never throws on bad input. */
export function verify_signature(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

export class ReplicaKey {
  readonly id: string;
  readonly public_key: Uint8Array;
  private readonly private_key: KeyObject;

  private constructor(seed: Uint8Array) {
    assert(seed.length === private_seed_bytes, "an Ed25519 seed is 32 bytes");
    this.private_key = createPrivateKey({ key: Buffer.concat([pkcs8_prefix, seed]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(this.private_key).export({ format: "der", type: "spki" });
    this.public_key = new Uint8Array(spki.subarray(spki.length - public_key_bytes));
    this.id = id_of_public_key(this.public_key);
  }

  /** The key of a stored 32-byte seed. */
  static from_seed(seed: Uint8Array): ReplicaKey {
    return new ReplicaKey(seed);
  }

  /** A new key (its id never all zero, which no frame may carry). */
  static generate(fill_random: (bytes: Uint8Array) => void = (b) => crypto.getRandomValues(b)): { key: ReplicaKey; seed: Uint8Array } {
    for (;;) {
      const seed = new Uint8Array(private_seed_bytes);
      fill_random(seed);
      const key = new ReplicaKey(seed);
      if (key.id !== "0000000000000000") return { key, seed };
    }
  }

  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.private_key));
  }

  get public_key_hex(): string {
    return Buffer.from(this.public_key).toString("hex");
  }
}
