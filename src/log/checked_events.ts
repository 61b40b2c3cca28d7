import { flag_signed, frame_size_bytes } from "./frame.ts";

/**
 * Events of other origins whose record frames were already checked by the
 * caller (crc and signed range: see signed_ranges.ts), as parallel arrays:
 * no object per event. `Log.accept_checked` writes them with the origin's
 * own crc instead of computing it again. Frame bodies stay where they are
 * (`src[i]`, bytes [start, end): the payload, then the proof when the flags
 * say signed) until written.
 */
export class CheckedEvents {
  count = 0;
  frame_bytes = 0;
  payload_bytes = 0;
  readonly origin: string[] = [];
  readonly origin_hi: number[] = [];
  readonly origin_lo: number[] = [];
  readonly seq: number[] = [];
  readonly time_ms: number[] = [];
  readonly flags: number[] = [];
  /** The frame's crc32c as the origin wrote it, or -1 when the log must compute it (a new payload, e.g. a rejection). */
  readonly crc: number[] = [];
  readonly src: Uint8Array[] = [];
  readonly start: number[] = [];
  readonly end: number[] = [];

  clear(): void {
    this.count = 0;
    this.frame_bytes = 0;
    this.payload_bytes = 0;
    this.src.length = 0;
  }

  /** Keeps the events whose keep[i] is 1, in order. */
  retain(keep: Uint8Array): void {
    let n = 0;
    const count = this.count;
    this.count = 0;
    this.frame_bytes = 0;
    this.payload_bytes = 0;
    for (let i = 0; i < count; i++) {
      if (keep[i] !== 1) continue;
      if (n !== i) {
        this.origin[n] = this.origin[i];
        this.origin_hi[n] = this.origin_hi[i];
        this.origin_lo[n] = this.origin_lo[i];
        this.seq[n] = this.seq[i];
        this.time_ms[n] = this.time_ms[i];
        this.flags[n] = this.flags[i];
        this.crc[n] = this.crc[i];
        this.src[n] = this.src[i];
        this.start[n] = this.start[i];
        this.end[n] = this.end[i];
      }
      n++;
      this.payload_bytes += this.end[n - 1] - this.start[n - 1];
      this.frame_bytes += frame_size_bytes(this.end[n - 1] - this.start[n - 1]);
    }
    this.count = n;
    this.src.length = n;
  }

  /**
   * Two batches split at the range boundary (after a signed frame) nearest
   * the middle, for when one does not fit in a segment; null when the batch
   * is one signed range, which must be written whole.
   */
  halves(): [CheckedEvents, CheckedEvents] | null {
    let split = -1;
    for (let i = 0; i < this.count - 1; i++) {
      if ((this.flags[i] & flag_signed) !== 0 && (split < 0 || Math.abs(i + 1 - this.count / 2) < Math.abs(split - this.count / 2))) split = i + 1;
    }
    if (split < 0) return null;
    const parts: [CheckedEvents, CheckedEvents] = [new CheckedEvents(), new CheckedEvents()];
    for (let i = 0; i < this.count; i++) {
      parts[i < split ? 0 : 1].push(
        this.origin[i],
        this.origin_hi[i],
        this.origin_lo[i],
        this.seq[i],
        this.time_ms[i],
        this.flags[i],
        this.crc[i],
        this.src[i],
        this.start[i],
        this.end[i],
      );
    }
    return parts;
  }

  push(origin: string, hi: number, lo: number, seq: number, time_ms: number, flags: number, crc: number, src: Uint8Array, start: number, end: number): void {
    const i = this.count++;
    this.origin[i] = origin;
    this.origin_hi[i] = hi;
    this.origin_lo[i] = lo;
    this.seq[i] = seq;
    this.time_ms[i] = time_ms;
    this.flags[i] = flags;
    this.crc[i] = crc;
    this.src[i] = src;
    this.start[i] = start;
    this.end[i] = end;
    this.payload_bytes += end - start;
    this.frame_bytes += frame_size_bytes(end - start);
  }
}
