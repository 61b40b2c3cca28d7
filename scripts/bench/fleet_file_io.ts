import path from "node:path";
import type { FileHandle, FileIO } from "../../src/log/file_io.ts";

/**
 * The smallest in-memory file system a Log runs on, for the fleet simulation:
 * a thousand replicas in one process, where the cost of test/support's
 * MemFileIO (a second copy of every file, refreshed on every fsync, for
 * power-cut tests) would dwarf the sync work being measured. No faults: an
 * fsync only takes a turn of the microtask queue.
 */
export class FleetFileIO implements FileIO {
  private readonly files = new Map<string, Uint8Array>();
  private readonly dirs = new Set<string>();

  exists(file: string): boolean {
    return this.files.has(file) || this.dirs.has(file);
  }

  mkdirp(dir: string): void {
    for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) this.dirs.add(d);
  }

  list(dir: string): string[] {
    const out: string[] = [];
    for (const name of this.files.keys()) if (path.dirname(name) === dir) out.push(path.basename(name));
    return out;
  }

  size_bytes(file: string): number {
    return this.data(file).length;
  }

  read_file(file: string): Uint8Array | null {
    return this.files.get(file)?.slice() ?? null;
  }

  async write_file_atomic(file: string, bytes: Uint8Array): Promise<void> {
    this.files.set(file, bytes.slice());
    await Promise.resolve();
  }

  async create_zeroed(file: string, size_bytes: number): Promise<void> {
    await Promise.resolve();
    this.files.set(file, new Uint8Array(size_bytes));
  }

  create_zeroed_sync(file: string, size_bytes: number): void {
    this.files.set(file, new Uint8Array(size_bytes));
  }

  open(file: string): FileHandle {
    const data = this.data(file);
    return {
      write: (bytes, from, length, file_offset) => data.set(bytes.subarray(from, from + length), file_offset),
      sync: () => Promise.resolve(),
      close: () => {},
    };
  }

  map(file: string): Uint8Array {
    return this.data(file);
  }

  rename(from: string, to: string): void {
    const data = this.data(from);
    this.files.delete(from);
    this.files.set(to, data);
  }

  unlink(file: string): void {
    this.files.delete(file);
  }

  sync_dir(): Promise<void> {
    return Promise.resolve();
  }

  sync_dir_sync(): void {}

  free_bytes(): number | null {
    return null;
  }

  lock(): { release(): void } {
    return { release: () => {} };
  }

  private data(file: string): Uint8Array {
    const data = this.files.get(file);
    if (data === undefined) throw Object.assign(new Error(`ENOENT: no such file ${file}`), { code: "ENOENT" });
    return data;
  }
}
