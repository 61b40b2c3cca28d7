import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { errno_code } from "../../src/lib/errors.ts";
import { allocate_file_blocks, fallocate_available } from "../../src/log/fallocate.ts";
import { create_zeroed_file, create_zeroed_file_sync, node_file_io } from "../../src/log/file_io.ts";
import { is_disk_full } from "../../src/log/segment_files.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { with_tmpfs } from "../support/tmpfs.ts";

const mib = 1024 * 1024;

/** Checks `file` is size_bytes long, reads as zeros and has every block allocated. */
function expect_zeroed_and_allocated(file: string, size_bytes: number): void {
  const st = fs.statSync(file);
  expect(st.size).toBe(size_bytes);
  expect(st.blocks * 512).toBeGreaterThanOrEqual(size_bytes); // not sparse
  const bytes = fs.readFileSync(file);
  expect(bytes.length).toBe(size_bytes);
  expect(bytes.every((b) => b === 0)).toBe(true);
}

/** Bytes this process has caused to be written to storage so far, or null without task I/O accounting. */
function write_bytes(): number | null {
  try {
    const m = /^write_bytes: (\d+)$/m.exec(fs.readFileSync("/proc/self/io", "utf8"));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

describe("segment files are allocated, not written", () => {
  test("this platform (Linux x64/arm64) has fallocate", () => {
    expect(fallocate_available()).toBe(process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64"));
  });

  test("create_zeroed: the requested size, all zeros, every block allocated, without writing the zeros", async () => {
    const dir = temp_dir();
    const file = path.join(dir, "seg");
    const size = 64 * mib;
    const before = write_bytes();
    await node_file_io.create_zeroed(file, size);
    const after = write_bytes();
    expect_zeroed_and_allocated(file, size);
    // Writing the zeros would dirty all 64 MiB; allocating them dirties nothing of the file's data.
    expect(fallocate_available()).toBe(true);
    expect(before).not.toBeNull();
    expect(after).not.toBeNull();
    expect((after as number) - (before as number)).toBeLessThan(mib);
  });

  test("create_zeroed_sync: the same", () => {
    const dir = temp_dir();
    const file = path.join(dir, "seg");
    node_file_io.create_zeroed_sync(file, 3 * mib + 4096);
    expect_zeroed_and_allocated(file, 3 * mib + 4096);
  });

  test("the file system really allocates (fallocate is used, not the fallback)", () => {
    // These machines are Linux x64/arm64 (asserted above): fallocate must be there, never skipped.
    expect(fallocate_available()).toBe(true);
    const file = path.join(temp_dir(), "f");
    const fd = fs.openSync(file, "w");
    try {
      expect(allocate_file_blocks(fd, 5 * mib, file)).toBe(true);
      expect(allocate_file_blocks(fd, 0, file)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
    expect_zeroed_and_allocated(file, 5 * mib);
  });

  test("an existing file is replaced by a zeroed one", async () => {
    const file = path.join(temp_dir(), "seg");
    fs.writeFileSync(file, new Uint8Array(2 * mib).fill(7));
    await node_file_io.create_zeroed(file, mib);
    expect_zeroed_and_allocated(file, mib);
  });

  test("the fallback (writing zeros) makes the same file", async () => {
    const dir = temp_dir();
    await create_zeroed_file(path.join(dir, "a"), 5 * mib + 512, undefined, "write");
    expect_zeroed_and_allocated(path.join(dir, "a"), 5 * mib + 512);
    create_zeroed_file_sync(path.join(dir, "b"), 5 * mib + 512, "write");
    expect_zeroed_and_allocated(path.join(dir, "b"), 5 * mib + 512);
  });

  test("should_stop: throws and leaves no file", async () => {
    const file = path.join(temp_dir(), "seg");
    await expect(node_file_io.create_zeroed(file, mib, () => true)).rejects.toThrow("stopped");
    expect(fs.existsSync(file)).toBe(false);
  });

  test("fallocate's failures come back as errno errors (EBADF on a read-only descriptor)", () => {
    // These machines are Linux x64/arm64 (asserted above): fallocate must be there, never skipped.
    expect(fallocate_available()).toBe(true);
    const file = path.join(temp_dir(), "ro");
    fs.writeFileSync(file, "");
    const fd = fs.openSync(file, "r");
    try {
      let caught: unknown;
      try {
        allocate_file_blocks(fd, mib, file);
      } catch (err) {
        caught = err;
      }
      expect(errno_code(caught)).toBe("EBADF");
      expect((caught as NodeJS.ErrnoException).syscall).toBe("fallocate");
    } finally {
      fs.closeSync(fd);
    }
  });

  test("on a real full file system: ENOSPC, and no file is left", async () => {
    await with_tmpfs("8m", async (dir) => {
      const file = path.join(dir, "seg");
      let caught: unknown;
      try {
        await node_file_io.create_zeroed(file, 64 * mib);
      } catch (err) {
        caught = err;
      }
      expect(errno_code(caught)).toBe("ENOSPC");
      expect(is_disk_full(caught)).toBe(true);
      expect(fs.existsSync(file)).toBe(false);

      caught = undefined;
      try {
        node_file_io.create_zeroed_sync(file, 64 * mib);
      } catch (err) {
        caught = err;
      }
      expect(errno_code(caught)).toBe("ENOSPC");
      expect(fs.existsSync(file)).toBe(false);

      // The failed attempts gave their space back: a file that fits is still made.
      await node_file_io.create_zeroed(file, 4 * mib);
      expect_zeroed_and_allocated(file, 4 * mib);
    });
  });
});
