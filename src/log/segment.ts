import { assert } from "../lib/assert.ts";
import { crc32c } from "../lib/crc32c.ts";
import { frame_header_bytes, frame_len, frame_origin_hi, frame_origin_lo, frame_seq, frame_size_of_len } from "./frame.ts";

/**
 * One preallocated segment file and its in-memory index. A sealed segment's
 * index is persisted as a small summary next to it, so opening a big log
 * reads summaries instead of scanning every record.
 */

/** Every index_stride_events-th record (by pos, and by seq per origin) is indexed. */
export const index_stride_events = 256;

export interface OriginRange {
  seq_first: number;
  seq_last: number;
  /** offsets[k], positions[k]: where seq_first + k * stride sits. */
  offsets: number[];
  positions: number[];
  /**
   * Where seq_last sits (-1 when unknown: a range read from a summary), so
   * an origin's newest event is found without walking the frames of other
   * origins interleaved since the last indexed one: a hub compares each
   * spoke's announced head against it on every vv (Replicator.check_head).
   * In memory only; summaries do not carry it.
   */
  last_offset: number;
  last_pos: number;
}

export interface Location {
  offset: number;
  pos: number;
}

export const segment_name_digits = 20;

export function segment_file_name(first_pos: number): string {
  return `${String(first_pos).padStart(segment_name_digits, "0")}.seg`;
}

export function summary_file_name(first_pos: number): string {
  return `${String(first_pos).padStart(segment_name_digits, "0")}.sum`;
}

export function parse_segment_file_name(name: string): number | null {
  const m = /^(\d{20})\.seg$/.exec(name);
  return m ? Number(m[1]) : null;
}

export class Segment {
  readonly first_pos: number;
  readonly file: string;
  /** Held for as long as the segment is open: Bun unmaps a mapping when it is collected. */
  readonly map: Uint8Array;
  readonly view: DataView;
  /** Offset just after the last committed record. */
  end_bytes = 0;
  count = 0;
  sealed = false;
  /** Retention removed it: its file may hold another segment's frames by now. */
  pruned = false;
  /** pos_offsets[k]: offset of the record at first_pos + k * stride. */
  pos_offsets: number[] = [];
  origins = new Map<string, OriginRange>();

  constructor(first_pos: number, file: string, map: Uint8Array) {
    assert(map.length > 0 && map.length % 8 === 0, "segment size is a positive multiple of 8");
    this.first_pos = first_pos;
    this.file = file;
    this.map = map;
    this.view = new DataView(map.buffer, map.byteOffset, map.byteLength);
  }

  get size_bytes(): number {
    return this.map.length;
  }

  get end_pos(): number {
    return this.first_pos + this.count;
  }

  /** Adds the record at `offset` (which must follow the last one) to the index. */
  note_record(origin: string, seq: number, offset: number): void {
    const k = this.count;
    if (k % index_stride_events === 0) this.pos_offsets.push(offset);
    let range = this.origins.get(origin);
    if (range === undefined) {
      range = { seq_first: seq, seq_last: seq - 1, offsets: [], positions: [], last_offset: -1, last_pos: -1 };
      this.origins.set(origin, range);
    }
    assert(seq === range.seq_last + 1, "an origin's seqs are dense within a segment");
    if ((seq - range.seq_first) % index_stride_events === 0) {
      range.offsets.push(offset);
      range.positions.push(this.first_pos + k);
    }
    range.seq_last = seq;
    range.last_offset = offset;
    range.last_pos = this.first_pos + k;
    this.count = k + 1;
  }

  /** Offset of the record at pos (first_pos <= pos < end_pos). */
  offset_of(pos: number): number {
    assert(pos >= this.first_pos && pos < this.end_pos, "pos inside segment");
    const rel = pos - this.first_pos;
    const k = Math.floor(rel / index_stride_events);
    let offset = this.pos_offsets[k];
    for (let skip = rel - k * index_stride_events; skip > 0; skip--) {
      offset += this.frame_bytes_at(offset);
    }
    return offset;
  }

  /** Where origin's event `seq` is in this segment, or null. */
  /** Where origin's newest event here sits when it is seq (and known), read from the index alone: no frame is read. */
  newest_location(origin: string, seq: number): Location | null {
    const range = this.origins.get(origin);
    if (range === undefined || range.seq_last !== seq || range.last_offset < 0) return null;
    return { offset: range.last_offset, pos: range.last_pos };
  }

  locate(origin: string, hi: number, lo: number, seq: number): Location | null {
    const range = this.origins.get(origin);
    if (range === undefined || seq < range.seq_first || seq > range.seq_last) return null;
    const newest = this.newest_location(origin, seq);
    if (newest !== null) {
      assert(frame_seq(this.view, newest.offset) === seq, "the newest event's offset points at it");
      return newest;
    }
    const k = Math.floor((seq - range.seq_first) / index_stride_events);
    let offset = range.offsets[k];
    let pos = range.positions[k];
    let at_seq = range.seq_first + k * index_stride_events;
    for (;;) {
      assert(offset < this.end_bytes, "indexed event lies before the segment end");
      if (frame_origin_hi(this.view, offset) === hi && frame_origin_lo(this.view, offset) === lo) {
        if (at_seq === seq) {
          assert(frame_seq(this.view, offset) === seq, "index points at the right seq");
          return { offset, pos };
        }
        at_seq++;
      }
      offset += this.frame_bytes_at(offset);
      pos++;
    }
  }

  /** Padded size of the indexed frame at offset. Its bytes must already be in the file (flushed). */
  private frame_bytes_at(offset: number): number {
    const len = frame_len(this.view, offset);
    assert(len >= frame_header_bytes && offset < this.end_bytes, "indexed frame is written and whole");
    return frame_size_of_len(len);
  }

  summary_bytes(): Uint8Array {
    const origins: Record<string, [number, number, number[], number[]]> = {};
    for (const [origin, r] of this.origins) origins[origin] = [r.seq_first, r.seq_last, r.offsets, r.positions];
    const body = JSON.stringify({
      v: 1,
      first_pos: this.first_pos,
      count: this.count,
      end_bytes: this.end_bytes,
      size_bytes: this.size_bytes,
      pos_offsets: this.pos_offsets,
      origins,
    });
    const body_bytes = new TextEncoder().encode(body);
    return new TextEncoder().encode(`${crc32c(body_bytes).toString(16).padStart(8, "0")}\n${body}`);
  }

  /** Loads a summary; false (and the segment untouched) when it is unreadable or does not fit. */
  load_summary(bytes: Uint8Array): boolean {
    const text = new TextDecoder().decode(bytes);
    const newline = text.indexOf("\n");
    if (newline !== 8) return false;
    const body = text.slice(9);
    if (crc32c(new TextEncoder().encode(body)).toString(16).padStart(8, "0") !== text.slice(0, 8)) return false;
    let parsed: {
      v?: unknown;
      first_pos?: unknown;
      count?: unknown;
      end_bytes?: unknown;
      size_bytes?: unknown;
      pos_offsets?: unknown;
      origins?: unknown;
    };
    try {
      parsed = JSON.parse(body);
    } catch {
      return false;
    }
    if (
      parsed.v !== 1 ||
      parsed.first_pos !== this.first_pos ||
      parsed.size_bytes !== this.size_bytes ||
      typeof parsed.count !== "number" ||
      typeof parsed.end_bytes !== "number" ||
      parsed.end_bytes > this.size_bytes ||
      !Array.isArray(parsed.pos_offsets) ||
      typeof parsed.origins !== "object" ||
      parsed.origins === null
    ) {
      return false;
    }
    const origins = new Map<string, OriginRange>();
    for (const [origin, value] of Object.entries(parsed.origins as Record<string, [number, number, number[], number[]]>)) {
      const [seq_first, seq_last, offsets, positions] = value;
      origins.set(origin, { seq_first, seq_last, offsets, positions, last_offset: -1, last_pos: -1 });
    }
    this.count = parsed.count;
    this.end_bytes = parsed.end_bytes;
    this.pos_offsets = parsed.pos_offsets as number[];
    this.origins = origins;
    return true;
  }
}
