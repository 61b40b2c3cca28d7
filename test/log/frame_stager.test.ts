import { describe, expect, test } from "bun:test";
import type { FileHandle } from "../../src/log/file_io.ts";
import { check_frame, flag_batch_end, flag_signed, frame_bad, frame_end, frame_flags, frame_size_bytes, proof_bytes } from "../../src/log/frame.ts";
import { FrameStager } from "../../src/log/frame_stager.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import { KeyRing } from "../../src/log/key_ring.ts";
import { staging_bytes } from "../../src/log/log_options.ts";
import { proof_at, proof_first_seq } from "../../src/log/proof.ts";
import { ReplicaKey } from "../../src/log/replica_key.ts";
import { Segment } from "../../src/log/segment.ts";
import { MemFileIO } from "../support/mem_file_io.ts";

const other = "3f09c2a41b7e55d0";
const segment_bytes = 4 * 1024 * 1024;
const { key } = ReplicaKey.generate((b) => b.fill(7));

function setup() {
  const io = new MemFileIO();
  io.mkdirp("/s");
  io.create_zeroed_sync("/s/0.seg", segment_bytes);
  const handle = io.open("/s/0.seg");
  const segment = new Segment(0, "/s/0.seg", io.map("/s/0.seg"));
  const wrote: FileHandle[] = [];
  const stager = new FrameStager({ handle: () => handle, wrote: (h) => wrote.push(h), fail: (err) => err as Error }, segment, key, origin_hi(key.id), origin_lo(key.id));
  return { segment, stager, wrote };
}

/** Stages an event of another origin (written unsigned here; sync gives whole signed ranges). */
function stage_other(s: ReturnType<typeof setup>, seq: number, payload: Uint8Array): void {
  s.stager.stage(s.segment, other, origin_hi(other), origin_lo(other), seq, 1_700_000_000_000, flag_batch_end, payload);
}

function stage_own(s: ReturnType<typeof setup>, seq: number, payload: Uint8Array, flags = flag_batch_end): void {
  s.stager.stage(s.segment, key.id, origin_hi(key.id), origin_lo(key.id), seq, 1_700_000_000_000, flags, payload);
}

describe("frame stager", () => {
  test("staged frames reach the file only on flush, whole and checksummed, and the file is noted for the next fsync", () => {
    const s = setup();
    stage_other(s, 1, new Uint8Array([1, 2, 3]));
    stage_other(s, 2, new Uint8Array(100).fill(7));
    const view = s.segment.view;
    expect(check_frame(s.segment.map, view, 0, segment_bytes)).toBe(frame_end);
    expect(s.wrote.length).toBe(0);
    s.stager.flush();
    expect(s.stager.pending_bytes).toBe(0);
    expect(s.wrote.length).toBe(1);
    const first = check_frame(s.segment.map, view, 0, segment_bytes);
    expect(first).toBe(frame_size_bytes(3));
    expect(check_frame(s.segment.map, view, first, segment_bytes)).toBe(frame_size_bytes(100));
    expect(s.segment.count).toBe(2);
    expect(s.segment.end_bytes).toBe(frame_size_bytes(3) + frame_size_bytes(100));
  });

  test("own frames are signed at the flush: the last one carries a proof that verifies over the whole range", () => {
    const s = setup();
    stage_own(s, 1, new Uint8Array([1, 2, 3]));
    stage_own(s, 2, new Uint8Array(100).fill(7), 0);
    stage_own(s, 3, new Uint8Array(10).fill(8));
    s.stager.flush();
    const { map, view } = s.segment;
    const a = check_frame(map, view, 0, segment_bytes);
    const b = check_frame(map, view, a, segment_bytes);
    const c = check_frame(map, view, a + b, segment_bytes);
    expect([a, b, c]).toEqual([frame_size_bytes(3), frame_size_bytes(100), frame_size_bytes(10 + proof_bytes)]);
    expect(frame_flags(view, a + b) & flag_signed).toBe(flag_signed);
    expect(frame_flags(view, 0) & flag_signed).toBe(0);
    expect(proof_first_seq(view, proof_at(a + b, 40 + 10 + proof_bytes))).toBe(1);
    expect(s.segment.end_bytes).toBe(a + b + c);
    expect(new KeyRing().check_range(key.id, map, view, 0, a + b)).toBeNull();
    // One flipped payload byte breaks the proof (the crc aside).
    map[a + 40] ^= 1;
    expect(new KeyRing().check_range(key.id, map, view, 0, a + b)).toBe("bad_signature");
  });

  test("a big batch is signed in ranges of about range_seal_bytes, each of which verifies on its own", async () => {
    const { range_seal_bytes } = await import("../../src/log/log_options.ts");
    const s = setup();
    const payload = new Uint8Array(1000).fill(4);
    const count = Math.ceil((3 * range_seal_bytes) / frame_size_bytes(1000)) + 5;
    for (let seq = 1; seq <= count; seq++) stage_own(s, seq, payload, seq === count ? flag_batch_end : 0);
    s.stager.flush();
    const { map, view } = s.segment;
    const ranges: [number, number][] = [];
    let first_at = 0;
    for (let at = 0, i = 0; i < count; i++) {
      const size = check_frame(map, view, at, segment_bytes);
      expect(size).toBeGreaterThan(0);
      if ((frame_flags(view, at) & flag_signed) !== 0) {
        ranges.push([first_at, at]);
        first_at = at + size;
      }
      at += size;
    }
    expect(ranges.length).toBe(4);
    for (const [first, last] of ranges) {
      expect(last - first).toBeLessThan(range_seal_bytes);
      expect(new KeyRing().check_range(key.id, map, view, first, last)).toBeNull();
    }
  });

  test("a frame bigger than the staging buffer goes straight to the file; an own one is a signed range of its own", () => {
    const s = setup();
    stage_other(s, 1, new Uint8Array(staging_bytes + 1).fill(9));
    expect(s.wrote.length).toBe(1);
    expect(check_frame(s.segment.map, s.segment.view, 0, segment_bytes)).toBe(frame_size_bytes(staging_bytes + 1));
    const at = s.segment.end_bytes;
    stage_own(s, 1, new Uint8Array(100).fill(1));
    stage_own(s, 2, new Uint8Array(100).fill(1), 0);
    stage_own(s, 3, new Uint8Array(staging_bytes + 5).fill(2));
    const { map, view } = s.segment;
    const first = check_frame(map, view, at, segment_bytes);
    const second = check_frame(map, view, at + first, segment_bytes);
    expect([first, second]).toEqual([frame_size_bytes(100), frame_size_bytes(100 + proof_bytes)]);
    expect(check_frame(map, view, at + first + second, segment_bytes)).toBe(frame_size_bytes(staging_bytes + 5 + proof_bytes));
    // Frames 1 and 2 (the flush before the big frame signed them), then the big frame alone.
    expect(new KeyRing().check_range(key.id, map, view, at, at + first)).toBeNull();
    expect(new KeyRing().check_range(key.id, map, view, at + first + second, at + first + second)).toBeNull();
    expect(s.stager.range_open).toBe(false);
  });

  test("a full staging buffer flushes itself, so no frame is ever split", () => {
    const s = setup();
    const payload = new Uint8Array(1000).fill(3);
    const count = Math.ceil((staging_bytes * 1.5) / frame_size_bytes(1000));
    for (let seq = 1; seq <= count; seq++) stage_other(s, seq, payload);
    s.stager.flush();
    let at = 0;
    for (let i = 0; i < count; i++) {
      const size = check_frame(s.segment.map, s.segment.view, at, segment_bytes);
      expect(size).not.toBe(frame_bad);
      expect(size).toBe(frame_size_bytes(1000));
      at += size;
    }
  });

  test("staging a frame where the segment's data does not end is refused", () => {
    const s = setup();
    stage_other(s, 1, new Uint8Array(8));
    s.segment.end_bytes += 8; // someone else wrote behind the stager's back
    expect(() => stage_other(s, 2, new Uint8Array(8))).toThrow("staging ends where the segment's data ends");
  });
});
