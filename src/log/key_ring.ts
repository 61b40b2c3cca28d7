import type { KeyObject } from "node:crypto";
import { flag_signed, frame_flags_offset, frame_len_offset } from "./frame.ts";
import { proof_at, proof_public_key_offset, proof_signature_offset, RangeHash } from "./proof.ts";
import { id_of_public_key, public_key_bytes, public_key_object, signature_bytes, verify_signature } from "./replica_key.ts";

/** Why a signed range was refused (counted by these names in /metrics). */
export type ProofProblem = "bad_signature" | "unknown_key" | "not_trusted" | "unsigned";

/** Keys kept at most (about 760 B each); the least recently used goes first, and comes back by its id's hash. */
export const keys_cached_max = 10_000;

/**
 * The public keys of the origins this replica has seen, pinned on first use
 * (design.md section 3): a key is taken for an origin only when its SHA-256
 * begins with the origin's id, and kept once a range signed with it
 * verified; the optional allowlist (config `trust.replicas`) refuses every
 * other origin. The id is the key's hash, so forgetting a key (past
 * keys_cached_max) loses nothing: the same key is the only one that can come
 * back for that id.
 */
export class KeyRing {
  private readonly pinned = new Map<string, { bytes: Uint8Array; key: KeyObject }>();
  private readonly allowed: Set<string> | null;

  /** `allowed`: replica ids or 64-hex-digit public keys; null = trust on first use. */
  constructor(allowed: readonly string[] | null = null) {
    this.allowed = allowed === null ? null : new Set(allowed.map((entry) => (entry.length === 64 ? id_of_public_key(Buffer.from(entry, "hex")) : entry)));
  }

  /** Pins a key known to be origin's (this replica's own, or one read from its own log). */
  pin(origin: string, public_key: Uint8Array): void {
    if (id_of_public_key(public_key) !== origin) throw new Error(`the public key does not belong to ${origin}`);
    if (!this.pinned.has(origin)) this.remember(origin, { bytes: public_key.slice(), key: public_key_object(public_key) });
  }

  /** Whether origin's events may be accepted at all (the allowlist, when set). */
  trusts(origin: string): boolean {
    return this.allowed === null || this.allowed.has(origin);
  }

  get size(): number {
    return this.pinned.size;
  }

  /** Pinned public key of origin, hex, or null. */
  public_key(origin: string): string | null {
    const entry = this.pinned.get(origin);
    return entry === undefined ? null : Buffer.from(entry.bytes).toString("hex");
  }

  /**
   * The key for origin given the one a proof carries (bytes[at, at + 32)):
   * the pinned key when they are the same bytes, a newly pinned one when the
   * origin was unknown and the key is its, or the reason it is refused.
   */
  key_for(origin: string, bytes: Uint8Array, at: number): KeyObject | ProofProblem {
    if (this.allowed !== null && !this.allowed.has(origin)) return "not_trusted";
    const entry = this.pinned.get(origin);
    if (entry !== undefined) {
      for (let i = 0; i < public_key_bytes; i++) if (entry.bytes[i] !== bytes[at + i]) return "unknown_key";
      return entry.key;
    }
    const candidate = bytes.slice(at, at + public_key_bytes);
    // The id is the key's hash: any other key for this id is a forgery (or a 2^64 collision).
    if (id_of_public_key(candidate) !== origin) return "unknown_key";
    const key = public_key_object(candidate);
    this.candidate = { origin, bytes: candidate, key };
    return key;
  }

  /** The key key_for made for an origin not pinned yet, pinned once a range signed with it verified. */
  private candidate: { origin: string; bytes: Uint8Array; key: KeyObject } | null = null;

  private remember(origin: string, entry: { bytes: Uint8Array; key: KeyObject }): void {
    this.pinned.delete(origin);
    this.pinned.set(origin, entry);
    if (this.pinned.size > keys_cached_max) this.pinned.delete(this.pinned.keys().next().value as string);
  }

  /**
   * Checks the signed range whose canonical frames lie contiguous in
   * bytes[first_at, end of the frame at last_at): its proof must verify
   * under origin's key. Returns null when it does, else the problem.
   */
  check_range(origin: string, bytes: Uint8Array, view: DataView, first_at: number, last_at: number): ProofProblem | null {
    if ((view.getUint32(last_at + frame_flags_offset, true) & flag_signed) === 0) return "unsigned";
    const proof = proof_at(last_at, view.getUint32(last_at + frame_len_offset, true));
    const key = this.key_for(origin, bytes, proof + proof_public_key_offset);
    if (typeof key === "string") return key;
    const hash = new RangeHash();
    hash.add(bytes, first_at, last_at);
    hash.add_last_frame(bytes, view, last_at);
    const signature = bytes.subarray(proof + proof_signature_offset, proof + proof_signature_offset + signature_bytes);
    const candidate = this.candidate;
    this.candidate = null;
    if (!verify_signature(key, hash.message(), signature)) return "bad_signature";
    if (candidate !== null && candidate.key === key) this.remember(origin, candidate);
    return null;
  }
}
