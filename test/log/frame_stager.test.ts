import { describe, expect, test } from "bun:test";
import type { FileHandle } from "../../src/log/file_io.ts";
import { check_frame, frame_bad, frame_end, frame_size_bytes } from "../../src/log/frame.ts";
import { FrameStager } from "../../src/log/frame_stager.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import { staging_bytes } from "../../src/log/log_options.ts";
import { Segment } from "../../src/log/segment.ts";
import { MemFileIO } from "../support/mem_file_io.ts";

const origin = "3f09c2a41b7e55d0";
const segment_bytes = 1024 * 1024;

function setup() {
  const io = new MemFileIO();
  io.mkdirp("/s");
  io.create_zeroed_sync("/s/0.seg", segment_bytes);
  const handle = io.open("/s/0.seg");
  const segment = new Segment(0, "/s/0.seg", io.map("/s/0.seg"));
  const wrote: FileHandle[] = [];
  const stager = new FrameStager({ handle: () => handle, wrote: (h) => wrote.push(h), fail: (err) => err as Error }, 0);
  return { segment, stager, wrote };
}

function stage(s: ReturnType<typeof setup>, seq: number, payload: Uint8Array): void {
  s.stager.stage(s.segment, origin, origin_hi(origin), origin_lo(origin), seq, 1_700_000_000_000, 1, payload);
}

describe("frame stager", () => {
  test("staged frames reach the file only on flush, whole and checksummed, and the file is noted for the next fsync", () => {
    const s = setup();
    stage(s, 1, new Uint8Array([1, 2, 3]));
    stage(s, 2, new Uint8Array(100).fill(7));
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

  test("a frame bigger than the staging buffer goes straight to the file and is noted for the next fsync", () => {
    const s = setup();
    stage(s, 1, new Uint8Array(staging_bytes + 1).fill(9));
    expect(s.wrote.length).toBe(1);
    expect(check_frame(s.segment.map, s.segment.view, 0, segment_bytes)).toBe(frame_size_bytes(staging_bytes + 1));
  });

  test("a full staging buffer flushes itself, so no frame is ever split", () => {
    const s = setup();
    const payload = new Uint8Array(1000).fill(3);
    const count = Math.ceil((staging_bytes * 1.5) / frame_size_bytes(1000));
    for (let seq = 1; seq <= count; seq++) stage(s, seq, payload);
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
    stage(s, 1, new Uint8Array(8));
    s.segment.end_bytes += 8; // someone else wrote behind the stager's back
    expect(() => stage(s, 2, new Uint8Array(8))).toThrow("staging ends where the segment's data ends");
  });
});
