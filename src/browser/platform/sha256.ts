import { sha256 as noble_sha256 } from "@noble/hashes/sha2.js";

/** The browser twin of src/lib/sha256.ts: @noble/hashes, synchronous and incremental as the log needs. */
export class Sha256 {
  private readonly hasher = noble_sha256.create();

  update(bytes: Uint8Array): void {
    this.hasher.update(bytes);
  }

  digest(): Uint8Array {
    return this.hasher.digest();
  }
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return noble_sha256(bytes);
}
