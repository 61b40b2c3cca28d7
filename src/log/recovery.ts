import path from "node:path";
import { InterlogError, errno_code } from "../lib/errors.ts";
import type { FileHandle, FileIO } from "./file_io.ts";
import type { LogOptions, RecoveryReport } from "./log.ts";
import { scan_segment } from "./scan.ts";
import { Segment, parse_segment_file_name, segment_file_name, summary_file_name } from "./segment.ts";
import { last_nonzero } from "./zero.ts";

/** Opens every segment, trusting sealed summaries and scanning the rest; repairs a torn tail unless read-only. */
export async function recover(
  io: FileIO,
  segments_dir: string,
  segment_size_bytes: number,
  read_only: boolean,
  on_warning: LogOptions["on_warning"],
): Promise<{ segments: Segment[]; vv: Map<string, number>; recovery: RecoveryReport; active_handle: FileHandle | null }> {
  const names = io.list(segments_dir);
  if (!read_only) {
    for (const name of names) if (name.endsWith(".tmp")) io.unlink(path.join(segments_dir, name));
  }
  const firsts = names
    .map(parse_segment_file_name)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
  const recovery: RecoveryReport = { dropped_bytes: 0, dropped_segments: 0, cut_at_pos: null, bad_at_pos: null, reason: "", scanned_bytes: 0 };
  const vv = new Map<string, number>();
  const segments: Segment[] = [];
  const pending_summaries: Segment[] = [];
  /** Segments read record by record: their data may exist only in the page cache (after a process crash). */
  const scanned: Segment[] = [];
  let expected_first = 0;
  let previous_scanned = false;
  for (let i = 0; i < firsts.length; i++) {
    const file = path.join(segments_dir, segment_file_name(firsts[i]));
    if (recovery.cut_at_pos === null && previous_scanned && firsts[i] > expected_first) {
      // The segment before lost its unsynced tail (it had no summary yet), so what follows was never durable either:
      // a sync cycle covers every file, and an event is acknowledged only when all before it are durable.
      recovery.cut_at_pos = expected_first;
      recovery.bad_at_pos = expected_first;
      recovery.reason = `segment ${segment_file_name(firsts[i])} starts at position ${firsts[i]} but the one before ends at ${expected_first}`;
    }
    if (recovery.cut_at_pos !== null) {
      // Everything after a cut is unacknowledged data whose predecessors are gone.
      recovery.dropped_segments++;
      recovery.dropped_bytes += io.size_bytes(file);
      if (!read_only) {
        io.unlink(file);
        io.unlink(path.join(segments_dir, summary_file_name(firsts[i])));
      }
      continue;
    }
    if (firsts[i] !== expected_first) {
      throw new InterlogError(
        "DATA_DIR_CORRUPT",
        `segment ${segment_file_name(firsts[i])} should start at position ${expected_first}; a segment file is missing or foreign. Run interlog verify and restore the data directory from a backup or a peer`,
      );
    }
    if (io.size_bytes(file) === 0) {
      throw new InterlogError("DATA_DIR_CORRUPT", `segment ${file} is empty; restore the data directory from a backup or a peer`);
    }
    const segment = new Segment(firsts[i], file, io.map(file));
    const is_last = i === firsts.length - 1;
    const summary = is_last ? null : io.read_file(path.join(segments_dir, summary_file_name(firsts[i])));
    if (summary !== null && segment.load_summary(summary) && summary_follows(segment, vv)) {
      for (const [origin, range] of segment.origins) vv.set(origin, range.seq_last);
      segment.sealed = true;
    } else {
      const fresh = new Segment(firsts[i], file, segment.map);
      const scan = scan_segment(fresh, vv);
      recovery.scanned_bytes += fresh.end_bytes;
      scanned.push(fresh);
      const tail_end = last_nonzero(fresh.map, fresh.end_bytes, fresh.size_bytes);
      if (!scan.clean || tail_end >= 0) {
        // Torn records, a batch without its end, or stale bytes past the end: zero them so they can never resurface.
        const dropped = tail_end >= 0 ? tail_end + 1 - fresh.end_bytes : 0;
        recovery.dropped_bytes += dropped;
        if (!scan.clean) {
          recovery.cut_at_pos = fresh.end_pos;
          recovery.bad_at_pos = fresh.end_pos + scan.pending_events;
          recovery.reason = scan.reason;
          if (!read_only) io.unlink(path.join(segments_dir, summary_file_name(firsts[i])));
        } else if (!is_last) {
          pending_summaries.push(fresh);
        }
        if (!read_only && dropped > 0) {
          const handle = io.open(file);
          const zeros = new Uint8Array(Math.min(dropped, 1024 * 1024));
          for (let at = fresh.end_bytes; at < tail_end + 1; at += zeros.length) {
            handle.write(zeros, 0, Math.min(zeros.length, tail_end + 1 - at), at);
          }
          await handle.sync();
          handle.close();
        }
      } else if (!is_last) {
        pending_summaries.push(fresh);
      }
      fresh.sealed = !is_last && scan.clean;
      previous_scanned = true;
      segments.push(fresh);
      expected_first = fresh.end_pos;
      continue;
    }
    previous_scanned = false;
    segments.push(segment);
    expected_first = segment.end_pos;
  }
  if (recovery.dropped_segments > 0 && !read_only) {
    // Make the removals durable before anything new is written, or a power cut could bring a dropped segment back.
    await io.sync_dir(segments_dir);
  }
  if (recovery.dropped_bytes > 0 || recovery.dropped_segments > 0) {
    on_warning?.("recovery dropped data that was not durable", { ...recovery });
  }
  if (segments.length === 0) {
    if (read_only) throw new InterlogError("DATA_DIR_INVALID", `no segments in ${segments_dir}; the log was never opened for writing`);
    const file = path.join(segments_dir, segment_file_name(0));
    await io.create_zeroed(`${file}.tmp`, segment_size_bytes).catch((err: unknown) => {
      const code = errno_code(err);
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new InterlogError("LOG_FULL", `no space for the first ${segment_size_bytes}-byte segment in ${segments_dir}; free disk space or lower log.segment_size`, {}, err);
      }
      throw err;
    });
    io.rename(`${file}.tmp`, file);
    await io.sync_dir(segments_dir);
    segments.push(new Segment(0, file, io.map(file)));
  }
  const active = segments[segments.length - 1];
  active.sealed = false;
  let active_handle: FileHandle | null = null;
  if (!read_only) {
    // What a crashed process left in the page cache is reported durable from now on, and peers may be served it:
    // make it durable first, or a power cut soon after would lose events that were already published.
    active_handle = io.open(active.file);
    for (const s of scanned) {
      if (!segments.includes(s)) continue;
      if (s === active) {
        await active_handle.sync();
        continue;
      }
      const handle = io.open(s.file);
      try {
        await handle.sync();
      } finally {
        handle.close();
      }
    }
    await io.sync_dir(segments_dir);
    for (const s of pending_summaries) {
      if (s === active) continue;
      await io.write_file_atomic(path.join(segments_dir, summary_file_name(s.first_pos)), s.summary_bytes());
    }
    // A segment cut short becomes the active one; its old successors' summaries were removed above.
  }
  return { segments, vv, recovery, active_handle };
}

/** A summary is trusted only when its origins continue the version vector so far. */
function summary_follows(segment: Segment, vv: Map<string, number>): boolean {
  for (const [origin, range] of segment.origins) {
    if (range.seq_first !== (vv.get(origin) ?? 0) + 1 || range.seq_last < range.seq_first) return false;
  }
  return segment.count > 0 || segment.origins.size === 0;
}
