import path from "node:path";
import { assert } from "../lib/assert.ts";
import type { FileHandle, FileIO } from "./file_io.ts";
import { no_segments, segment_empty, segment_misplaced } from "./log_errors.ts";
import type { Warn } from "./log_options.ts";
import { scan_segment } from "./scan.ts";
import { Segment, parse_segment_file_name, segment_file_name, summary_file_name } from "./segment.ts";
import { create_first_segment, read_failure_marker, remove_failure_marker } from "./segment_files.ts";
import { check_frame, epoch_not_before, frame_epoch } from "./frame.ts";
import { type PrunedState, read_epoch, read_pruned_state, write_epoch } from "./pruned_state.ts";

/**
 * What an open trusts, scans and repairs (design.md section 2): sealed
 * segments are opened from their summaries, the rest are scanned record by
 * record, and the log is cut at the first record that is not whole. Unless
 * read-only, what lies past the cut is removed and everything kept is made
 * durable before the log reports it so. The steps run in the order below;
 * durability depends on it.
 */

export interface RecoveryReport {
  /** Bytes of the unfinished batch that was cut away (up to and including the bad record's len word). */
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
  /** What retention removed (the vv above already counts its floor). */
  pruned: PrunedState;
  /** This run's write epoch (frame.ts local_word), durable before any frame is written; the last run's when read-only. */
  epoch: number;
}

/** Bytes zeroed where the data ends: the len and crc words of whatever record lies there. */
const end_clear_bytes = 8;
/** How far past the end the last run's whole leftover records get their len words zeroed too. */
const leftover_clear_max_bytes = 4 * 1024 * 1024;

/** Opens every segment, trusting sealed summaries and scanning the rest; repairs a torn tail unless read-only. */
/** `own`: this replica's id, whose frames end a batch only at a signed batch end (see scan.ts). */
export async function recover(io: FileIO, segments_dir: string, segment_size_bytes: number, read_only: boolean, on_warning: Warn, own: string): Promise<Recovered> {
  const names = io.list(segments_dir);
  if (!read_only) remove_temp_files(io, segments_dir, names);
  const durable_limit_pos = read_failure_marker(io, segments_dir);
  const pruned = read_pruned_state(io, segments_dir);
  const epoch_last_run = read_epoch(io, segments_dir);
  const firsts = list_segments(names);
  // A prune interrupted by a power cut: the state says the log starts later; the files it names go now.
  const leftover = firsts.filter((first) => first < pruned.first_pos);
  const opened = open_segments(io, segments_dir, firsts.slice(leftover.length), durable_limit_pos ?? Number.POSITIVE_INFINITY, own, pruned, epoch_last_run);
  if (!read_only) {
    await drop_segment_files(io, segments_dir, leftover);
    await clear_ends(io, segments_dir, opened);
    await drop_segment_files(io, segments_dir, opened.dropped_firsts);
  }
  warn_if_dropped(opened.report, on_warning);
  const { segments, vv, report } = opened;
  if (segments.length === 0) segments.push(await ensure_first_segment(io, segments_dir, segment_size_bytes, read_only, pruned.first_pos));
  const active = segments[segments.length - 1];
  // Sealed when the segments after it were dropped: as the last one it takes appends again.
  active.sealed = false;
  // Checked before anything is written from these segments: a broken invariant must not reach a summary or a peer.
  check_recovered(segments, vv, pruned);
  let active_handle: FileHandle | null = null;
  // The new epoch follows every epoch written so far, even if the epoch file was lost.
  let epoch = epoch_last_run;
  if (opened.epoch_seen >= 0 && !epoch_not_before(epoch, opened.epoch_seen)) epoch = opened.epoch_seen;
  if (!read_only) {
    epoch = (epoch + 1) & 0xffff;
    // Opens that wrote nothing still bump the file: never let the new epoch drift half the ring from the data's
    // newest, or its batches would read as older than what precedes them.
    if (opened.epoch_seen >= 0 && ((epoch - opened.epoch_seen) & 0xffff) >= 0x4000) epoch = (opened.epoch_seen + 1) & 0xffff;
    active_handle = io.open(active.file);
    await make_scanned_durable(io, segments_dir, opened.scanned, active, active_handle);
    await write_pending_summaries(io, segments_dir, opened.pending_summaries, active);
    if (durable_limit_pos !== null) await remove_failure_marker(io, segments_dir);
    await write_epoch(io, segments_dir, epoch);
  }
  return { segments, vv, recovery: report, active_handle, pruned, epoch };
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
  /** The write epoch of the last run (stale bytes are told from torn ones by it). */
  epoch_last_run: number;
  /** The latest epoch of the batches kept in scanned segments (-1: none). */
  epoch_seen: number;
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
function open_segments(
  io: FileIO,
  segments_dir: string,
  firsts: readonly number[],
  pos_end_max: number,
  own: string,
  pruned: PrunedState,
  epoch_last_run: number,
): OpenedSegments {
  const opened: OpenedSegments = {
    own,
    segments: [],
    // Pruned events still count as held: the segments continue the floor.
    vv: new Map(pruned.floor),
    report: { dropped_bytes: 0, dropped_segments: 0, cut_at_pos: null, bad_at_pos: null, reason: "", scanned_bytes: 0 },
    scanned: [],
    epoch_last_run,
    epoch_seen: -1,
    cut_segment: null,
    dropped_firsts: [],
    pending_summaries: [],
  };
  const { report } = opened;
  let expected_first = pruned.first_pos;
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
 * vector (stale bytes of a recycled file past them end it cleanly, scan.ts);
 * a scan that did not end cleanly (a torn record, a batch without its end)
 * cuts the log here.
 */
function open_scanned(segment: Segment, is_last: boolean, opened: OpenedSegments, pos_end_max: number): Segment {
  const { report } = opened;
  const scan = scan_segment(segment, opened.vv, pos_end_max, opened.own, opened.epoch_last_run);
  report.scanned_bytes += segment.end_bytes;
  opened.scanned.push(segment);
  if (scan.epoch_last >= 0) opened.epoch_seen = scan.epoch_last;
  if (!scan.clean) {
    report.dropped_bytes += Math.min(scan.stop_bytes + end_clear_bytes, segment.size_bytes) - segment.end_bytes;
    report.cut_at_pos = segment.end_pos;
    report.bad_at_pos = segment.end_pos + scan.pending_events;
    report.reason = scan.reason;
    opened.cut_segment = segment;
  }
  segment.sealed = !is_last && scan.clean;
  if (segment.sealed) opened.pending_summaries.push(segment);
  return segment;
}

/**
 * Zeroes the len word where the data of the segment that takes appends next
 * ends (the last one, or the one the log was cut in), fsynced before
 * anything else is written. Whatever record lies there (the start of a cut
 * batch, a stale frame of the file's earlier use) could otherwise be read
 * as the next append's should that append's page be lost in a power cut.
 * Records further on cannot continue the log (scan.ts: epochs), so nothing
 * else is rewritten: no wear beyond one page. The cut segment loses its
 * summary first, which counts records past the cut.
 */
async function clear_ends(io: FileIO, segments_dir: string, opened: OpenedSegments): Promise<void> {
  const last = opened.dropped_firsts.length === 0 ? opened.segments[opened.segments.length - 1] : opened.cut_segment;
  if (opened.cut_segment !== null) io.unlink(path.join(segments_dir, summary_file_name(opened.cut_segment.first_pos)));
  if (last === undefined || last === null) return;
  // The record at the end, and the whole records of the last run that follow it (a cut batch's): none may
  // reappear when a later append's frame happens to end exactly where one of them begins.
  const { map, view } = last;
  const offsets: number[] = [];
  for (let at = last.end_bytes; at < Math.min(last.end_bytes + leftover_clear_max_bytes, last.size_bytes); ) {
    if (offsets.length > 0 && (frame_epoch(view, at) !== opened.epoch_last_run)) break;
    const size = check_frame(map, view, at, last.size_bytes);
    let dirty = false;
    for (let i = at; i < Math.min(at + end_clear_bytes, last.size_bytes); i++) if (map[i] !== 0) dirty = true;
    if (dirty) offsets.push(at);
    if (size <= 0) break;
    at += size;
  }
  if (offsets.length === 0) return;
  const handle = io.open(last.file);
  try {
    const zeros = new Uint8Array(end_clear_bytes);
    for (const at of offsets) handle.write(zeros, 0, Math.min(end_clear_bytes, last.size_bytes - at), at);
    await handle.sync();
  } finally {
    handle.close();
  }
}

/**
 * Removes segment files with their summaries (after a cut, or left by an
 * interrupted prune), and makes the removals durable before anything new is
 * written, or a power cut could bring one back after new events took its
 * positions.
 */
async function drop_segment_files(io: FileIO, segments_dir: string, firsts: readonly number[]): Promise<void> {
  for (const first of firsts) {
    io.unlink(path.join(segments_dir, segment_file_name(first)));
    io.unlink(path.join(segments_dir, summary_file_name(first)));
  }
  if (firsts.length > 0) await io.sync_dir(segments_dir);
}

/** Dropped data means events some writer may have seen written were not durable: a technician should know. */
function warn_if_dropped(report: RecoveryReport, on_warning: Warn): void {
  if (report.dropped_bytes > 0 || report.dropped_segments > 0) {
    on_warning("recovery dropped data that was not durable", { ...report });
  }
}

/** A log opened for writing the first time gets segment 0; a read-only open of such a log has nothing to read. */
async function ensure_first_segment(io: FileIO, segments_dir: string, segment_size_bytes: number, read_only: boolean, first_pos: number): Promise<Segment> {
  if (read_only) throw no_segments(segments_dir);
  const file = await create_first_segment(io, segments_dir, segment_size_bytes, first_pos);
  return new Segment(first_pos, file, io.map(file));
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
 * the first position held (0 unless pruned), every one sealed but the last
 * (which takes appends, also when the log was cut in it or is read-only),
 * each origin's seqs dense across the segments from the pruned floor, and
 * `vv` exactly each origin's last seq.
 */
export function check_recovered(segments: readonly Segment[], vv: ReadonlyMap<string, number>, pruned: Pick<PrunedState, "first_pos" | "floor"> = { first_pos: 0, floor: new Map() }): void {
  assert(segments.length > 0, "recovery leaves at least one segment");
  const seq_last = new Map<string, number>(pruned.floor);
  let expected_first = pruned.first_pos;
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
