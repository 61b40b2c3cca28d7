/**
 * Incremental SHA-256. This is Bun's native hasher (about 1.7 GB/s); the
 * browser build swaps in src/browser/platform/sha256.ts (pure JS, no
 * WebCrypto, whose digest is async and not incremental).
 */
export class Sha256 {
  private readonly hasher = new Bun.CryptoHasher("sha256");

  update(bytes: Uint8Array): void {
    this.hasher.update(bytes);
  }

  /** The 32-byte digest. Ends this hash. */
  digest(): Uint8Array {
    return this.hasher.digest() as Uint8Array;
  }
}

export function sha256(bytes: Uint8Array): Uint8Array {
  const h = new Sha256();
  h.update(bytes);
  return h.digest();
}
