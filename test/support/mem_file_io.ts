import path from "node:path";
import type { FileHandle, FileIO } from "../../src/log/file_io.ts";
import type { Random } from "../../src/lib/random.ts";
import { InterlogError } from "../../src/lib/errors.ts";

/**
 * An in-memory file system behind the FileIO interface, for faults a real disk
 * will not produce on demand:
 * - power_cut(rng): every page written since its file's last fsync is
 *   independently kept, lost or torn (512-byte sectors mixed old/new), and
 *   directory entries created, renamed or removed since the directory's last
 *   fsync may revert, and so may a directory created since its parent's last
 *   fsync (with all it holds). Directories directly under / count as there
 *   before the test. Handles and mappings from before the cut go dead.
 * - capacity_bytes: creating files beyond it fails with ENOSPC.
 */
const page_bytes = 4096;
const sector_bytes = 512;

interface Inode {
  data: Uint8Array;
  /** Content as of the last fsync; what survives a power cut for sure. */
  durable: Uint8Array;
  /**
   * Pages a failed fsync could not write: Linux marks them clean, so the page
   * cache still shows them but no later fsync writes them, until they are
   * written again.
   */
  unwritable_pages?: Set<number>;
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

export class MemFileIO implements FileIO {
  /** Current directory entries: full path -> inode. */
  private names = new Map<string, Inode>();
  /** Entries as of each directory's last fsync. */
  private durable_names = new Map<string, Inode>();
  private dirs = new Set<string>();
  /** Directories whose entry in their parent was fsynced. */
  private durable_dirs = new Set<string>();
  private generation = 0;
  capacity_bytes = Number.POSITIVE_INFINITY;
  /** The next this many file fsyncs fail with EIO (a dying disk), leaving their pages unwritable as Linux does. */
  failing_syncs = 0;
  /** Counts for tests. */
  fsyncs = 0;
  private locks = new Set<string>();

  lock(file: string): { release(): void } {
    if (this.locks.has(file)) throw new InterlogError("DATA_DIR_LOCKED", `data directory is in use (${file})`);
    this.locks.add(file);
    const generation = this.generation;
    return { release: () => void (generation === this.generation && this.locks.delete(file)) };
  }

  private used_bytes(): number {
    let total = 0;
    for (const inode of new Set(this.names.values())) total += inode.data.length;
    return total;
  }

  private inode(file: string): Inode {
    const inode = this.names.get(file);
    if (inode === undefined) throw errno("ENOENT", `no such file ${file}`);
    return inode;
  }

  exists(file: string): boolean {
    return this.names.has(file) || this.dirs.has(file);
  }

  mkdirp(dir: string): void {
    for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
      this.dirs.add(d);
      if (path.dirname(d) === "/") this.durable_dirs.add(d);
    }
  }

  list(dir: string): string[] {
    const out: string[] = [];
    for (const name of this.names.keys()) if (path.dirname(name) === dir) out.push(path.basename(name));
    return out;
  }

  size_bytes(file: string): number {
    return this.inode(file).data.length;
  }

  read_file(file: string): Uint8Array | null {
    const inode = this.names.get(file);
    return inode === undefined ? null : inode.data.slice();
  }

  async write_file_atomic(file: string, bytes: Uint8Array, _mode?: number): Promise<void> {
    const inode: Inode = { data: bytes.slice(), durable: bytes.slice() };
    this.names.set(file, inode);
    await this.sync_dir(path.dirname(file));
  }

  private make_zeroed(file: string, size_bytes: number): void {
    const existing = this.names.get(file)?.data.length ?? 0;
    if (this.used_bytes() - existing + size_bytes > this.capacity_bytes) throw errno("ENOSPC", "no space left on device");
    this.names.set(file, { data: new Uint8Array(size_bytes), durable: new Uint8Array(size_bytes) });
  }

  async create_zeroed(file: string, size_bytes: number, should_stop?: () => boolean): Promise<void> {
    const generation = this.generation;
    await Promise.resolve();
    if (generation !== this.generation) throw errno("EIO", "the process that started this write is gone");
    if (should_stop?.()) throw new Error("stopped");
    this.make_zeroed(file, size_bytes);
  }

  create_zeroed_sync(file: string, size_bytes: number): void {
    this.make_zeroed(file, size_bytes);
  }

  open(file: string): FileHandle {
    const inode = this.inode(file);
    const generation = this.generation;
    const alive = () => {
      if (generation !== this.generation) throw errno("EBADF", "handle from before a power cut");
    };
    return {
      write: (bytes, from, length, file_offset) => {
        alive();
        if (file_offset + length > inode.data.length) throw errno("EFBIG", "write past the preallocated end");
        inode.data.set(bytes.subarray(from, from + length), file_offset);
        if (inode.unwritable_pages !== undefined) {
          for (let page = Math.floor(file_offset / page_bytes); page * page_bytes < file_offset + length; page++) inode.unwritable_pages.delete(page);
        }
      },
      sync: async () => {
        await Promise.resolve();
        alive();
        if (this.failing_syncs > 0) {
          this.failing_syncs--;
          inode.unwritable_pages ??= new Set();
          for (let page = 0; page * page_bytes < inode.data.length; page++) {
            const end = Math.min(inode.data.length, (page + 1) * page_bytes);
            if (differs(inode.data, inode.durable, page * page_bytes, end)) inode.unwritable_pages.add(page);
          }
          throw errno("EIO", "input/output error");
        }
        const kept = inode.unwritable_pages;
        if (kept === undefined || kept.size === 0) {
          inode.durable.set(inode.data);
          this.fsyncs++;
          return;
        }
        for (let page = 0; page * page_bytes < inode.data.length; page++) {
          if (kept?.has(page)) continue;
          const at = page * page_bytes;
          inode.durable.set(inode.data.subarray(at, Math.min(inode.data.length, at + page_bytes)), at);
        }
        this.fsyncs++;
      },
      close: () => {},
    };
  }

  map(file: string): Uint8Array {
    return this.inode(file).data;
  }

  rename(from: string, to: string): void {
    const inode = this.inode(from);
    this.names.delete(from);
    this.names.set(to, inode);
  }

  unlink(file: string): void {
    this.names.delete(file);
  }

  async sync_dir(dir: string): Promise<void> {
    await Promise.resolve();
    this.sync_dir_sync(dir);
  }

  sync_dir_sync(dir: string): void {
    for (const d of this.dirs) if (path.dirname(d) === dir) this.durable_dirs.add(d);
    for (const name of [...this.durable_names.keys()]) if (path.dirname(name) === dir) this.durable_names.delete(name);
    for (const [name, inode] of this.names) if (path.dirname(name) === dir) this.durable_names.set(name, inode);
  }

  free_bytes(): number | null {
    return Number.isFinite(this.capacity_bytes) ? this.capacity_bytes - this.used_bytes() : null;
  }

  /**
   * This file system as one process sees it: after power_cut or
   * process_crash every call through it fails, so a dead process's leftover
   * timers and promises cannot touch what the next process finds.
   */
  session(): FileIO {
    const generation = this.generation;
    const check = () => {
      if (this.generation !== generation) throw errno("EIO", "the process using this file system is gone");
    };
    return new Proxy(this, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          check();
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /** Simulates losing power: see the class comment. Everything opened before is dead afterwards. */
  power_cut(rng: Random): void {
    this.generation++;
    this.locks.clear();
    const names = new Map<string, Inode>();
    for (const [name, inode] of this.names) {
      const kept = this.durable_names.get(name) === inode || rng.chance(0.5);
      if (kept) names.set(name, inode);
    }
    for (const [name, inode] of this.durable_names) if (!names.has(name) && !this.names_has_inode(names, inode)) names.set(name, inode);
    for (const inode of new Set(names.values())) {
      const { data, durable } = inode;
      for (let page = 0; page < data.length; page += page_bytes) {
        const end = Math.min(data.length, page + page_bytes);
        if (!differs(data, durable, page, end)) continue;
        const fate = rng.int(0, 2);
        if (fate === 0) continue; // kept: the new bytes reached the disk
        if (fate === 1) {
          data.set(durable.subarray(page, end), page); // lost
          continue;
        }
        for (let s = page; s < end; s += sector_bytes) {
          if (rng.chance(0.5)) data.set(durable.subarray(s, Math.min(end, s + sector_bytes)), s); // torn
        }
      }
      // After the cut what is on disk is all there is; fresh arrays leave old mappings dead.
      inode.data = data.slice();
      inode.durable = inode.data.slice();
      inode.unwritable_pages = undefined;
    }
    // A directory whose entry never reached its parent may be gone, and with it everything below it.
    for (const dir of [...this.dirs].sort()) {
      if (!this.dirs.has(dir) || this.durable_dirs.has(dir) || rng.chance(0.5)) continue;
      for (const d of [...this.dirs]) if (d === dir || d.startsWith(`${dir}/`)) this.dirs.delete(d);
      for (const name of [...names.keys()]) if (name.startsWith(`${dir}/`)) names.delete(name);
    }
    for (const d of this.dirs) this.durable_dirs.add(d);
    this.names = names;
    this.durable_names = new Map(names);
  }

  private names_has_inode(names: Map<string, Inode>, inode: Inode): boolean {
    for (const v of names.values()) if (v === inode) return true;
    return false;
  }

  /** A process crash (kill -9): the page cache survives, open handles die. */
  process_crash(): void {
    this.generation++;
    this.locks.clear();
    for (const inode of new Set(this.names.values())) inode.data = inode.data.slice();
  }
}

function differs(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return true;
  return false;
}
