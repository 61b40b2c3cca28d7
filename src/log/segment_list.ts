import { assert } from "../lib/assert.ts";
import { frame_origin_hi, frame_origin_lo, frame_seq, frame_size_at } from "./frame.ts";
import { origin_hi, origin_lo } from "./ids.ts";
import { LogEvent } from "./log_event.ts";
import type { Segment } from "./segment.ts";

/** Gets a frame in place; returns false to stop the walk. */
export type FrameVisitor = (segment: Segment, offset: number, pos: number) => boolean;

/**
 * The log's segments in position order, and the lookups over their indexes:
 * by position, by origin and seq, and an origin's frames in seq order.
 * Readers see the mapping, so each lookup first calls `before_read` with the
 * position it reads up to (the log flushes its staging buffer there).
 *
 * Invariant: segments are contiguous (each starts where the one before ends);
 * only the last, the active one, grows.
 */
export class SegmentList {
  private readonly segments: Segment[];
  private readonly before_read: (pos_end: number) => void;

  constructor(segments: Segment[], before_read: (pos_end: number) => void) {
    assert(segments.length > 0, "a log has at least one segment");
    this.segments = segments;
    this.before_read = before_read;
  }

  get active(): Segment {
    return this.segments[this.segments.length - 1];
  }

  get count(): number {
    return this.segments.length;
  }

  /** The position after the last event. */
  get end_pos(): number {
    return this.active.end_pos;
  }

  /** Appends a new active segment (rotation). */
  push(segment: Segment): void {
    assert(segment.first_pos === this.active.end_pos, "segments are contiguous");
    assert(segment.count === 0, "a new segment starts empty");
    this.segments.push(segment);
  }

  /** The first position held. */
  get first_pos(): number {
    return this.segments[0].first_pos;
  }

  /** Removes the `count` oldest segments (retention pruned them); readers still inside one move on to the first held. */
  drop_first(count: number): void {
    assert(count > 0 && count < this.segments.length, "a prune leaves the active segment");
    for (const segment of this.segments.splice(0, count)) segment.pruned = true;
  }

  /** Bytes of records written (without preallocated free space). */
  get data_bytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.end_bytes;
    return total;
  }

  /** Bytes the segment files take on disk (preallocated). */
  get file_bytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size_bytes;
    return total;
  }

  /** The list itself, for verify. */
  all(): readonly Segment[] {
    return this.segments;
  }

  /** Index of the segment holding `pos`, or -1 past the end. */
  index_of(pos: number): number {
    if (pos >= this.end_pos) return -1;
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].first_pos <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Events from `from_pos` to the end, lazily; events appended meanwhile are included. */
  *iterate(from_pos: number): Generator<LogEvent> {
    let pos = Math.max(from_pos, this.first_pos);
    let segment: Segment | undefined = this.segments[this.index_of(pos)];
    while (segment !== undefined && pos < this.end_pos) {
      this.before_read(pos + 1);
      let offset = segment.offset_of(pos);
      while (pos < segment.end_pos && !segment.pruned) {
        this.before_read(pos + 1);
        const event = LogEvent.at(segment, offset, pos);
        yield event;
        offset += event.frame_bytes;
        pos++;
      }
      // Pruned while a reader was in it (its file may be recycled): go on from the first position held.
      if (segment.pruned) pos = Math.max(pos, this.first_pos);
      const index = this.index_of(pos);
      segment = index < 0 ? undefined : this.segments[index];
    }
  }

  /** The event origin:seq, which the caller knows is held. */
  find(origin: string, seq: number): LogEvent {
    // An origin's newest event (a peer's announced head) is found from the index alone, and only staging up to it is
    // flushed: a hub asking on every vv would otherwise flush every other origin's staged events each time.
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const at = this.segments[i].newest_location(origin, seq);
      if (at === null) continue;
      this.before_read(at.pos + 1);
      assert(frame_seq(this.segments[i].view, at.offset) === seq, "the newest event's offset points at it");
      return LogEvent.at(this.segments[i], at.offset, at.pos);
    }
    const hi = origin_hi(origin);
    const lo = origin_lo(origin);
    this.before_read(this.end_pos);
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const segment = this.segments[i];
      const at = segment.locate(origin, hi, lo, seq);
      if (at !== null) return LogEvent.at(segment, at.offset, at.pos);
    }
    assert(false, `event ${origin}:${seq} is below the vv but in no segment`);
  }

  /**
   * The one walk over an origin's frames with seq > after_seq, in seq order:
   * each segment's index finds the first, then frames are stepped over in
   * place (nothing allocated per event).
   */
  visit_origin(origin: string, after_seq: number, visit: FrameVisitor): void {
    const hi = origin_hi(origin);
    const lo = origin_lo(origin);
    let seq = after_seq + 1;
    this.before_read(this.end_pos);
    for (const segment of this.segments) {
      const range = segment.origins.get(origin);
      if (range === undefined || range.seq_last < seq) continue;
      const at = segment.locate(origin, hi, lo, seq);
      assert(at !== null, "an origin's seqs continue in the next segment that holds it");
      const view = segment.view;
      let offset = at.offset;
      let pos = at.pos;
      while (pos < segment.end_pos && seq <= range.seq_last) {
        if (frame_origin_hi(view, offset) === hi && frame_origin_lo(view, offset) === lo) {
          assert(frame_seq(view, offset) === seq, "an origin's events appear in seq order");
          if (!visit(segment, offset, pos)) return;
          seq++;
        }
        offset += frame_size_at(view, offset);
        pos++;
      }
    }
  }
}
