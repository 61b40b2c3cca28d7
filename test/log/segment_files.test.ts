import { describe, expect, test } from "bun:test";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { SegmentFiles, create_first_segment } from "../../src/log/segment_files.ts";
import { MemFileIO } from "../support/mem_file_io.ts";

const segment_size_bytes = 64 * 1024;

function setup(capacity_bytes: number, clock_ms = { now: 0 }) {
  const io = new MemFileIO();
  io.capacity_bytes = capacity_bytes;
  io.mkdirp("/data/segments");
  const warnings: string[] = [];
  const files = new SegmentFiles({
    io,
    segments_dir: "/data/segments",
    segment_size_bytes,
    segment_retry_interval_ms: 1000,
    clock: { now_ms: () => clock_ms.now },
    on_warning: (m) => warnings.push(m),
  });
  return { io, files, warnings, clock_ms };
}

describe("segment files", () => {
  test("a full disk is LOG_FULL with the free bytes, and leaves no partial file behind", () => {
    const { io, files } = setup(segment_size_bytes + 1000);
    files.make_next(0);
    let err: unknown = null;
    try {
      files.make_next(100);
    } catch (e) {
      err = e;
    }
    expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
    expect((err as Error).message).toContain("1000 bytes free");
    expect(io.list("/data/segments").filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  test("after a failure, appends fail fast until the retry interval has passed, then it tries again", () => {
    const { io, files, clock_ms } = setup(segment_size_bytes / 2);
    expect(() => files.make_next(0)).toThrow("the log is full");
    io.capacity_bytes = Number.POSITIVE_INFINITY;
    clock_ms.now = 999;
    expect(() => files.make_next(0)).toThrow("the log is full");
    clock_ms.now = 1000;
    expect(files.make_next(0)).toBe("/data/segments/00000000000000000000.seg");
  });

  test("the first segment of a new log on a full disk is LOG_FULL too", async () => {
    const { io } = setup(100);
    const err = await create_first_segment(io, "/data/segments", segment_size_bytes).catch((e: unknown) => e);
    expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
  });

  test("a prepared spare is renamed into place; rotation then makes no new file", async () => {
    const { io, files } = setup(Number.POSITIVE_INFINITY);
    files.prepare_spare();
    for (let i = 0; i < 100 && !io.exists("/data/segments/spare"); i++) await Bun.sleep(1);
    expect(io.exists("/data/segments/spare")).toBe(true);
    const file = files.make_next(42);
    expect(io.exists("/data/segments/spare")).toBe(false);
    expect(io.size_bytes(file)).toBe(segment_size_bytes);
    await files.stop();
  });

  test("stopping abandons a spare being made: nothing is left that the next open would mistake for one", async () => {
    const { io, files } = setup(Number.POSITIVE_INFINITY);
    files.prepare_spare();
    await files.stop();
    expect(io.exists("/data/segments/spare")).toBe(false);
  });
});
