import path from "node:path";
import { assert } from "../lib/assert.ts";
import type { FileHandle, FileIO } from "./file_io.ts";
import { no_segments, segment_empty, segment_misplaced } from "./log_errors.ts";
import type { Warn } from "./log_options.ts";
import { scan_segment } from "./scan.ts";
import { Segment, parse_segment_file_name, segment_file_name, summary_file_name } from "./segment.ts";
import { create_first_segment, read_failure_marker, remove_failure_marker } from "./segment_files.ts";
import { last_nonzero } from "./zero.ts";

/**
 * What an open trusts, scans and repairs (design.md section 2): sealed
 * segments are opened from their summaries, the rest are scanned record by
 * record, and the log is cut at the first record that is not whole. Unless
 * read-only, what lies past the cut is removed and everything kept is made
 * durable before the log reports it so. The steps run in the order below;
 * durability depends on it.
 */

export interface RecoveryReport {
  /** Bytes after the last whole record (torn tail, garbage) that were zeroed. */
  dropped_bytes: number;
  /** Whole segment files removed because they came after a torn segment. */
  dropped_segments: number;
  /** The position where the log was cut (start of the torn batch), when anything was dropped. */
  cut_at_pos: number | null;
  /** The position of the first bad record itself (cut_at_pos plus the good records of its unfinished batch). */
  bad_at_pos: number | null;
  reason: string;
  /** Bytes that had to be scanned record by record (the tail since the last sealed segment). */
  scanned_bytes: number;
}

export interface Recovered {
  /** Contiguous from position 0; all sealed but the last, which is the active one. */
  segments: Segment[];
  /** origin -> highest seq held: the union of the segments' origins. */
  vv: Map<string, number>;
  recovery: RecoveryReport;
  /** The active segment, opened for writing; null when read-only. */
  active_handle: FileHandle | null;
}

/** Torn tails are overwritten with zeros this many bytes per write at most. */
const zero_chunk_max_bytes = 1024 * 1024;

/** Opens every segment, trusting sealed summaries and scanning the rest; repairs a torn tail unless read-only. */
/** `own`: this replica's id, whose frames end a batch only at a signed batch end (see scan.ts). */
export async function recover(io: FileIO, segments_dir: string, segment_size_bytes: number, read_only: boolean, on_warning: Warn, own: string): Promise<Recovered> {
  const names = io.list(segments_dir);
  if (!read_only) remove_temp_files(io, segments_dir, names);
  const durable_limit_pos = read_failure_marker(io, segments_dir);
  const opened = open_segments(io, segments_dir, list_segments(names), durable_limit_pos ?? Number.POSITIVE_INFINITY, own);
  if (!read_only) {
    await zero_torn_tails(io, segments_dir, opened);
    await drop_after_cut(io, segments_dir, opened.dropped_firsts);
  }
  warn_if_dropped(opened.report, on_warning);
  const { segments, vv, report } = opened;
  if (segments.length === 0) segments.push(await ensure_first_segment(io, segments_dir, segment_size_bytes, read_only));
  const active = segments[segments.length - 1];
  // Sealed when the segments after it were dropped: as the last one it takes appends again.
  active.sealed = false;
  // Checked before anything is written from these segments: a broken invariant must not reach a summary or a peer.
  check_recovered(segments, vv);
  let active_handle: FileHandle | null = null;
  if (!read_only) {
    active_handle = io.open(active.file);
    await make_scanned_durable(io, segments_dir, opened.scanned, active, active_handle);
    await write_pending_summaries(io, segments_dir, opened.pending_summaries, active);
    if (durable_limit_pos !== null) await remove_failure_marker(io, segments_dir);
  }
  return { segments, vv, recovery: report, active_handle };
}

/** What reading the segment files decided, before anything is repaired. */
interface OpenedSegments {
  /** This replica's id (scan.ts: its own frames commit only at batch ends). */
  own: string;
  /** The segments kept, in order. */
  segments: Segment[];
  vv: Map<string, number>;
  report: RecoveryReport;
  /** Kept segments read record by record: their data may exist only in the page cache (after a process crash). */
  scanned: Segment[];
  /** Scanned segments with bytes past their last whole batch, and the offset where those bytes end. */
  torn_tails: { segment: Segment; tail_end_bytes: number }[];
  /** The scanned segment whose scan stopped at a record that is not whole: the log is cut at its end. */
  cut_segment: Segment | null;
  /** First positions of the segment files after the cut. */
  dropped_firsts: number[];
  /** Scanned segments that ended cleanly before another segment: their summaries are written last. */
  pending_summaries: Segment[];
}

/** A crash can leave half-made files (a segment or summary being created); nothing refers to them. */
function remove_temp_files(io: FileIO, segments_dir: string, names: readonly string[]): void {
  for (const name of names) if (name.endsWith(".tmp")) io.unlink(path.join(segments_dir, name));
}

/** The first positions of the segment files, in order: a segment's name is its first position. */
function list_segments(names: readonly string[]): number[] {
  return names
    .map(parse_segment_file_name)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

/**
 * Opens the segments in order, from their summaries while those continue the
 * version vector and by scanning otherwise, and decides where the log is cut.
 * Reads only: what it decides is repaired by the steps after it.
 */
function open_segments(io: FileIO, segments_dir: string, firsts: readonly number[], pos_end_max: number, own: string): OpenedSegments {
  const opened: OpenedSegments = {
    own,
    segments: [],
    vv: new Map(),
    report: { dropped_bytes: 0, dropped_segments: 0, cut_at_pos: null, bad_at_pos: null, reason: "", scanned_bytes: 0 },
    scanned: [],
    torn_tails: [],
    cut_segment: null,
    dropped_firsts: [],
    pending_summaries: [],
  };
  const { report } = opened;
  let expected_first = 0;
  let previous_scanned = false;
  for (let i = 0; i < firsts.length; i++) {
    const first = firsts[i];
    const file = path.join(segments_dir, segment_file_name(first));
    if (report.cut_at_pos === null && previous_scanned && first > expected_first) {
      // The segment before lost its unsynced tail (it had no summary yet), so what follows was never durable either:
      // a sync cycle covers every file, and an event is acknowledged only when all before it are durable.
      report.cut_at_pos = expected_first;
      report.bad_at_pos = expected_first;
      report.reason = `segment ${segment_file_name(first)} starts at position ${first} but the one before ends at ${expected_first}`;
    }
    if (report.cut_at_pos !== null) {
      // Everything after a cut is unacknowledged data whose predecessors are gone.
      report.dropped_segments++;
      report.dropped_bytes += io.size_bytes(file);
      opened.dropped_firsts.push(first);
      continue;
    }
    if (first !== expected_first) throw segment_misplaced(segment_file_name(first), expected_first);
    if (io.size_bytes(file) === 0) throw segment_empty(file);
    const map = io.map(file);
    const is_last = i === firsts.length - 1;
    // The last segment may have been written after its summary (never, normally): it is always scanned.
    const summary = is_last ? null : io.read_file(path.join(segments_dir, summary_file_name(first)));
    const summarized = summary === null ? null : open_summarized(new Segment(first, file, map), summary, opened.vv, pos_end_max);
    const segment = summarized ?? open_scanned(new Segment(first, file, map), is_last, opened, pos_end_max);
    previous_scanned = summarized === null;
    opened.segments.push(segment);
    expected_first = segment.end_pos;
  }
  return opened;
}

/** The segment opened from its summary, or null when the summary is unreadable or does not continue `vv`. */
function open_summarized(segment: Segment, summary: Uint8Array, vv: Map<string, number>, pos_end_max: number): Segment | null {
  if (!segment.load_summary(summary) || !summary_follows(segment, vv) || segment.end_pos > pos_end_max) return null;
  for (const [origin, range] of segment.origins) vv.set(origin, range.seq_last);
  segment.sealed = true;
  return segment;
}

/** A summary is trusted only when its origins continue the version vector so far. */
function summary_follows(segment: Segment, vv: Map<string, number>): boolean {
  for (const [origin, range] of segment.origins) {
    if (range.seq_first !== (vv.get(origin) ?? 0) + 1 || range.seq_last < range.seq_first) return false;
  }
  return segment.count > 0 || segment.origins.size === 0;
}

/**
 * Scans the segment, keeping its whole batches that continue the version
 * vector. Torn records, a batch without its end, or stale bytes past the end
 * become a torn tail to zero so they can never resurface; a scan that did not
 * end cleanly cuts the log here.
 */
function open_scanned(segment: Segment, is_last: boolean, opened: OpenedSegments, pos_end_max: number): Segment {
  const { report } = opened;
  const scan = scan_segment(segment, opened.vv, pos_end_max, opened.own);
  report.scanned_bytes += segment.end_bytes;
  opened.scanned.push(segment);
  const tail_end = last_nonzero(segment.map, segment.end_bytes, segment.size_bytes);
  if (!scan.clean || tail_end >= 0) {
    const tail_end_bytes = tail_end >= 0 ? tail_end + 1 : segment.end_bytes;
    report.dropped_bytes += tail_end_bytes - segment.end_bytes;
    opened.torn_tails.push({ segment, tail_end_bytes });
    if (!scan.clean) {
      report.cut_at_pos = segment.end_pos;
      report.bad_at_pos = segment.end_pos + scan.pending_events;
      report.reason = scan.reason;
      opened.cut_segment = segment;
    }
  }
  segment.sealed = !is_last && scan.clean;
  if (segment.sealed) opened.pending_summaries.push(segment);
  return segment;
}

/**
 * Overwrites each torn tail with zeros and fsyncs it before anything else is
 * written: appends continue right after the last whole batch, and a stale
 * record there must never be read as one of theirs. The segment the log is
 * cut in loses its summary first, which counts records past the cut.
 */
async function zero_torn_tails(io: FileIO, segments_dir: string, opened: OpenedSegments): Promise<void> {
  for (const { segment, tail_end_bytes } of opened.torn_tails) {
    if (segment === opened.cut_segment) io.unlink(path.join(segments_dir, summary_file_name(segment.first_pos)));
    const dropped_bytes = tail_end_bytes - segment.end_bytes;
    if (dropped_bytes === 0) continue;
    const handle = io.open(segment.file);
    const zeros = new Uint8Array(Math.min(dropped_bytes, zero_chunk_max_bytes));
    for (let at = segment.end_bytes; at < tail_end_bytes; at += zeros.length) {
      handle.write(zeros, 0, Math.min(zeros.length, tail_end_bytes - at), at);
    }
    await handle.sync();
    handle.close();
  }
}

/**
 * Removes the segment files after the cut with their summaries, and makes the
 * removals durable before anything new is written, or a power cut could bring
 * a dropped segment back after new events took its positions.
 */
async function drop_after_cut(io: FileIO, segments_dir: string, dropped_firsts: readonly number[]): Promise<void> {
  for (const first of dropped_firsts) {
    io.unlink(path.join(segments_dir, segment_file_name(first)));
    io.unlink(path.join(segments_dir, summary_file_name(first)));
  }
  if (dropped_firsts.length > 0) await io.sync_dir(segments_dir);
}

/** Dropped data means events some writer may have seen written were not durable: a technician should know. */
function warn_if_dropped(report: RecoveryReport, on_warning: Warn): void {
  if (report.dropped_bytes > 0 || report.dropped_segments > 0) {
    on_warning("recovery dropped data that was not durable", { ...report });
  }
}

/** A log opened for writing the first time gets segment 0; a read-only open of such a log has nothing to read. */
async function ensure_first_segment(io: FileIO, segments_dir: string, segment_size_bytes: number, read_only: boolean): Promise<Segment> {
  if (read_only) throw no_segments(segments_dir);
  const file = await create_first_segment(io, segments_dir, segment_size_bytes);
  return new Segment(0, file, io.map(file));
}

/**
 * What a crashed process left in the page cache is reported durable from now
 * on, and peers may be served it: fsync every scanned segment (and the
 * directory) first, or a power cut soon after would lose events that were
 * already published.
 */
async function make_scanned_durable(
  io: FileIO,
  segments_dir: string,
  scanned: readonly Segment[],
  active: Segment,
  active_handle: FileHandle,
): Promise<void> {
  for (const segment of scanned) {
    if (segment === active) {
      await active_handle.sync();
      continue;
    }
    const handle = io.open(segment.file);
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  }
  await io.sync_dir(segments_dir);
}

/**
 * Writes the summaries of sealed segments that had to be scanned, so the next
 * open need not scan them again. Last, because a summary must describe only
 * durable data. The active segment gets none: it takes appends again.
 */
async function write_pending_summaries(io: FileIO, segments_dir: string, pending: readonly Segment[], active: Segment): Promise<void> {
  for (const segment of pending) {
    if (segment === active) continue;
    await io.write_file_atomic(path.join(segments_dir, summary_file_name(segment.first_pos)), segment.summary_bytes());
  }
}

/**
 * The invariants the rest of the log builds on: segments contiguous from
 * position 0, every one sealed but the last (which takes appends, also when
 * the log was cut in it or is read-only), each origin's seqs dense across
 * the segments, and `vv` exactly each origin's last seq.
 */
export function check_recovered(segments: readonly Segment[], vv: ReadonlyMap<string, number>): void {
  assert(segments.length > 0, "recovery leaves at least one segment");
  const seq_last = new Map<string, number>();
  let expected_first = 0;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const name = segment_file_name(segment.first_pos);
    assert(segment.first_pos === expected_first, `segment ${name} starts at position ${expected_first}, where the one before ends`);
    assert(segment.end_bytes <= segment.size_bytes, `segment ${name} ends inside its file`);
    const is_last = i === segments.length - 1;
    assert(segment.sealed !== is_last, `segment ${name} is ${is_last ? "the active one and not sealed" : "sealed: only the last segment is not"}`);
    for (const [origin, range] of segment.origins) {
      const before = seq_last.get(origin) ?? 0;
      assert(
        range.seq_first === before + 1 && range.seq_last >= range.seq_first,
        `origin ${origin}'s seqs ${range.seq_first}..${range.seq_last} in segment ${name} follow seq ${before} densely`,
      );
      seq_last.set(origin, range.seq_last);
    }
    expected_first = segment.end_pos;
  }
  assert(vv.size === seq_last.size, `the version vector holds the ${seq_last.size} origins of the segments, not ${vv.size}`);
  for (const [origin, seq] of seq_last) {
    assert(vv.get(origin) === seq, `the version vector holds ${origin} up to seq ${seq}, the last in the segments`);
  }
}
