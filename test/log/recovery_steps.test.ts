import { describe, expect, test } from "bun:test";
import { AssertionError } from "../../src/lib/assert.ts";
import { Random } from "../../src/lib/random.ts";
import type { FileIO } from "../../src/log/file_io.ts";
import { Log } from "../../src/log/log.ts";
import { check_recovered, recover } from "../../src/log/recovery.ts";
import { Segment, parse_segment_file_name, segment_file_name, summary_file_name } from "../../src/log/segment.ts";
import { MemFileIO } from "../support/mem_file_io.ts";

/**
 * Recovery's steps one by one, where the end-to-end tests (recovery,
 * power_cut, crash_kill9, rotation) meet them only by chance: the cut after
 * a segment that lost its tail, zeroing stale bytes in a sealed segment, and
 * the invariants check_recovered holds the result to.
 */
const dir = "/mem/data";
const segments_dir = `${dir}/segments`;
const segment_size_bytes = 64 * 1024;
const a = "aaaaaaaaaaaaaaaa";
const b = "bbbbbbbbbbbbbbbb";

/**
 * A closed log of several segments (summaries written), where each event's
 * frame starts, and which events end a signed range (every third: each
 * flush signs what waits).
 */
async function several_segments(): Promise<{ io: MemFileIO; firsts: number[]; offsets: number[]; signed: boolean[]; id: string }> {
  const io = new MemFileIO();
  const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "never" });
  for (let i = 0; i < 300; i++) {
    log.append(new Uint8Array(1000).fill((i % 255) + 1));
    if (i % 3 === 2) await log.durable();
  }
  const events = log.read(0, 300);
  const offsets = events.map((e) => e.frame.byteOffset);
  const signed = events.map((e) => e.signed);
  const id = log.id;
  await log.close();
  const firsts = io
    .list(segments_dir)
    .map(parse_segment_file_name)
    .filter((n): n is number => n !== null)
    .sort((x, y) => x - y);
  expect(firsts.length).toBeGreaterThanOrEqual(4);
  return { io, firsts, offsets, signed, id };
}

function segment_path(first: number): string {
  return `${segments_dir}/${segment_file_name(first)}`;
}

function summary_path(first: number): string {
  return `${segments_dir}/${summary_file_name(first)}`;
}

/** The file system of a process that loses power the moment it opens a file for writing the `nth` time. */
function power_cut_at_open(io: MemFileIO, nth = 1): FileIO {
  let opens = 0;
  return new Proxy(io, {
    get: (target, prop, receiver) => {
      if (prop === "open") {
        return (file: string) => {
          if (++opens < nth) return target.open(file);
          target.power_cut(new Random(1));
          throw new Error("power cut");
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A hand-made segment holding `records` (origin, seq) in order. */
function segment(first_pos: number, sealed: boolean, records: [string, number][]): Segment {
  const s = new Segment(first_pos, segment_file_name(first_pos), new Uint8Array(4096));
  records.forEach(([origin, seq], i) => s.note_record(origin, seq, i * 64));
  s.end_bytes = records.length * 64;
  s.sealed = sealed;
  return s;
}

describe("recovery steps", () => {
  test("a sealed segment that lost its unsynced tail cuts the log at its end; read-only only reports it, a writer drops what follows durably", async () => {
    const { io, firsts, offsets, signed, id } = await several_segments();
    // Segment 1 kept only its first half (a power cut before its summary and fsync), ending on a whole record
    // inside a signed range: the log is cut after the last signed frame before it.
    let zeroed_pos = firsts[1] + Math.floor((firsts[2] - firsts[1]) / 2);
    if (signed[zeroed_pos - 1]) zeroed_pos++;
    expect(signed[zeroed_pos - 1]).toBe(false);
    let cut_pos = zeroed_pos - 1;
    while (!signed[cut_pos - 1]) cut_pos--;
    expect(cut_pos).toBeGreaterThan(firsts[1]);
    expect(cut_pos).toBeGreaterThan(zeroed_pos - 3);
    const handle = io.open(segment_path(firsts[1]));
    handle.write(new Uint8Array(segment_size_bytes), 0, segment_size_bytes - offsets[zeroed_pos], offsets[zeroed_pos]);
    await handle.sync();
    io.unlink(summary_path(firsts[1]));
    const files_before = io.list(segments_dir).sort();
    const warnings: string[] = [];

    const seen = await recover(io, segments_dir, segment_size_bytes, true, (m) => warnings.push(m), id);
    expect(seen.recovery.cut_at_pos).toBe(cut_pos);
    // The whole but unsigned records between the cut and the lost bytes are counted as dropped.
    expect(seen.recovery.bad_at_pos).toBe(zeroed_pos);
    expect(seen.recovery.dropped_segments).toBe(firsts.length - 2);
    expect(seen.segments.map((s) => [s.first_pos, s.end_pos])).toEqual([
      [0, firsts[1]],
      [firsts[1], cut_pos],
    ]);
    expect(seen.active_handle).toBeNull();
    expect(io.list(segments_dir).sort()).toEqual(files_before);

    // The len word at the cut is zeroed (the first open for writing), then the removals are fsynced before anything
    // else: power lost right after them brings back neither a dropped segment nor a dropped frame.
    await expect(recover(power_cut_at_open(io, 2), segments_dir, segment_size_bytes, false, (m) => warnings.push(m), id)).rejects.toThrow("power cut");
    expect(warnings).toEqual(["recovery dropped data that was not durable", "recovery dropped data that was not durable"]);
    for (const first of firsts.slice(2)) expect(io.exists(segment_path(first))).toBe(false);
    expect(io.map(segment_path(firsts[1])).subarray(offsets[cut_pos], offsets[cut_pos] + 8).every((byte) => byte === 0)).toBe(true);
    const again = await recover(io, segments_dir, segment_size_bytes, false, () => {}, id);
    again.active_handle?.close();
    expect(again.recovery.cut_at_pos).toBeNull();
    expect(again.recovery.dropped_segments).toBe(0);
    expect(again.segments[again.segments.length - 1].end_pos).toBe(cut_pos);
  });

  test("stale bytes past the clean end of a sealed segment are left alone (no wear, nothing dropped), and its summary is written again", async () => {
    const { io, firsts, id } = await several_segments();
    const file = segment_path(firsts[1]);
    const handle = io.open(file);
    handle.write(new Uint8Array([7]), 0, 1, segment_size_bytes - 1);
    await handle.sync();
    io.unlink(summary_path(firsts[1]));

    const repaired = await recover(io, segments_dir, segment_size_bytes, false, () => {}, id);
    repaired.active_handle?.close();
    const sealed = repaired.segments[1];
    expect(repaired.recovery.cut_at_pos).toBeNull();
    expect(repaired.recovery.dropped_bytes).toBe(0);
    expect(sealed.sealed).toBe(true);
    expect(sealed.end_pos).toBe(firsts[2]);
    expect(repaired.segments.length).toBe(firsts.length);
    expect(io.exists(summary_path(firsts[1]))).toBe(true);
    io.power_cut(new Random(2));
    expect(io.map(file)[segment_size_bytes - 1]).toBe(7);
  });

  test("check_recovered accepts contiguous segments, sealed but the last, with dense seqs and the matching vv", () => {
    const segments = [segment(0, true, [[a, 1], [b, 1], [a, 2]]), segment(3, true, [[b, 2]]), segment(4, false, [[a, 3]])];
    check_recovered(segments, new Map([[a, 3], [b, 2]]));
    check_recovered([segment(0, false, [])], new Map());
  });

  test("check_recovered refuses each broken invariant", () => {
    const vv = new Map([[a, 2]]);
    const broken: [Segment[], Map<string, number>, string][] = [
      [[], new Map(), "at least one segment"],
      [[segment(1, false, [[a, 1], [a, 2]])], vv, "00000000000000000001.seg starts at position 0"],
      [[segment(0, true, [[a, 1]]), segment(2, false, [[a, 2]])], vv, "00000000000000000002.seg starts at position 1"],
      [[segment(0, true, [[a, 1]]), segment(0, false, [[a, 2]])], vv, "00000000000000000000.seg starts at position 1"],
      [[segment(0, false, [[a, 1]]), segment(1, false, [[a, 2]])], vv, "only the last segment is not"],
      [[segment(0, true, [[a, 1]]), segment(1, true, [[a, 2]])], vv, "the active one and not sealed"],
      [[segment(0, true, [[a, 1]]), segment(1, false, [[a, 3]])], new Map([[a, 3]]), "seqs 3..3 in segment 00000000000000000001.seg follow seq 1"],
      [[segment(0, true, [[a, 1]]), segment(1, false, [[a, 2]])], new Map([[a, 1]]), `holds ${a} up to seq 2`],
      [[segment(0, false, [[a, 1], [a, 2]])], new Map([[a, 2], [b, 1]]), "holds the 1 origins of the segments, not 2"],
    ];
    for (const [segments, given_vv, message] of broken) {
      expect(() => check_recovered(segments, given_vv)).toThrow(AssertionError);
      expect(() => check_recovered(segments, given_vv)).toThrow(message);
    }
  });
});
