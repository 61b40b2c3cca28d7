/**
 * What signs this replica's own ranges (proof.ts). On a device it is the
 * Ed25519 key in replica.key, signing on the spot (replica_key.ts, ~13 µs);
 * in a browser tab it is a non-extractable WebCrypto key, whose sign() is a
 * promise: the frame stager then writes the range with its signature to
 * come and patches it in before the next fsync (frame_stager.ts), so an
 * event is never durable, nor pushed, without its proof.
 */
export interface Signer {
  /** The replica id: id_of_public_key(public_key). */
  readonly id: string;
  readonly public_key: Uint8Array;
  readonly public_key_hex: string;
  /** sign() answers with a promise: the log then refuses sync "never", whose acknowledgement would come before the signature. */
  readonly asynchronous: boolean;
  /** The 64-byte Ed25519 signature of message. */
  sign(message: Uint8Array): Uint8Array | Promise<Uint8Array>;
}
