import { assert } from "../lib/assert.ts";

interface Parked {
  frame: Uint8Array;
  at_ms: number;
}

/**
 * Events that arrived ahead of a gap (seq > held + 1), kept until the gap is
 * filled so a reordered or partly lost batch need not be fetched twice.
 * Bounded in bytes; entries expire, so junk parked by a lying peer cannot
 * occupy it forever. Losing an entry is harmless: repair fetches it again.
 */
export class GapBuffer {
  private readonly by_origin = new Map<string, Map<number, Parked>>();
  private bytes_held = 0;

  constructor(private readonly max_bytes: number) {
    assert(max_bytes >= 0, "gap buffer size is not negative");
  }

  get bytes(): number {
    return this.bytes_held;
  }

  get count(): number {
    let n = 0;
    for (const m of this.by_origin.values()) n += m.size;
    return n;
  }

  has_origin(origin: string): boolean {
    return this.by_origin.has(origin);
  }

  /** Parks a copy of `frame`; false when it does not fit. */
  put(origin: string, seq: number, frame: Uint8Array, now_ms: number): boolean {
    let m = this.by_origin.get(origin);
    if (m?.has(seq)) return true;
    if (this.bytes_held + frame.length > this.max_bytes) return false;
    if (m === undefined) {
      m = new Map();
      this.by_origin.set(origin, m);
    }
    m.set(seq, { frame: frame.slice(), at_ms: now_ms });
    this.bytes_held += frame.length;
    return true;
  }

  /** Removes and returns the parked frame origin:seq, if any. */
  take(origin: string, seq: number): Uint8Array | undefined {
    const m = this.by_origin.get(origin);
    const parked = m?.get(seq);
    if (m === undefined || parked === undefined) return undefined;
    m.delete(seq);
    if (m.size === 0) this.by_origin.delete(origin);
    this.bytes_held -= parked.frame.length;
    return parked.frame;
  }

  /** Drops parked frames of origin at or below `held` (filled from elsewhere). */
  prune(origin: string, held: number): void {
    const m = this.by_origin.get(origin);
    if (m === undefined) return;
    for (const [seq, parked] of m) {
      if (seq > held) continue;
      m.delete(seq);
      this.bytes_held -= parked.frame.length;
    }
    if (m.size === 0) this.by_origin.delete(origin);
  }

  /** Drops frames parked before `before_ms`. */
  expire(before_ms: number): void {
    for (const [origin, m] of this.by_origin) {
      for (const [seq, parked] of m) {
        if (parked.at_ms >= before_ms) continue;
        m.delete(seq);
        this.bytes_held -= parked.frame.length;
      }
      if (m.size === 0) this.by_origin.delete(origin);
    }
    assert(this.bytes_held >= 0, "gap buffer byte count stays non-negative");
  }
}
