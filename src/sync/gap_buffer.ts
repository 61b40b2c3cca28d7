import { assert } from "../lib/assert.ts";
import { gap_entry_overhead_bytes } from "./sync_options.ts";

interface Parked {
  frame: Uint8Array;
  at_ms: number;
  /** The peer that sent it: its share of the buffer pays for it. */
  from: string;
}

/** Why put() refused a frame. */
export type GapRefusal = "gap_buffer_full" | "gap_buffer_per_peer";

/** What one parked frame costs in memory: the frame and gap_entry_overhead_bytes (its copy's object, its record, two map entries). */
export function parked_cost_bytes(frame_bytes: number): number {
  return frame_bytes + gap_entry_overhead_bytes;
}

/**
 * Events that arrived ahead of a gap (seq > held + 1), kept until the gap is
 * filled so a reordered or partly lost batch need not be fetched twice.
 * Bounded in memory (each entry counts its frame plus the measured overhead
 * of an entry), in all and per sending peer, so one peer can never fill it
 * for the others; nothing parked is ever evicted for a newcomer (a full
 * buffer refuses instead). Entries expire, so junk parked by a lying peer
 * cannot occupy it forever. Losing an entry is harmless: repair fetches it
 * again.
 */
export class GapBuffer {
  private readonly by_origin = new Map<string, Map<number, Parked>>();
  /** Bytes held, counted with parked_cost_bytes, in all and per sending peer. */
  private bytes_held = 0;
  private readonly by_peer = new Map<string, number>();
  private entries = 0;

  constructor(
    private readonly max_bytes: number,
    private readonly per_peer_max_bytes: number,
  ) {
    assert(max_bytes >= 0 && per_peer_max_bytes >= 0, "gap buffer sizes are not negative");
  }

  /** Memory held, in bytes (frames plus overhead). */
  get bytes(): number {
    return this.bytes_held;
  }

  get count(): number {
    return this.entries;
  }

  /** Memory held for what `peer` sent. */
  bytes_of(peer: string): number {
    return this.by_peer.get(peer) ?? 0;
  }

  has_origin(origin: string): boolean {
    return this.by_origin.has(origin);
  }

  /** Parks a copy of `frame`, sent by peer `from`; null when parked (or already there), else why it was refused. */
  put(origin: string, seq: number, frame: Uint8Array, now_ms: number, from: string): GapRefusal | null {
    let m = this.by_origin.get(origin);
    if (m?.has(seq)) return null;
    const cost = parked_cost_bytes(frame.length);
    const peer_bytes = this.by_peer.get(from) ?? 0;
    if (peer_bytes + cost > this.per_peer_max_bytes) return "gap_buffer_per_peer";
    if (this.bytes_held + cost > this.max_bytes) return "gap_buffer_full";
    if (m === undefined) {
      m = new Map();
      this.by_origin.set(origin, m);
    }
    m.set(seq, { frame: frame.slice(), at_ms: now_ms, from });
    this.bytes_held += cost;
    this.by_peer.set(from, peer_bytes + cost);
    this.entries++;
    assert(this.bytes_held <= this.max_bytes && peer_bytes + cost <= this.per_peer_max_bytes, "the gap buffer stays within its limits");
    return null;
  }

  /** Removes and returns the parked frame origin:seq, if any. */
  take(origin: string, seq: number): Uint8Array | undefined {
    const m = this.by_origin.get(origin);
    const parked = m?.get(seq);
    if (m === undefined || parked === undefined) return undefined;
    m.delete(seq);
    if (m.size === 0) this.by_origin.delete(origin);
    this.release(parked);
    return parked.frame;
  }

  /** Drops parked frames of origin at or below `held` (filled from elsewhere). */
  prune(origin: string, held: number): void {
    const m = this.by_origin.get(origin);
    if (m === undefined) return;
    for (const [seq, parked] of m) {
      if (seq > held) continue;
      m.delete(seq);
      this.release(parked);
    }
    if (m.size === 0) this.by_origin.delete(origin);
  }

  /** Drops frames parked before `before_ms`. */
  expire(before_ms: number): void {
    if (this.entries === 0) return;
    for (const [origin, m] of this.by_origin) {
      for (const [seq, parked] of m) {
        if (parked.at_ms >= before_ms) continue;
        m.delete(seq);
        this.release(parked);
      }
      if (m.size === 0) this.by_origin.delete(origin);
    }
    assert(this.bytes_held >= 0 && this.entries >= 0, "gap buffer counts stay non-negative");
  }

  private release(parked: Parked): void {
    const cost = parked_cost_bytes(parked.frame.length);
    this.bytes_held -= cost;
    this.entries--;
    const left = (this.by_peer.get(parked.from) ?? 0) - cost;
    assert(left >= 0, "a peer's share of the gap buffer stays non-negative");
    if (left === 0) this.by_peer.delete(parked.from);
    else this.by_peer.set(parked.from, left);
  }
}
