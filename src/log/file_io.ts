import fs from "node:fs";
import path from "node:path";
import type { FileHandle, FileIO } from "./file_api.ts";
import { allocate_file_blocks, release_file_blocks } from "./fallocate.ts";
import { DirLock } from "./lock.ts";
import { release_mapped_pages } from "./release_pages.ts";

export type { FileHandle, FileIO } from "./file_api.ts";
export { mkdir_durable } from "./file_api.ts";

// Large chunks: each async write costs one event-loop turn, and a spare must be ready before the active segment fills.
const zero_chunk_bytes = 4 * 1024 * 1024;
let zero_chunk: Uint8Array | null = null;
function zeros(): Uint8Array {
  zero_chunk ??= new Uint8Array(zero_chunk_bytes);
  return zero_chunk;
}

function write_all_sync(fd: number, bytes: Uint8Array, from: number, length: number, file_offset: number): void {
  let done = 0;
  while (done < length) {
    done += fs.writeSync(fd, bytes, from + done, length - done, file_offset + done);
  }
}

function fdatasync_async(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsync_async(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function write_async(fd: number, bytes: Uint8Array, from: number, length: number, file_offset: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, bytes, from, length, file_offset, (err, written) => (err ? reject(err) : resolve(written))),
  );
}

class NodeFileHandle implements FileHandle {
  private fd: number;
  constructor(fd: number) {
    this.fd = fd;
  }
  write(bytes: Uint8Array, from: number, length: number, file_offset: number): void {
    write_all_sync(this.fd, bytes, from, length, file_offset);
  }
  sync(): Promise<void> {
    return fdatasync_async(this.fd);
  }
  sync_now(): void {
    fs.fdatasyncSync(this.fd);
  }
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * How a zeroed file gets its blocks. "allocate": fallocate(2) mode 0, which
 * reserves real blocks that read as zeros without writing them (each byte of
 * a segment then reaches the disk once, with its data), falling back to
 * "write" where the process or the file system cannot (not Linux, no
 * fallocate in the C library, EOPNOTSUPP). "write": writes zeros, so every
 * byte reaches the disk twice (zeros, then data); the benchmarks' baseline.
 */
export type ZeroFill = "allocate" | "write";

/** FileIO.create_zeroed of the real file system, with the way it fills the file made explicit. */
export async function create_zeroed_file(file: string, size_bytes: number, should_stop?: () => boolean, fill: ZeroFill = "allocate"): Promise<void> {
  const fd = fs.openSync(file, "w");
  try {
    if (should_stop?.()) throw new Error("stopped");
    // fallocate of 64 MiB takes well under a millisecond (ext4): fine on the JS thread, unlike writing them.
    if (fill === "write" || !allocate_file_blocks(fd, size_bytes, file)) {
      const z = zeros();
      for (let at = 0; at < size_bytes; ) {
        if (should_stop?.()) throw new Error("stopped");
        const n = Math.min(z.length, size_bytes - at);
        at += await write_async(fd, z, 0, n, at);
      }
    }
    // fsync, not fdatasync: the new size and the allocated extents are metadata.
    await fsync_async(fd);
    fs.closeSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw err;
  }
}

/** The same on the JS thread, blocking it. */
export function create_zeroed_file_sync(file: string, size_bytes: number, fill: ZeroFill = "allocate"): void {
  const fd = fs.openSync(file, "w");
  try {
    if (fill === "write" || !allocate_file_blocks(fd, size_bytes, file)) {
      const z = zeros();
      for (let at = 0; at < size_bytes; at += z.length) {
        write_all_sync(fd, z, 0, Math.min(z.length, size_bytes - at), at);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw err;
  }
}

export const node_file_io: FileIO = {
  exists: (file) => fs.existsSync(file),
  mkdirp: (dir) => void fs.mkdirSync(dir, { recursive: true }),
  list(dir) {
    try {
      return fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  },
  size_bytes: (file) => fs.statSync(file).size,
  read_file(file) {
    try {
      return new Uint8Array(fs.readFileSync(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  },
  async write_file_atomic(file, bytes, mode = 0o644) {
    const tmp = `${file}.tmp`;
    fs.rmSync(tmp, { force: true });
    const fd = fs.openSync(tmp, "w", mode);
    try {
      write_all_sync(fd, bytes, 0, bytes.length, 0);
      await fsync_async(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    await node_file_io.sync_dir(path.dirname(file));
  },
  create_zeroed: (file, size_bytes, should_stop) => create_zeroed_file(file, size_bytes, should_stop),
  create_zeroed_sync: (file, size_bytes) => create_zeroed_file_sync(file, size_bytes),
  open(file) {
    return new NodeFileHandle(fs.openSync(file, "r+"));
  },
  release_mapped(map) {
    release_mapped_pages(map);
  },
  map(file) {
    return Bun.mmap(file);
  },
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (file) => fs.rmSync(file, { force: true }),
  release_blocks(file) {
    let fd = -1;
    try {
      fd = fs.openSync(file, "r+");
      release_file_blocks(fd, fs.fstatSync(fd).size);
    } catch {
      // Best effort: the space then comes back when the mapping is collected.
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  },
  async sync_dir(dir) {
    const fd = fs.openSync(dir, "r");
    try {
      await fsync_async(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  sync_dir_sync(dir) {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  lock: (file) => DirLock.acquire(file),
  free_bytes(dir) {
    try {
      const s = fs.statfsSync(dir);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      return null;
    }
  },
};
