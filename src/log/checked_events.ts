import { frame_size_bytes } from "./frame.ts";

/**
 * Events of other origins whose record frames were already checked by the
 * caller (sync's decoder verified each crc over exactly these fields and
 * payload bytes), as parallel arrays: no object per event. `Log.accept_checked`
 * writes them with the origin's own crc instead of computing it again.
 * Payloads stay where they are (`src[i]`, bytes [start, end)) until written.
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

  /** Two batches of the first and second half (when one does not fit a segment). */
  halves(): [CheckedEvents, CheckedEvents] {
    const half = this.count >> 1;
    const parts: [CheckedEvents, CheckedEvents] = [new CheckedEvents(), new CheckedEvents()];
    for (let i = 0; i < this.count; i++) {
      parts[i < half ? 0 : 1].push(
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
