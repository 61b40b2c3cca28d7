import type { Signer } from "../../log/signer.ts";

/**
 * The browser twin of src/log/replica_key.ts: the key ids and sizes as they
 * are; no key from a replica.key file (a tab's key is a non-extractable
 * WebCrypto key, src/browser/key_store.ts, given to the log as `signer`).
 */
export { id_of_public_key, private_seed_bytes, public_key_bytes, signature_bytes } from "../../log/key_id.ts";
export { import_public_key as public_key_object, verify_now as verify_signature } from "./ed25519_verify.ts";

function no_key_file(): never {
  throw new Error("a browser replica has no replica.key: open the log with its WebCrypto key as LogOptions.signer");
}

export class ReplicaKey implements Signer {
  readonly asynchronous = false;
  readonly id = "";
  readonly public_key = new Uint8Array(0);
  readonly public_key_hex = "";
  static from_seed(_seed: Uint8Array): ReplicaKey {
    return no_key_file();
  }
  static generate(_fill_random?: (bytes: Uint8Array) => void): { key: ReplicaKey; seed: Uint8Array } {
    return no_key_file();
  }
  sign(_message: Uint8Array): Uint8Array {
    return no_key_file();
  }
}
