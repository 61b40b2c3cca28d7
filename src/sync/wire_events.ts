import { assert } from "../lib/assert.ts";
import { copy_bytes, read_u64, write_u64 } from "../lib/bytes.ts";
import {
  flag_batch_end,
  flag_signed,
  frame_crc,
  frame_crc_compute,
  frame_crc_offset,
  frame_flags,
  frame_flags_known,
  frame_header_bytes,
  frame_len,
  frame_len_offset,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_size_at,
  frame_size_of_len,
  frame_time_ms,
  payload_max_bytes,
  proof_bytes,
  write_frame_fields,
} from "../log/frame.ts";
import { range_bytes_max, range_seal_bytes } from "../log/log_options.ts";
import { origin_from_words } from "../log/ids.ts";
import { CheckedEvents } from "../log/checked_events.ts";
import { Malformed } from "./malformed.ts";
import type { Part } from "./messages.ts";
import { seq_hi_word_max } from "./packed.ts";

/**
 * Events on the wire (protocol v3): runs of one origin's consecutive seqs,
 * so the 40-byte record header shrinks to about 8 bytes per event while the
 * receiver can rebuild the origin's record frame bit for bit, check the
 * origin's own crc32c, and check the origin's signature over whole ranges
 * (proof.ts). Little-endian:
 *
 *   run   := u32 origin_hi | u32 origin_lo | u32 first_seq_lo | u32 first_seq_hi | u32 count | event * count
 *   event := uleb128 body_len | u32 crc32c | u8 flags | time | body
 *   time  := u64 time_ms when flags & 0x80, else uleb128 zigzag(time_ms - previous event's time_ms in the run)
 *   body  := payload, then the 104-byte proof when flags & signed
 *
 * flags & 5 are the origin's frame flags (batch-end, signed); a receiver's
 * own marks (rejected) never travel. A sender never cuts a signed range
 * across messages: a range that fits no message goes alone, in fragments.
 */
export const run_header_bytes = 20;
const wire_time_absolute = 0x80;
const wire_flags_known = wire_time_absolute | frame_flags_known;
/** Deltas within +-2^30 ms are sent as a varint; anything else as a full u64. */
const delta_max_ms = 2 ** 30;
const seq_max = 2 ** 53 - 1;

/** Most bytes one event can take on the wire, its run header included. */
export function encoded_event_bytes_max(payload_bytes: number): number {
  return run_header_bytes + 4 + 4 + 1 + 8 + payload_bytes;
}

/**
 * The largest encoded region a fragmented message reassembles to: one
 * signed range (its events encode in no more bytes than their frames take,
 * plus one run header).
 */
export const event_region_max_bytes = run_header_bytes + range_bytes_max;
assert(event_region_max_bytes >= encoded_event_bytes_max(payload_max_bytes + proof_bytes), "one event of the largest payload fits a region");

function varint_bytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/**
 * Encodes record frames (read in place from a segment mapping) into one
 * chunk of at most capacity_bytes. The chunk is a view into a reused buffer:
 * valid until the next `add` or `reset`, so the caller copies it into a
 * message right away.
 */
export class EventsEncoder {
  private readonly buf: Uint8Array;
  private readonly view: DataView;
  private limit_bytes: number;
  private at = 0;
  private run_at = -1;
  private run_hi = 0;
  private run_lo = 0;
  private run_next_seq = 0;
  private run_count = 0;
  private prev_time_ms = 0;
  /** Events in the current chunk. */
  events = 0;

  constructor(readonly capacity_bytes: number) {
    assert(capacity_bytes >= 1024, "a chunk holds at least 1 KiB");
    this.buf = new Uint8Array(capacity_bytes);
    this.view = new DataView(this.buf.buffer);
    this.limit_bytes = capacity_bytes;
  }

  /** The most bytes a chunk may take now (set by reset). */
  get limit(): number {
    return this.limit_bytes;
  }

  /** Whether the frame at `at` can go in a chunk at all (else send it alone, fragmented: encode_alone). */
  fits_alone(view: DataView, at: number): boolean {
    return encoded_event_bytes_max(frame_len(view, at) - frame_header_bytes) <= this.limit_bytes;
  }

  get bytes(): number {
    return this.at;
  }

  /** The encoded chunk so far (a view; see the class comment). */
  chunk(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }

  /** Starts an empty chunk of at most limit_bytes (default: the capacity). */
  reset(limit_bytes = this.capacity_bytes): void {
    assert(limit_bytes >= 1024 && limit_bytes <= this.capacity_bytes, "a chunk limit within the encoder's capacity");
    this.limit_bytes = limit_bytes;
    this.at = 0;
    this.run_at = -1;
    this.events = 0;
  }

  /** Appends the frame at map[at]; false when it does not fit in this chunk (send the chunk, reset, add again). */
  add(map: Uint8Array, view: DataView, at: number): boolean {
    const len = frame_len(view, at);
    const payload_bytes = len - frame_header_bytes;
    const hi = frame_origin_hi(view, at);
    const lo = frame_origin_lo(view, at);
    const seq = frame_seq(view, at);
    const time_ms = frame_time_ms(view, at);
    const continues = this.run_at >= 0 && hi === this.run_hi && lo === this.run_lo && seq === this.run_next_seq;
    const delta = continues ? time_ms - this.prev_time_ms : Number.POSITIVE_INFINITY;
    const small_delta = delta > -delta_max_ms && delta < delta_max_ms;
    const zigzag = small_delta ? (delta >= 0 ? 2 * delta : -2 * delta - 1) : 0;
    const need = (continues ? 0 : run_header_bytes) + varint_bytes(payload_bytes) + 5 + (small_delta ? varint_bytes(zigzag) : 8) + payload_bytes;
    if (this.at + need > this.limit_bytes) return false;
    const out = this.view;
    if (!continues) {
      this.run_at = this.at;
      this.run_hi = hi;
      this.run_lo = lo;
      this.run_count = 0;
      out.setUint32(this.at, hi, true);
      out.setUint32(this.at + 4, lo, true);
      write_u64(out, this.at + 8, seq);
      this.at += run_header_bytes;
    }
    this.at = this.put_varint(this.at, payload_bytes);
    out.setUint32(this.at, frame_crc(view, at), true);
    const flags = frame_flags(view, at) & frame_flags_known;
    if (small_delta) {
      this.buf[this.at + 4] = flags;
      this.at = this.put_varint(this.at + 5, zigzag);
    } else {
      this.buf[this.at + 4] = flags | wire_time_absolute;
      write_u64(out, this.at + 5, time_ms);
      this.at += 13;
    }
    copy_bytes(map, at + frame_header_bytes, at + len, this.buf, this.at);
    this.at += payload_bytes;
    this.run_count++;
    out.setUint32(this.run_at + 16, this.run_count, true);
    this.run_next_seq = seq + 1;
    this.prev_time_ms = time_ms;
    this.events++;
    return true;
  }

  /** The encoder's state, to undo adds with rollback (a range that does not fit). */
  mark(): EncoderMark {
    return { at: this.at, run_at: this.run_at, run_hi: this.run_hi, run_lo: this.run_lo, run_next_seq: this.run_next_seq, run_count: this.run_count, prev_time_ms: this.prev_time_ms, events: this.events };
  }

  rollback(m: EncoderMark): void {
    this.at = m.at;
    this.run_at = m.run_at;
    this.run_hi = m.run_hi;
    this.run_lo = m.run_lo;
    this.run_next_seq = m.run_next_seq;
    this.run_count = m.run_count;
    this.prev_time_ms = m.prev_time_ms;
    this.events = m.events;
    if (this.run_at >= 0) this.view.setUint32(this.run_at + 16, this.run_count, true);
  }

  private put_varint(at: number, value: number): number {
    const buf = this.buf;
    while (value >= 0x80) {
      buf[at++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    buf[at++] = value;
    return at;
  }
}

interface EncoderMark {
  at: number;
  run_at: number;
  run_hi: number;
  run_lo: number;
  run_next_seq: number;
  run_count: number;
  prev_time_ms: number;
  events: number;
}

/**
 * Feeds frames to an encoder, whole signed ranges at a time, and hands every
 * full chunk to `send`; a range too big for any chunk goes alone, cut into
 * fragments (`part`) that the receiver reassembles. What is left in the
 * encoder after the last `add` is the caller's to send (an answer marks it
 * last); `in_range` says whether frames of an unfinished range wait.
 */
export class EventsChunker {
  private readonly range_map: Uint8Array[] = [];
  private readonly range_view: DataView[] = [];
  private readonly range_at: number[] = [];

  constructor(
    private readonly encoder: EventsEncoder,
    private readonly send: (events: Uint8Array, part: Part | null) => void,
  ) {}

  /** Whether frames wait for the signed frame that ends their range. */
  get in_range(): boolean {
    return this.range_at.length > 0;
  }

  add(map: Uint8Array, view: DataView, at: number): void {
    this.range_map.push(map);
    this.range_view.push(view);
    this.range_at.push(at);
    if ((frame_flags(view, at) & flag_signed) !== 0) this.emit_range();
  }

  /** Sends the chunk being filled, if it holds any event (and an unfinished range's frames first, which a receiver will drop). */
  flush(): void {
    if (this.in_range) this.emit_range();
    if (this.encoder.events === 0) return;
    this.send(this.encoder.chunk(), null);
    this.encoder.reset(this.encoder.limit);
  }

  private emit_range(): void {
    const encoder = this.encoder;
    const mark = encoder.mark();
    if (!this.add_range(encoder)) {
      encoder.rollback(mark);
      if (encoder.events > 0) {
        this.send(encoder.chunk(), null);
        encoder.reset(encoder.limit);
      }
      if (!this.add_range(encoder)) {
        encoder.reset(encoder.limit);
        const whole = this.encode_alone();
        const id = frame_crc(this.range_view[0], this.range_at[0]);
        for (let p = 0; p < whole.length; p += encoder.limit) {
          this.send(whole.subarray(p, Math.min(whole.length, p + encoder.limit)), { at: p, total: whole.length, id });
        }
      }
    }
    this.range_map.length = 0;
    this.range_view.length = 0;
    this.range_at.length = 0;
  }

  private add_range(encoder: EventsEncoder): boolean {
    for (let i = 0; i < this.range_at.length; i++) {
      if (!encoder.add(this.range_map[i], this.range_view[i], this.range_at[i])) return false;
    }
    return true;
  }

  /** A range too big for a message, encoded on its own (then sent in fragments). */
  private encode_alone(): Uint8Array {
    let bytes = run_header_bytes;
    for (let i = 0; i < this.range_at.length; i++) bytes += encoded_event_bytes_max(frame_len(this.range_view[i], this.range_at[i]) - frame_header_bytes);
    const encoder = new EventsEncoder(Math.max(1024, bytes));
    assert(this.add_range(encoder), "a range fits a chunk sized for it");
    return encoder.chunk();
  }
}

/**
 * The events of one received region, decoded and checked: CheckedEvents
 * (parallel arrays, no object per event, payloads left in the received
 * message) plus where each run starts. Reused from message to message.
 */
/** DecodedEvents keeps buffers up to this size from message to message. */
const shrink_above_bytes = 1024 * 1024;

/**
 * Events a reassembled region may hold: one signed range, whose frames
 * before its last take less than range_seal_bytes (an origin ends a range
 * before the next frame past that), each at least a 40-byte header.
 */
export const region_events_max = Math.ceil(range_seal_bytes / frame_header_bytes) + 1;

export class DecodedEvents extends CheckedEvents {
  /** Index of each run's first event. */
  readonly run_first: number[] = [];
  /** The rebuilt frames, contiguous (src of every event); reused, grown on demand. */
  frames = new Uint8Array(64 * 1024);
  frames_view = new DataView(this.frames.buffer);

  override clear(): void {
    super.clear();
    this.run_first.length = 0;
  }

  /** Room for `bytes` of frames, keeping the `used` bytes written so far (and the events pointing into them). */
  grow_frames(used: number, bytes: number): void {
    const old = this.frames;
    this.frames = new Uint8Array(Math.max(bytes, old.length * 2));
    this.frames.set(old.subarray(0, used));
    this.frames_view = new DataView(this.frames.buffer);
    for (let i = 0; i < this.count; i++) this.src[i] = this.frames;
  }

  /** Lets go of buffers a big message grew (a fragmented range), so one such message does not keep its memory. */
  shrink(): void {
    if (this.frames.length <= shrink_above_bytes) return;
    this.frames = new Uint8Array(64 * 1024);
    this.frames_view = new DataView(this.frames.buffer);
    this.clear();
    for (const a of [this.origin, this.origin_hi, this.origin_lo, this.seq, this.time_ms, this.flags, this.crc, this.start, this.end]) a.length = 0;
  }

  /** Recomputes run_first after events were removed (retain): a run is one origin's consecutive seqs. */
  reindex_runs(): void {
    this.run_first.length = 0;
    for (let i = 0; i < this.count; i++) {
      if (i === 0 || this.origin[i] !== this.origin[i - 1] || this.seq[i] !== this.seq[i - 1] + 1) this.run_first.push(i);
    }
  }
}

/** Where read_varint stopped (a module variable, so reading a number allocates nothing). */
let varint_end = 0;

function read_varint(bytes: Uint8Array, at: number, end: number, max_bytes: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < max_bytes; i++) {
    if (at >= end) throw new Malformed("bad_frame", "an event cut short");
    const b = bytes[at++];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      varint_end = at;
      return value;
    }
    scale *= 128;
  }
  throw new Malformed("bad_frame", "a number longer than allowed");
}

/**
 * Decodes and checks every event of `bytes` into `out` before any is used:
 * whole, crc-valid, seq in 1..2^53, origin not zero, known flags. Each
 * event's frame is rebuilt as its origin wrote it into out.frames (one
 * contiguous buffer, so signed ranges hash in bulk: signed_ranges.ts). One
 * bad event drops the whole message, as do more than events_max events (a
 * reassembled region holds one range). Returns the number of events.
 */
export function decode_events(bytes: Uint8Array, out: DecodedEvents, events_max = Number.POSITIVE_INFINITY): number {
  out.clear();
  let frames = out.frames;
  let fview = out.frames_view;
  let fat = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let at = 0;
  while (at < end) {
    if (end - at < run_header_bytes) throw new Malformed("bad_frame", `${end - at} stray bytes after the last event`);
    const hi = view.getUint32(at, true);
    const lo = view.getUint32(at + 4, true);
    const seq_hi = view.getUint32(at + 12, true);
    if (seq_hi >= seq_hi_word_max) throw new Malformed("seq_overflow", "a run starting beyond seq 2^53");
    const first_seq = read_u64(view, at + 8);
    const count = view.getUint32(at + 16, true);
    if (hi === 0 && lo === 0) throw new Malformed("bad_frame", "a run of origin 0");
    if (first_seq < 1 || count < 1) throw new Malformed("bad_frame", "a run with seq 0 or no events");
    // Not first_seq + count - 1 > seq_max: that sum rounds (2^53 - 1 + 2 is 2^53 in a double) and let seq 2^53 through.
    if (count - 1 > seq_max - first_seq) throw new Malformed("seq_overflow", "a run reaching beyond seq 2^53");
    if (count > (end - at) / 6) throw new Malformed("bad_frame", `a run of ${count} events in ${end - at} bytes`);
    if (out.count + count > events_max) throw new Malformed("bad_part", `more than ${events_max} events where at most that many may be`);
    at += run_header_bytes;
    const origin = origin_from_words(hi, lo);
    out.run_first.push(out.count);
    let time_ms = 0;
    for (let i = 0; i < count; i++) {
      const body_bytes = read_varint(bytes, at, end, 4);
      at = varint_end;
      if (body_bytes > payload_max_bytes + proof_bytes) throw new Malformed("bad_frame", `an event of ${body_bytes} bytes`);
      if (end - at < 5) throw new Malformed("bad_frame", "an event cut short");
      const crc = view.getUint32(at, true);
      const wire_flags = bytes[at + 4];
      at += 5;
      if ((wire_flags & ~wire_flags_known) !== 0) throw new Malformed("bad_frame", `unknown event flags ${wire_flags}`);
      if ((wire_flags & wire_time_absolute) !== 0) {
        if (end - at < 8) throw new Malformed("bad_frame", "an event cut short");
        const time_hi = view.getUint32(at + 4, true);
        if (time_hi >= seq_hi_word_max) throw new Malformed("bad_frame", "a time beyond 2^53 ms");
        time_ms = read_u64(view, at);
        at += 8;
      } else {
        const zigzag = read_varint(bytes, at, end, 5);
        at = varint_end;
        if (zigzag >= 2 * delta_max_ms) throw new Malformed("bad_frame", "a time delta out of range");
        time_ms += zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2;
        if (time_ms < 0 || time_ms > seq_max) throw new Malformed("bad_frame", "a time out of range");
      }
      if (end - at < body_bytes) throw new Malformed("bad_frame", "an event cut short");
      const seq = first_seq + i;
      const flags = wire_flags & frame_flags_known;
      if ((flags & flag_signed) !== 0 && body_bytes < proof_bytes) throw new Malformed("bad_frame", `event ${origin}:${seq} is signed but has no room for its proof`);
      const len = frame_header_bytes + body_bytes;
      const size = frame_size_of_len(len);
      if (fat + size > frames.length) {
        out.grow_frames(fat, fat + size);
        frames = out.frames;
        fview = out.frames_view;
      }
      write_frame_fields(fview, fat, hi, lo, seq, time_ms, flags);
      copy_bytes(bytes, at, at + body_bytes, frames, fat + frame_header_bytes);
      frames.fill(0, fat + len, fat + size);
      fview.setUint32(fat + frame_len_offset, len, true);
      fview.setUint32(fat + frame_crc_offset, crc, true);
      if (frame_crc_compute(frames, fat, len) !== crc) throw new Malformed("bad_frame", `event ${origin}:${seq} fails its crc`);
      out.push(origin, hi, lo, seq, time_ms, flags, crc, frames, fat + frame_header_bytes, fat + len);
      at += body_bytes;
      fat += size;
    }
  }
  return out.count;
}

/** Encodes concatenated record frames (e.g. read from a log) as a wire region; for tests and tools. */
export function encode_frames(frames: Uint8Array): Uint8Array {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  const parts: Uint8Array[] = [];
  let encoder = new EventsEncoder(Math.max(1024, frames.length * 2));
  for (let at = 0; at < frames.length; ) {
    assert(frame_len(view, at) >= frame_header_bytes, "a whole frame");
    if (!encoder.add(frames, view, at)) {
      parts.push(encoder.chunk().slice());
      encoder = new EventsEncoder(encoder.capacity_bytes);
      continue;
    }
    at += frame_size_at(view, at);
  }
  parts.push(encoder.chunk().slice());
  return parts.length === 1 ? parts[0] : new Uint8Array(Buffer.concat(parts));
}
