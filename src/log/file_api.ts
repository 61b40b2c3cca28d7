import path from "node:path";

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
