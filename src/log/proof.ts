import { assert } from "../lib/assert.ts";
import { read_u64, write_u64 } from "../lib/bytes.ts";
import { flag_signed, frame_crc_offset, frame_flags_offset, frame_len_offset, proof_bytes } from "./frame.ts";
import { public_key_bytes, signature_bytes } from "./key_id.ts";
import { Sha256 } from "../lib/sha256.ts";

/**
 * The proof of a signed range (design.md section 3, "Trust"). An origin
 * signs what it wrote in ranges of consecutive seqs (frame_stager.ts says
 * where they end), so a signature costs one Ed25519 operation per range,
 * not per event.
 * The last frame of a range carries the proof after its payload:
 *
 *   u64 first_seq | 32-byte public key | 64-byte Ed25519 signature
 *
 * The signature is over `range_domain || SHA-256(R)`, where R is the range's
 * frames first_seq..last as the origin wrote them (local word 0, padding
 * included), concatenated in seq order, except that the last frame is taken
 * without its crc word (which covers the signature) and without the
 * signature itself. A receiver rebuilds exactly those bytes from the wire,
 * so it can check the range whatever replicas it came through; the frames
 * are hashed as contiguous runs (one hasher update per run, not per event).
 */
export const range_domain = new TextEncoder().encode("interlog range v1\0");
export const proof_first_seq_offset = 0;
export const proof_public_key_offset = 8;
export const proof_signature_offset = 8 + public_key_bytes;
assert(proof_signature_offset + signature_bytes === proof_bytes, "the proof is first_seq, key, signature");

/** Incremental SHA-256 over byte runs. */
export class RangeHash {
  private readonly hasher = new Sha256();

  add(bytes: Uint8Array, start: number, end: number): void {
    assert(start <= end, "a run has a start before its end");
    if (end > start) this.hasher.update(bytes.subarray(start, end));
  }

  /**
   * Adds the last frame of a range (at `at` in bytes, its len word already
   * counting the proof): everything but its crc word and signature.
   */
  add_last_frame(bytes: Uint8Array, view: DataView, at: number): void {
    const len = view.getUint32(at + frame_len_offset, true);
    assert((view.getUint32(at + frame_flags_offset, true) & flag_signed) !== 0, "the last frame of a range is signed");
    this.add(bytes, at, at + frame_crc_offset);
    this.add(bytes, at + frame_crc_offset + 4, at + len - signature_bytes);
  }

  /** The message the signature covers. Ends this hash. */
  message(): Uint8Array {
    const digest = this.hasher.digest();
    const out = new Uint8Array(range_domain.length + digest.length);
    out.set(range_domain, 0);
    out.set(digest, range_domain.length);
    return out;
  }
}

/** Where the proof of the signed frame at `at` (len word `len`) begins. */
export function proof_at(at: number, len: number): number {
  return at + len - proof_bytes;
}

export function proof_first_seq(view: DataView, proof: number): number {
  return read_u64(view, proof + proof_first_seq_offset);
}

export function write_proof_head(bytes: Uint8Array, view: DataView, proof: number, first_seq: number, public_key: Uint8Array): void {
  write_u64(view, proof + proof_first_seq_offset, first_seq);
  bytes.set(public_key, proof + proof_public_key_offset);
}
