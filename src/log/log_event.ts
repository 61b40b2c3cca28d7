import {
  flag_rejected,
  flag_signed,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_local,
  frame_origin_hi,
  frame_origin_lo,
  frame_payload_end,
  frame_seq,
  frame_size_of_len,
  frame_time_ms,
} from "./frame.ts";
import { format_event_id, origin_from_words } from "./ids.ts";
import type { Segment } from "./segment.ts";

/** One event as read from the log. `payload` and `frame` are zero-copy views into the segment mapping. */
export class LogEvent {
  readonly pos: number;
  readonly origin: string;
  readonly origin_hi: number;
  readonly origin_lo: number;
  readonly seq: number;
  readonly time_ms: number;
  /** The origin's flags (batch-end, signed) and this replica's mark (rejected). */
  readonly flags: number;
  /** The payload the origin wrote (for a rejected event too: see /api/quarantine). */
  readonly payload: Uint8Array;
  /** Size of the frame on disk, padding included. */
  readonly frame_bytes: number;
  private readonly map: Uint8Array;
  private readonly offset: number;

  private constructor(segment: Segment, offset: number, pos: number) {
    const view = segment.view;
    const len = frame_len(view, offset);
    this.pos = pos;
    this.origin_hi = frame_origin_hi(view, offset);
    this.origin_lo = frame_origin_lo(view, offset);
    this.origin = origin_from_words(this.origin_hi, this.origin_lo);
    this.seq = frame_seq(view, offset);
    this.time_ms = frame_time_ms(view, offset);
    this.flags = frame_flags(view, offset) | frame_local(view, offset);
    this.payload = segment.map.subarray(offset + frame_header_bytes, frame_payload_end(view, offset));
    this.frame_bytes = frame_size_of_len(len);
    this.map = segment.map;
    this.offset = offset;
  }

  static at(segment: Segment, offset: number, pos: number): LogEvent {
    return new LogEvent(segment, offset, pos);
  }

  /** `ORIGIN:SEQ`. */
  get id(): string {
    return format_event_id(this.origin, this.seq);
  }

  /** A synced event that failed a sync validator here: quarantined, kept for the origin's chain and the operator. */
  get rejected(): boolean {
    return (this.flags & flag_rejected) !== 0;
  }

  /** The frame's crc32c, as its origin wrote it. */
  get crc(): number {
    return new DataView(this.map.buffer, this.map.byteOffset, this.map.byteLength).getUint32(this.offset + 4, true);
  }

  /** Whether the frame ends a signed range (carries the origin's proof). */
  get signed(): boolean {
    return (this.flags & flag_signed) !== 0;
  }

  /**
   * A copy that owns its bytes, for a reader that holds events across turns
   * of the event loop: retention may prune the segment meanwhile and recycle
   * its file, and a view would then show another event's bytes.
   */
  detached(): LogEvent {
    const bytes = this.map.slice(this.offset, this.offset + this.frame_bytes);
    // The constructor reads only map and view: the copy stands in for its segment.
    const holder = { map: bytes, view: new DataView(bytes.buffer) } as unknown as Segment;
    return new LogEvent(holder, 0, this.pos);
  }

  /** The whole frame as stored here (header, payload, proof, padding). */
  get frame(): Uint8Array {
    return this.map.subarray(this.offset, this.offset + this.frame_bytes);
  }
}
