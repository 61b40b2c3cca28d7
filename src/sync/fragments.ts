import { assert } from "../lib/assert.ts";
import type { ForgetReason } from "./counters.ts";
import { Malformed } from "./malformed.ts";
import type { Part } from "./messages.ts";
import { reassemblies_max, reassemblies_per_peer_max, reassembly_overhead_bytes, reassembly_piece_overhead_bytes } from "./sync_options.ts";
import { event_region_max_bytes } from "./wire_events.ts";

/** Smallest fragment but the last of an event (senders cut at the chunk size, at least 1 KiB). */
export const fragment_min_bytes = 1024;

interface Reassembly {
  readonly sender: string;
  total: number;
  /** Fragments by offset, as received (copies). */
  pieces: Map<number, Uint8Array>;
  received: number;
  /** Memory it holds: pieces plus overheads. */
  cost: number;
  started_ms: number;
}

/**
 * Reassembles events that arrived as fragments, in any order and with
 * duplicates (AWS IoT Core reorders and redelivers). Memory grows with the
 * bytes received, not with the size a sender announces, and is counted
 * with the measured overhead of each piece and reassembly. Limits per
 * sending peer (per_peer_max_bytes, reassemblies_per_peer_max): beyond them
 * the peer's own oldest reassembly is abandoned. Limits in all (max_bytes,
 * reassemblies_max): when a fragment does not fit, the peer holding the
 * most gives way (its oldest reassembly), but only if it holds more than
 * the sender would; otherwise the fragment is refused. With max_bytes at
 * least twice per_peer_max_bytes the total never fills with two peers, so
 * one peer can never push out another's reassembly; several can only push
 * out the biggest holder's. Reassemblies older than the hold time are
 * abandoned (expire). The repair protocol asks again for whatever is lost.
 */
export class Reassembler {
  private readonly open = new Map<string, Reassembly>();
  private bytes_held = 0;
  /** Per sender: memory held and reassemblies open. */
  private readonly by_sender = new Map<string, { bytes: number; count: number }>();

  constructor(
    private readonly max_bytes: number,
    private readonly per_peer_max_bytes: number,
    /** Told about each reassembly abandoned to stay within a limit or for its age. */
    private readonly on_forget: (reason: ForgetReason) => void = () => {},
  ) {}

  /**
   * Returns the whole encoded event when `part` completes it, null while
   * incomplete. Throws Malformed when the part cannot belong to one, or
   * (reassembly_full) when the reassemblies of all peers leave no room.
   * `sender` is the peer, `stream` tells its pushes from its answers.
   */
  add(sender: string, stream: string, part: Part, bytes: Uint8Array, now_ms: number): Uint8Array | null {
    if (part.total > event_region_max_bytes) throw new Malformed("bad_part", `a fragmented event of ${part.total} bytes exceeds ${event_region_max_bytes}`);
    if (bytes.length === 0 || part.at + bytes.length > part.total) throw new Malformed("bad_part", "a fragment beyond its event");
    // Senders cut fragments of a message's size; tiny ones would only multiply the bookkeeping a peer can make us hold.
    if (bytes.length < fragment_min_bytes && part.at + bytes.length !== part.total) throw new Malformed("bad_part", `a fragment of ${bytes.length} bytes`);
    const key = `${stream}/${sender}/${part.id}/${part.total}`;
    let r = this.open.get(key);
    if (r !== undefined) {
      const seen = r.pieces.get(part.at);
      if (seen !== undefined) {
        if (seen.length !== bytes.length) this.abandon(key);
        return null; // a duplicate
      }
    }
    const cost = bytes.length + reassembly_piece_overhead_bytes + (r === undefined ? reassembly_overhead_bytes : 0);
    if (cost > this.per_peer_max_bytes) throw new Malformed("bad_part", "a fragment larger than a peer's reassembly share");
    // The sender's own older reassemblies make room first, then the fragment must fit in all.
    this.make_room(sender, key, cost, r === undefined);
    while (this.bytes_held + cost > this.max_bytes || (r === undefined && this.open.size >= reassemblies_max)) {
      if (!this.shed_biggest(sender, (this.by_sender.get(sender)?.bytes ?? 0) + cost)) throw new Malformed("reassembly_full", "the reassemblies of all peers leave no room");
    }
    if (r === undefined) {
      r = { sender, total: part.total, pieces: new Map(), received: 0, cost: 0, started_ms: now_ms };
      this.open.set(key, r);
      this.sender_stats(sender).count++;
    }
    // A copy: `bytes` may be a view into a larger socket buffer (Buffer's slice() would keep all of it alive).
    r.pieces.set(part.at, new Uint8Array(bytes));
    r.received += bytes.length;
    r.cost += cost;
    this.bytes_held += cost;
    this.sender_stats(sender).bytes += cost;
    assert(this.bytes_held <= this.max_bytes, "reassembly stays within max_bytes");
    if (r.received >= r.total) return this.complete(key, r);
    return null;
  }

  /** Abandons reassemblies started before `before_ms`. */
  expire(before_ms: number): void {
    for (const [key, r] of this.open) {
      if (r.started_ms >= before_ms) continue;
      this.abandon(key);
      this.on_forget("reassembly_expired");
    }
  }

  get bytes(): number {
    return this.bytes_held;
  }

  /** Memory held for `sender`'s fragments. */
  bytes_of(sender: string): number {
    return this.by_sender.get(sender)?.bytes ?? 0;
  }

  get count(): number {
    return this.open.size;
  }

  /** Abandons `sender`'s oldest reassemblies (never `keep`) until `cost` more fits its share. */
  private make_room(sender: string, keep: string, cost: number, new_one: boolean): void {
    const stats = this.by_sender.get(sender);
    if (stats === undefined) return;
    while (stats.bytes + cost > this.per_peer_max_bytes || (new_one && stats.count >= reassemblies_per_peer_max)) {
      let oldest: string | null = null;
      for (const [key, r] of this.open) {
        if (r.sender === sender && key !== keep) {
          oldest = key;
          break;
        }
      }
      if (oldest === null) return;
      this.abandon(oldest);
      this.on_forget("reassembly_per_peer");
      if (!this.by_sender.has(sender)) return;
    }
  }

  /** Abandons the oldest reassembly of the peer holding the most, if that is another peer holding more than `than` bytes. */
  private shed_biggest(sender: string, than: number): boolean {
    let biggest: string | null = null;
    let bytes = than;
    for (const [peer, stats] of this.by_sender) {
      if (peer !== sender && stats.bytes > bytes) {
        biggest = peer;
        bytes = stats.bytes;
      }
    }
    if (biggest === null) return false;
    for (const [key, r] of this.open) {
      if (r.sender !== biggest) continue;
      this.abandon(key);
      this.on_forget("reassembly_per_peer");
      return true;
    }
    return false;
  }

  private sender_stats(sender: string): { bytes: number; count: number } {
    let stats = this.by_sender.get(sender);
    if (stats === undefined) {
      stats = { bytes: 0, count: 0 };
      this.by_sender.set(sender, stats);
    }
    return stats;
  }

  private complete(key: string, r: Reassembly): Uint8Array {
    this.abandon(key);
    const whole = new Uint8Array(r.total);
    let covered = 0;
    for (const at of [...r.pieces.keys()].sort((a, b) => a - b)) {
      const piece = r.pieces.get(at) as Uint8Array;
      if (at !== covered) throw new Malformed("bad_part", "fragments that overlap or leave a hole");
      whole.set(piece, at);
      covered += piece.length;
    }
    if (covered !== r.total) throw new Malformed("bad_part", "fragments that overlap or leave a hole");
    return whole;
  }

  private abandon(key: string): void {
    const r = this.open.get(key);
    if (r === undefined) return;
    this.open.delete(key);
    this.bytes_held -= r.cost;
    const stats = this.by_sender.get(r.sender) as { bytes: number; count: number };
    stats.bytes -= r.cost;
    stats.count--;
    assert(stats.bytes >= 0 && stats.count >= 0 && this.bytes_held >= 0, "reassembly counts stay non-negative");
    if (stats.count === 0) this.by_sender.delete(r.sender);
  }
}
