import { createPrivateKey, createPublicKey, type KeyObject, sign } from "node:crypto";
import { assert } from "../lib/assert.ts";
import type { Signer } from "./signer.ts";
import { id_of_public_key, private_seed_bytes, public_key_bytes } from "./key_id.ts";
import { import_public_key, verify_now } from "./ed25519_verify.ts";

/**
 * A replica's Ed25519 key pair, held in replica.key (node:crypto; the
 * browser keeps a WebCrypto key instead, src/browser/key_store.ts). The id
 * is bound to the public key (key_id.ts).
 */
export { id_of_public_key, private_seed_bytes, public_key_bytes, signature_bytes } from "./key_id.ts";

// DER wrapper of a raw Ed25519 seed (RFC 8410): node:crypto takes keys as KeyObjects only.
const pkcs8_prefix = Buffer.from("302e020100300506032b657004220420", "hex");

export const public_key_object = import_public_key;

/** Whether `signature` is public_key's over message. Never throws on bad input. */
export const verify_signature = verify_now;

export class ReplicaKey implements Signer {
  readonly asynchronous = false;
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
