import { assert } from "../lib/assert.ts";
import { copy_bytes } from "../lib/bytes.ts";
import { crc32c_update } from "../lib/crc32c.ts";
import type { CheckedEvents } from "./checked_events.ts";
import type { FileHandle } from "./file_io.ts";
import {
  frame_crc_from_offset,
  frame_crc_offset,
  frame_header_bytes,
  frame_len_offset,
  frame_size_bytes,
  write_frame_fields,
  write_frame_header,
} from "./frame.ts";
import { staging_bytes } from "./log_options.ts";
import type { Segment } from "./segment.ts";

/** What the stager writes to, and whom it tells. */
export interface StagerSink {
  /** The open handle of the active segment. */
  handle(): FileHandle;
  /** A write reached the file outside an fsync cycle's knowledge: the next cycle must sync this handle. */
  wrote(handle: FileHandle): void;
  /** A write failed: returns the error that stops the log, to throw. */
  fail(err: unknown): Error;
}

/**
 * Assembles frames in one reusable buffer and hands them to the OS with one
 * pwrite per flush, right after the active segment's data (design.md section
 * 2: writes through the mapping + fdatasync measured 4-5x slower). Frames too
 * big for the buffer go straight to the file, header last.
 *
 * Invariant: staged_at + staged_bytes is where the active segment's data ends.
 */
export class FrameStager {
  private readonly staging = new Uint8Array(staging_bytes);
  private readonly staging_view = new DataView(this.staging.buffer);
  private readonly big_header = new Uint8Array(frame_header_bytes);
  private readonly big_header_view = new DataView(this.big_header.buffer);
  private readonly sink: StagerSink;
  private staged_bytes = 0;
  /** Offset in the active segment where staging[0] belongs. */
  private staged_at: number;

  constructor(sink: StagerSink, active_end_bytes: number) {
    this.sink = sink;
    this.staged_at = active_end_bytes;
  }

  /** Bytes waiting in the buffer. */
  get pending_bytes(): number {
    return this.staged_bytes;
  }

  /** The active segment changed: frames now go to its start. Flush first. */
  start_segment(segment: Segment): void {
    assert(this.staged_bytes === 0, "staging was flushed before the segment changed");
    assert(segment.end_bytes === 0, "a new segment starts empty");
    this.staged_at = 0;
  }

  /** Writes one frame (header + payload + padding) after the segment's last one and indexes it. */
  stage(segment: Segment, origin: string, hi: number, lo: number, seq: number, time_ms: number, flags: number, payload: Uint8Array): void {
    const size = frame_size_bytes(payload.length);
    const offset = segment.end_bytes;
    assert(offset + size <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (size <= this.staging.length) {
      if (this.staged_bytes + size > this.staging.length) this.flush();
      const at = this.staged_bytes;
      this.staging.set(payload, at + frame_header_bytes);
      this.staging.fill(0, at + frame_header_bytes + payload.length, at + size);
      write_frame_header(this.staging, this.staging_view, at, hi, lo, seq, time_ms, flags, payload);
      this.staged_bytes = at + size;
    } else {
      // Too big for staging: payload straight to the file, header last so a crash in between leaves len = 0.
      this.flush();
      const handle = this.sink.handle();
      write_frame_header(this.big_header, this.big_header_view, 0, hi, lo, seq, time_ms, flags, payload);
      try {
        handle.write(payload, 0, payload.length, offset + frame_header_bytes);
        const padding = size - frame_header_bytes - payload.length;
        if (padding > 0) handle.write(new Uint8Array(padding), 0, padding, offset + frame_header_bytes + payload.length);
        handle.write(this.big_header, 0, frame_header_bytes, offset);
      } catch (err) {
        throw this.sink.fail(err);
      }
      // Written around the staging buffer, so flush() will not note the file: the next fsync cycle must cover it.
      this.sink.wrote(handle);
      this.staged_at = offset + size;
    }
    segment.note_record(origin, seq, offset);
    segment.end_bytes = offset + size;
  }

  /** Writes event i of `events` like stage(), with `crc` as given (-1: compute it), copying the payload without a view. */
  stage_checked(segment: Segment, events: CheckedEvents, i: number, flags: number, crc: number): void {
    const src = events.src[i];
    const start = events.start[i];
    const payload_bytes = events.end[i] - start;
    const size = frame_size_bytes(payload_bytes);
    if (size > this.staging.length) {
      const payload = src.subarray(start, events.end[i]);
      this.stage(segment, events.origin[i], events.origin_hi[i], events.origin_lo[i], events.seq[i], events.time_ms[i], flags, payload);
      return;
    }
    const offset = segment.end_bytes;
    assert(offset + size <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (this.staged_bytes + size > this.staging.length) this.flush();
    const at = this.staged_bytes;
    const view = this.staging_view;
    copy_bytes(src, start, events.end[i], this.staging, at + frame_header_bytes);
    this.staging.fill(0, at + frame_header_bytes + payload_bytes, at + size);
    write_frame_fields(view, at, events.origin_hi[i], events.origin_lo[i], events.seq[i], events.time_ms[i], flags);
    const len = frame_header_bytes + payload_bytes;
    view.setUint32(at + frame_crc_offset, crc >= 0 ? crc : crc32c_update(0, this.staging, at + frame_crc_from_offset, at + len), true);
    view.setUint32(at + frame_len_offset, len, true);
    this.staged_bytes = at + size;
    segment.note_record(events.origin[i], events.seq[i], offset);
    segment.end_bytes = offset + size;
  }

  /** Hands staged frames to the OS (one pwrite). */
  flush(): void {
    if (this.staged_bytes === 0) return;
    const handle = this.sink.handle();
    try {
      handle.write(this.staging, 0, this.staged_bytes, this.staged_at);
    } catch (err) {
      throw this.sink.fail(err);
    }
    this.staged_at += this.staged_bytes;
    this.staged_bytes = 0;
    this.sink.wrote(handle);
  }
}
