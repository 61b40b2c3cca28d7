import { assert } from "../lib/assert.ts";
import {
  check_frame,
  frame_header_bytes,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_bytes,
  payload_max_bytes,
} from "../log/frame.ts";
import { Malformed } from "./malformed.ts";
import type { Part } from "./messages.ts";
import { seq_hi_word_max } from "./packed.ts";

/** The largest record frame the log can hold, padding included. */
export const frame_max_bytes = frame_size_bytes(payload_max_bytes);

/**
 * Checks every frame in a received byte string before any is used: whole,
 * crc-valid, seq in 1..2^53, origin not zero. One bad frame drops the whole
 * message (the frames after it cannot be delimited with confidence).
 * Returns the number of frames.
 */
export function check_frames(frames: Uint8Array, view: DataView): number {
  const limit = frames.length;
  let at = 0;
  let count = 0;
  while (at < limit) {
    if (limit - at < frame_header_bytes) throw new Malformed("bad_frame", `${limit - at} stray bytes after the last frame`);
    if (view.getUint32(at + 20, true) >= seq_hi_word_max) throw new Malformed("seq_overflow", "a frame with a seq beyond 2^53");
    const size = check_frame(frames, view, at, limit);
    if (size <= 0) throw new Malformed("bad_frame", `frame ${count} is torn or fails its crc`);
    if (frame_seq(view, at) < 1) throw new Malformed("bad_frame", `frame ${count} has seq 0`);
    if (frame_origin_hi(view, at) === 0 && frame_origin_lo(view, at) === 0) throw new Malformed("bad_frame", `frame ${count} has origin 0`);
    at += size;
    count++;
  }
  return count;
}

/** One outgoing byte string of frames, or a fragment of a single frame larger than a message. */
export interface Chunk {
  frames: Uint8Array;
  part: Part | null;
  events: number;
}

/**
 * Packs frame views (zero-copy views into the log's mapping) into chunks of
 * at most capacity_bytes, copying each frame once. A frame larger than a
 * chunk is cut into fragments that the receiver reassembles.
 */
export class ChunkPacker {
  readonly chunks: Chunk[] = [];
  private pending: Uint8Array[] = [];
  private pending_bytes = 0;
  bytes = 0;

  constructor(private readonly capacity_bytes: number) {
    assert(capacity_bytes >= 1024, "a chunk holds at least 1 KiB");
  }

  add(frame: Uint8Array): void {
    if (this.pending_bytes + frame.length > this.capacity_bytes) this.cut();
    this.bytes += frame.length;
    if (frame.length <= this.capacity_bytes) {
      this.pending.push(frame);
      this.pending_bytes += frame.length;
      return;
    }
    // The frame's crc tells its fragments apart from those of other frames in flight.
    const id = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(4, true);
    for (let at = 0; at < frame.length; at += this.capacity_bytes) {
      const end = Math.min(frame.length, at + this.capacity_bytes);
      this.chunks.push({ frames: frame.slice(at, end), part: { at, total: frame.length, id }, events: end === frame.length ? 1 : 0 });
    }
  }

  /** Closes the chunk being filled. */
  cut(): void {
    if (this.pending.length === 0) return;
    const frames = new Uint8Array(this.pending_bytes);
    let at = 0;
    for (const f of this.pending) {
      frames.set(f, at);
      at += f.length;
    }
    this.chunks.push({ frames, part: null, events: this.pending.length });
    this.pending = [];
    this.pending_bytes = 0;
  }
}

/** At most this many large events are reassembled at once, holding at most reassembly_max_bytes. */
export const reassemblies_max = 8;
export const reassembly_max_bytes = 2 * frame_max_bytes;

interface Reassembly {
  total: number;
  /** Fragments by offset, as received (copies). */
  pieces: Map<number, Uint8Array>;
  received: number;
}

/**
 * Reassembles frames that arrived as fragments, in any order and with
 * duplicates (AWS IoT Core reorders and redelivers). Memory grows with the
 * bytes received, not with the size a sender announces; the oldest
 * reassembly is abandoned when the bounds are reached (the repair protocol
 * asks again for whatever is lost).
 */
export class Reassembler {
  private readonly open = new Map<string, Reassembly>();
  private bytes_held = 0;

  /** Returns the whole frame when `part` completes it, null while incomplete. Throws Malformed when the part cannot belong to a frame. */
  add(sender: string, part: Part, bytes: Uint8Array): Uint8Array | null {
    if (part.total > frame_max_bytes) throw new Malformed("bad_part", `a fragmented frame of ${part.total} bytes exceeds ${frame_max_bytes}`);
    if (bytes.length === 0 || part.at + bytes.length > part.total) throw new Malformed("bad_part", "a fragment beyond its frame");
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
    r.pieces.set(part.at, bytes.slice());
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
    const frame = new Uint8Array(r.total);
    let covered = 0;
    for (const at of [...r.pieces.keys()].sort((a, b) => a - b)) {
      const piece = r.pieces.get(at) as Uint8Array;
      if (at !== covered) throw new Malformed("bad_part", "fragments that overlap or leave a hole");
      frame.set(piece, at);
      covered += piece.length;
    }
    if (covered !== r.total) throw new Malformed("bad_part", "fragments that overlap or leave a hole");
    return frame;
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
