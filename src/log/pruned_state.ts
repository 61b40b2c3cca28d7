import path from "node:path";
import type { FileIO } from "./file_io.ts";
import { assert_origin } from "./ids.ts";
import { io_error } from "./log_errors.ts";

/**
 * What retention removed from the front of the log, kept in
 * `segments/pruned.json` (design.md section 2, retention): the first
 * position still held, and per origin the highest seq pruned (the floor).
 * Pruned events still count in the version vector: the log is a grow-only
 * set whose oldest members are no longer stored. The file is written
 * durably before any segment file goes, so a power cut in the middle of a
 * prune leaves a log that the next open finishes pruning (recovery.ts).
 */

export const pruned_state_file_name = "pruned.json";

export interface PrunedTotals {
  segments: number;
  events: number;
  /** Segment file bytes freed. */
  bytes: number;
  /** Events and record bytes every upstream held when they went (drop-acked, or drop-oldest when acknowledged anyway). */
  acked_events: number;
  acked_bytes: number;
  /** Events and record bytes that went without an acknowledgement (drop-oldest): lost unless a peer held them. */
  unacked_events: number;
  unacked_bytes: number;
}

export interface PrunedState {
  /** The first position held; 0 when nothing was pruned. */
  first_pos: number;
  /** origin -> highest seq pruned. */
  floor: Map<string, number>;
  /** Time of the newest event pruned (ms, the origin's clock), or null. */
  newest_pruned_time_ms: number | null;
  totals: PrunedTotals;
}

export function empty_totals(): PrunedTotals {
  return { segments: 0, events: 0, bytes: 0, acked_events: 0, acked_bytes: 0, unacked_events: 0, unacked_bytes: 0 };
}

export function empty_pruned_state(): PrunedState {
  return { first_pos: 0, floor: new Map(), newest_pruned_time_ms: null, totals: empty_totals() };
}

function is_count(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The pruned state of a log, empty when nothing was ever pruned. A file that does not parse is an error: guessing could reissue seqs. */
export function read_pruned_state(io: FileIO, segments_dir: string): PrunedState {
  const file = path.join(segments_dir, pruned_state_file_name);
  const bytes = io.read_file(file);
  if (bytes === null) return empty_pruned_state();
  let parsed: { first_pos?: unknown; floor?: unknown; newest_pruned_time_ms?: unknown; totals?: unknown };
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes)) as typeof parsed;
  } catch (err) {
    throw io_error(`${file} is not valid JSON; restore it from a backup or remove the data directory`, err);
  }
  const state = empty_pruned_state();
  if (!is_count(parsed.first_pos)) throw io_error(`${file} has no valid first_pos; restore it from a backup`, undefined);
  state.first_pos = parsed.first_pos;
  if (typeof parsed.floor !== "object" || parsed.floor === null) throw io_error(`${file} has no valid floor; restore it from a backup`, undefined);
  for (const [origin, seq] of Object.entries(parsed.floor as Record<string, unknown>)) {
    assert_origin(origin);
    if (!is_count(seq)) throw io_error(`${file} holds a bad seq for ${origin}; restore it from a backup`, undefined);
    state.floor.set(origin, seq);
  }
  if (is_count(parsed.newest_pruned_time_ms)) state.newest_pruned_time_ms = parsed.newest_pruned_time_ms;
  const totals = parsed.totals as Record<string, unknown> | undefined;
  if (typeof totals === "object" && totals !== null) {
    for (const key of Object.keys(state.totals) as (keyof PrunedTotals)[]) {
      const v = totals[key];
      if (is_count(v)) state.totals[key] = v;
    }
  }
  return state;
}

/** Writes the state whole or not at all, durably (temp file, fsync, rename, directory fsync). */
export async function write_pruned_state(io: FileIO, segments_dir: string, state: PrunedState): Promise<void> {
  const body = {
    first_pos: state.first_pos,
    floor: Object.fromEntries(state.floor),
    newest_pruned_time_ms: state.newest_pruned_time_ms,
    totals: state.totals,
  };
  await io.write_file_atomic(path.join(segments_dir, pruned_state_file_name), new TextEncoder().encode(`${JSON.stringify(body)}\n`));
}

/** The write epoch of the last run (frame.ts local_word), kept in `segments/epoch`; 0 when none was recorded. */
export const epoch_file_name = "epoch";

export function read_epoch(io: FileIO, segments_dir: string): number {
  const bytes = io.read_file(path.join(segments_dir, epoch_file_name));
  if (bytes === null) return 0;
  const n = Number.parseInt(new TextDecoder().decode(bytes).trim(), 10);
  return Number.isSafeInteger(n) && n >= 0 && n <= 0xffff ? n : 0;
}

export async function write_epoch(io: FileIO, segments_dir: string, epoch: number): Promise<void> {
  await io.write_file_atomic(path.join(segments_dir, epoch_file_name), new TextEncoder().encode(`${epoch}\n`));
}
