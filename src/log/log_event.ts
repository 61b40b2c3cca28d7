import {
  flag_rejected,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_bytes,
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
  readonly flags: number;
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
    this.flags = frame_flags(view, offset);
    this.payload = segment.map.subarray(offset + frame_header_bytes, offset + len);
    this.frame_bytes = frame_size_bytes(len - frame_header_bytes);
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

  /** A synced event that failed validation: its payload is the validator's message. */
  get rejected(): boolean {
    return (this.flags & flag_rejected) !== 0;
  }

  /** The whole checksummed frame (header, payload, padding), as sent on the wire. */
  get frame(): Uint8Array {
    return this.map.subarray(this.offset, this.offset + this.frame_bytes);
  }
}
