import fs from "node:fs";
import path from "node:path";
import { allocate_file_blocks, release_file_blocks } from "./fallocate.ts";
import { DirLock } from "./lock.ts";
import { release_mapped_pages } from "./release_pages.ts";

/**
 * Everything the log does to the file system goes through this interface, so
 * tests can inject faults a real disk will not produce on demand (power cuts
 * that keep, lose or tear unsynced pages; a full disk).
 */
export interface FileHandle {
  /** Copies bytes[from, from + length) into the file at file_offset (page cache; not durable yet). */
  write(bytes: Uint8Array, from: number, length: number, file_offset: number): void;
  /** Makes every write so far durable (fdatasync), off the JS thread. */
  sync(): Promise<void>;
  /** The same on the JS thread, blocking it; the log uses it only while fsyncs take well under a millisecond. */
  sync_now?(): void;
  close(): void;
}

export interface FileIO {
  exists(file: string): boolean;
  mkdirp(dir: string): void;
  /** Names in dir, unsorted; [] when dir is missing. */
  list(dir: string): string[];
  size_bytes(file: string): number;
  read_file(file: string): Uint8Array | null;
  /** Writes via a temp file, fsyncs it, renames it over `file`, fsyncs the directory. */
  /** Writes a file whole or not at all (temp file, fsync, rename, directory fsync); `mode` as for open(2), default 0o644. */
  write_file_atomic(file: string, bytes: Uint8Array, mode?: number): Promise<void>;
  /**
   * Creates `file` of size_bytes that reads as zeros and is never sparse
   * (every block allocated, so a full disk shows here and not as SIGBUS when a
   * mapping of it is written), fsynced. Throws ENOSPC when full, leaving no file.
   * Stops early (and removes the file) when should_stop() turns true. The real
   * implementation allocates the blocks without writing them (fallocate(2),
   * src/log/fallocate.ts) and writes zeros only where the file system cannot
   * (see create_zeroed_file); the allocation is one short call on the JS
   * thread, the writes and the fsync are off it.
   */
  create_zeroed(file: string, size_bytes: number, should_stop?: () => boolean): Promise<void>;
  create_zeroed_sync(file: string, size_bytes: number): void;
  open(file: string): FileHandle;
  /** A shared, writable mapping of the whole file. The caller must hold it while it uses any view of it. */
  map(file: string): Uint8Array;
  rename(from: string, to: string): void;
  unlink(file: string): void;
  /**
   * Frees a file's blocks, keeping its size (a mapping then reads zeros), so
   * its space comes back before it is unlinked: a mapped file's blocks are
   * otherwise held until the mapping is collected. Optional; best effort.
   */
  release_blocks?(file: string): void;
  /**
   * Drops the resident pages of a whole mapping from map(), keeping its data
   * (it is read back from the page cache on use), so a sealed segment read
   * once does not stay in the process's RSS. Optional; best effort.
   */
  release_mapped?(map: Uint8Array): void;
  sync_dir(dir: string): Promise<void>;
  sync_dir_sync(dir: string): void;
  /** Free bytes on the file system holding dir, or null when unknown. */
  free_bytes(dir: string): number | null;
  /** Takes the one-process-per-directory lock; throws DATA_DIR_LOCKED when another live process holds it. */
  lock(file: string): { release(): void };
}

/**
 * Creates `dir` and any missing parents, and fsyncs each new directory's
 * parent: a directory whose entry never reached the disk can vanish in a
 * power cut with everything in it (the log would reopen empty under the old
 * id and reissue seqs). An existing `dir` gets its parent fsynced too, so an
 * entry made by an older version that did not do this becomes durable.
 */
export async function mkdir_durable(io: FileIO, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; !io.exists(d) && d !== path.dirname(d); d = path.dirname(d)) missing.push(d);
  if (missing.length > 0) io.mkdirp(dir);
  // Top down; when nothing was missing, only dir's own entry.
  const levels = missing.length > 0 ? missing.reverse() : [dir];
  for (const d of levels) await io.sync_dir(path.dirname(d));
}

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
