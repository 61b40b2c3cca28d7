import { flag_signed, frame_flags_offset, frame_len_offset } from "./frame.ts";
import { import_public_key, type PublicKeyHandle, verify_now } from "./ed25519_verify.ts";
import { bytes_of_hex, hex_of, id_of_public_key, public_key_bytes, signature_bytes } from "./key_id.ts";
import { proof_at, proof_public_key_offset, proof_signature_offset, RangeHash } from "./proof.ts";

/** Why a signed range was refused (counted by these names in /metrics). */
export type ProofProblem = "bad_signature" | "unknown_key" | "not_trusted" | "unsigned";

/** Keys kept at most (about 760 B each); the least recently used goes first, and comes back by its id's hash. */
export const keys_cached_max = 10_000;

interface KeyEntry {
  bytes: Uint8Array;
  /** The key in node:crypto's form, made on first use (the browser verifies from the bytes). */
  handle: PublicKeyHandle | null;
}

/**
 * One signed range's signature, ready to verify: what KeyRing.prepare_range
 * found, checked with verify_now (on a device) or with WebCrypto in a batch
 * (in a browser), then handed back to KeyRing.settle with the answer.
 */
export interface RangeCheck {
  readonly origin: string;
  readonly public_key: Uint8Array;
  /** range_domain || SHA-256 of the range (proof.ts). */
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly entry: KeyEntry;
  /** The key is not pinned yet: it is, once a range signed with it verified. */
  readonly candidate: boolean;
}

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
  private readonly pinned = new Map<string, KeyEntry>();
  private readonly allowed: Set<string> | null;

  /** `allowed`: replica ids or 64-hex-digit public keys; null = trust on first use. */
  constructor(allowed: readonly string[] | null = null) {
    this.allowed = allowed === null ? null : new Set(allowed.map((entry) => (entry.length === 64 ? id_of_public_key(bytes_of_hex(entry)) : entry)));
  }

  /** Pins a key known to be origin's (this replica's own, or one read from its own log). */
  pin(origin: string, public_key: Uint8Array): void {
    if (id_of_public_key(public_key) !== origin) throw new Error(`the public key does not belong to ${origin}`);
    if (!this.pinned.has(origin)) this.remember(origin, { bytes: public_key.slice(), handle: null });
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
    return entry === undefined ? null : hex_of(entry.bytes);
  }

  /**
   * The key for origin given the one a proof carries (bytes[at, at + 32)):
   * the pinned key when they are the same bytes, a candidate when the origin
   * was unknown and the key is its, or the reason it is refused.
   */
  private key_for(origin: string, bytes: Uint8Array, at: number): { entry: KeyEntry; candidate: boolean } | ProofProblem {
    if (this.allowed !== null && !this.allowed.has(origin)) return "not_trusted";
    const entry = this.pinned.get(origin);
    if (entry !== undefined) {
      for (let i = 0; i < public_key_bytes; i++) if (entry.bytes[i] !== bytes[at + i]) return "unknown_key";
      return { entry, candidate: false };
    }
    const candidate = bytes.slice(at, at + public_key_bytes);
    // The id is the key's hash: any other key for this id is a forgery (or a 2^64 collision).
    if (id_of_public_key(candidate) !== origin) return "unknown_key";
    return { entry: { bytes: candidate, handle: null }, candidate: true };
  }

  private remember(origin: string, entry: KeyEntry): void {
    this.pinned.delete(origin);
    this.pinned.set(origin, entry);
    if (this.pinned.size > keys_cached_max) this.pinned.delete(this.pinned.keys().next().value as string);
  }

  /**
   * The signature check of the signed range whose canonical frames lie
   * contiguous in bytes[first_at, end of the frame at last_at), or the
   * problem that refuses it before any signature is checked.
   */
  prepare_range(origin: string, bytes: Uint8Array, view: DataView, first_at: number, last_at: number): RangeCheck | ProofProblem {
    if ((view.getUint32(last_at + frame_flags_offset, true) & flag_signed) === 0) return "unsigned";
    const proof = proof_at(last_at, view.getUint32(last_at + frame_len_offset, true));
    const key = this.key_for(origin, bytes, proof + proof_public_key_offset);
    if (typeof key === "string") return key;
    const hash = new RangeHash();
    hash.add(bytes, first_at, last_at);
    hash.add_last_frame(bytes, view, last_at);
    const signature = bytes.subarray(proof + proof_signature_offset, proof + proof_signature_offset + signature_bytes);
    return { origin, public_key: key.entry.bytes, message: hash.message(), signature, entry: key.entry, candidate: key.candidate };
  }

  /** Verifies a check on the spot (node:crypto). */
  verify_now(check: RangeCheck): boolean {
    check.entry.handle ??= import_public_key(check.entry.bytes);
    return verify_now(check.entry.handle, check.message, check.signature);
  }

  /** Takes the verifier's answer: pins a candidate key that verified. Returns null when the range holds, else the problem. */
  settle(check: RangeCheck, verified: boolean): ProofProblem | null {
    if (!verified) return "bad_signature";
    if (check.candidate) {
      const pinned = this.pinned.get(check.origin);
      if (pinned === undefined) this.remember(check.origin, check.entry);
      // Pinned by an earlier range of the same batch: only that very key is the origin's.
      else if (pinned !== check.entry && !same_bytes(pinned.bytes, check.entry.bytes)) return "unknown_key";
    }
    return null;
  }

  /**
   * Checks the signed range whose canonical frames lie contiguous in
   * bytes[first_at, end of the frame at last_at): its proof must verify
   * under origin's key. Returns null when it does, else the problem.
   */
  check_range(origin: string, bytes: Uint8Array, view: DataView, first_at: number, last_at: number): ProofProblem | null {
    const check = this.prepare_range(origin, bytes, view, first_at, last_at);
    if (typeof check === "string") return check;
    return this.settle(check, this.verify_now(check));
  }
}

function same_bytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
