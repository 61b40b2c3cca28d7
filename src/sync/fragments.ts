import { Malformed } from "./malformed.ts";
import type { Part } from "./messages.ts";
import { event_region_max_bytes } from "./wire_events.ts";

/** At most this many large events are reassembled at once, holding at most reassembly_max_bytes. */
export const reassemblies_max = 8;
export const reassembly_max_bytes = 2 * event_region_max_bytes;
/** Smallest fragment but the last of an event (senders cut at the chunk size, at least 1 KiB). */
export const fragment_min_bytes = 1024;

interface Reassembly {
  total: number;
  /** Fragments by offset, as received (copies). */
  pieces: Map<number, Uint8Array>;
  received: number;
}

/**
 * Reassembles events that arrived as fragments, in any order and with
 * duplicates (AWS IoT Core reorders and redelivers). Memory grows with the
 * bytes received, not with the size a sender announces; the oldest
 * reassembly is abandoned when the bounds are reached (the repair protocol
 * asks again for whatever is lost).
 */
export class Reassembler {
  private readonly open = new Map<string, Reassembly>();
  private bytes_held = 0;

  /** Returns the whole encoded event when `part` completes it, null while incomplete. Throws Malformed when the part cannot belong to one. */
  add(sender: string, part: Part, bytes: Uint8Array): Uint8Array | null {
    if (part.total > event_region_max_bytes) throw new Malformed("bad_part", `a fragmented event of ${part.total} bytes exceeds ${event_region_max_bytes}`);
    if (bytes.length === 0 || part.at + bytes.length > part.total) throw new Malformed("bad_part", "a fragment beyond its event");
    // Senders cut fragments of a message's size; tiny ones would only multiply the bookkeeping a peer can make us hold.
    if (bytes.length < fragment_min_bytes && part.at + bytes.length !== part.total) throw new Malformed("bad_part", `a fragment of ${bytes.length} bytes`);
    const key = `${sender}/${part.id}/${part.total}`;
    let r = this.open.get(key);
    if (r === undefined) {
      r = { total: part.total, pieces: new Map(), received: 0 };
      this.open.set(key, r);
    }
    const seen = r.pieces.get(part.at);
    if (seen !== undefined) {
      if (seen.length !== bytes.length) this.abandon(key);
      return null; // a duplicate
    }
    // A copy: `bytes` may be a view into a larger socket buffer (Buffer's slice() would keep all of it alive).
    r.pieces.set(part.at, new Uint8Array(bytes));
    r.received += bytes.length;
    this.bytes_held += bytes.length;
    if (r.received >= r.total) return this.complete(key, r);
    while (this.open.size > reassemblies_max || this.bytes_held > reassembly_max_bytes) {
      this.abandon(this.open.keys().next().value as string);
    }
    return null;
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
    this.bytes_held -= r.received;
  }

  get bytes(): number {
    return this.bytes_held;
  }
}
