import { assert } from "../../lib/assert.ts";
import { InterlogError } from "../../lib/errors.ts";
import type { FileHandle, FileIO } from "../../log/file_io.ts";
import { type PageStore, type StoreTx, page_count, page_length_bytes, page_size_bytes, tx_is_empty } from "./page_store.ts";

/**
 * The log's FileIO over a PageStore (IndexedDB in a browser tab).
 *
 * Every file lives whole in memory as one Uint8Array: map() returns it and
 * handle.write() writes into it, so a mapping shows every write at once. That
 * costs a segment's size per open segment, which is why a browser replica
 * uses small segments (a few MiB). Pages written since the last commit are
 * dirty; created, renamed and removed files and new directories are pending.
 *
 * Durability: handle.sync(), sync_dir(), create_zeroed() and
 * write_file_atomic() each wait for the next commit, which snapshots every
 * dirty page and every pending change in ONE store transaction. Calls made in
 * the same turn (a group commit's syncs and directory sync, through
 * Promise.all) share it: the commit starts at the end of the turn, and one
 * commit runs at a time, so a transaction's snapshot is always later than the
 * last one's. rename() and unlink() act in memory at once and become durable
 * with the next commit, as POSIX makes them durable with a directory fsync.
 * What the store holds is thus always the whole file system as it was at one
 * instant: stronger than a disk after a power cut (nothing is torn or
 * reordered), so recovery sees one of the outcomes it handles already.
 *
 * The store is never written from the JS thread synchronously:
 * create_zeroed_sync() makes the file in memory only (the log's directory
 * sync after a rotation persists it with the frames written into it), and
 * sync_dir_sync() cannot be offered.
 */

interface Inode {
  readonly id: number;
  readonly data: Uint8Array;
  /** null once unlinked or replaced: its pages are never persisted again. */
  name: string | null;
  /** Its record may be in the store (committed, or in a commit that ran): removing it must delete it there. */
  stored: boolean;
}

export interface PagedFileIOOptions {
  /** Creating files beyond this total fails with ENOSPC, as a full disk does (the quota shows only when a commit fails). */
  capacity_bytes?: number;
}

/** What one commit took from the pending state, to put back if it fails. */
interface Taken {
  tx: StoreTx;
  changed: Inode[];
  dirty: [Inode, number[]][];
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function errno(code: string, message: string, cause?: unknown): Error {
  return Object.assign(new Error(`${code}: ${message}`, cause === undefined ? undefined : { cause }), { code });
}

/** A commit the store refused: the quota becomes ENOSPC, which the log handles as a full disk. */
function store_error(err: unknown): Error {
  const name = typeof err === "object" && err !== null && "name" in err ? String((err as { name: unknown }).name) : "";
  if (name === "QuotaExceededError") {
    return errno("ENOSPC", `the browser's storage quota is full (${String(err)}); free space in this site's storage or ask the browser for persistent storage`, err);
  }
  return errno("EIO", `the browser's storage failed to commit (${String(err)})`, err);
}

/** The directory of a path as node:path's posix dirname gives it (this module runs in the page, without node:path). */
function dirname(file: string): string {
  const at = file.lastIndexOf("/");
  if (at < 0) return ".";
  return at === 0 ? "/" : file.slice(0, at);
}

function basename(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1);
}

export class PagedFileIO implements FileIO {
  private readonly store: PageStore;
  private readonly capacity_bytes: number;
  private readonly names = new Map<string, Inode>();
  private readonly dirs = new Set<string>(["/"]);
  private next_id = 1;
  private readonly locks = new Set<string>();

  /** Stored files removed since the last commit, by id. */
  private removed = new Set<number>();
  /** Files whose record changed (created, renamed) since the last commit. */
  private changed = new Set<Inode>();
  /** Pages written since the last commit, by file. */
  private dirty = new Map<Inode, Set<number>>();
  private new_dirs = new Set<string>();

  /** The commit the next durability request waits for; null when none is requested. */
  private next_commit: Deferred | null = null;
  private commit_scheduled = false;
  private committing = false;

  private constructor(store: PageStore, capacity_bytes: number) {
    this.store = store;
    this.capacity_bytes = capacity_bytes;
  }

  /** Loads everything the store holds into memory. */
  static async open(store: PageStore, options: PagedFileIOOptions = {}): Promise<PagedFileIO> {
    const state = await store.load();
    const by_id = new Map<number, Inode>();
    let max_id = 0;
    const io = new PagedFileIO(store, options.capacity_bytes ?? Number.POSITIVE_INFINITY);
    for (const f of state.files) {
      assert(Number.isSafeInteger(f.id) && f.id > 0 && !by_id.has(f.id), `stored file ids are unique (${f.id})`);
      assert(!io.names.has(f.name), `stored file names are unique (${f.name})`);
      assert(Number.isSafeInteger(f.size_bytes) && f.size_bytes >= 0, `a stored file has a size (${f.name})`);
      const inode: Inode = { id: f.id, data: new Uint8Array(f.size_bytes), name: f.name, stored: true };
      by_id.set(f.id, inode);
      io.names.set(f.name, inode);
      max_id = Math.max(max_id, f.id);
    }
    for (const p of state.pages) {
      const inode = by_id.get(p.file_id);
      assert(inode !== undefined, `a stored page belongs to a stored file (id ${p.file_id})`);
      assert(p.page_index >= 0 && p.page_index < page_count(inode.data.length), `a stored page lies within its file (${inode.name} page ${p.page_index})`);
      assert(p.bytes.length === page_length_bytes(inode.data.length, p.page_index), `a stored page is whole (${inode.name} page ${p.page_index})`);
      inode.data.set(p.bytes, p.page_index * page_size_bytes);
    }
    for (const d of state.dirs) io.add_dir(d, false);
    io.next_id = max_id + 1;
    return io;
  }

  // ---------------------------------------------------------------- names

  exists(file: string): boolean {
    return this.names.has(file) || this.dirs.has(file);
  }

  mkdirp(dir: string): void {
    this.add_dir(dir, true);
  }

  private add_dir(dir: string, pending: boolean): void {
    for (let d = dir; d !== dirname(d); d = dirname(d)) {
      if (this.dirs.has(d)) continue;
      this.dirs.add(d);
      if (pending) this.new_dirs.add(d);
    }
  }

  list(dir: string): string[] {
    const out: string[] = [];
    for (const name of this.names.keys()) if (dirname(name) === dir) out.push(basename(name));
    for (const d of this.dirs) if (d !== dir && dirname(d) === dir) out.push(basename(d));
    return out;
  }

  size_bytes(file: string): number {
    return this.inode(file).data.length;
  }

  read_file(file: string): Uint8Array | null {
    return this.names.get(file)?.data.slice() ?? null;
  }

  private inode(file: string): Inode {
    const inode = this.names.get(file);
    if (inode === undefined) throw errno("ENOENT", `no such file ${file}`);
    return inode;
  }

  rename(from: string, to: string): void {
    const inode = this.inode(from);
    if (from === to) return;
    if (!this.dirs.has(dirname(to))) throw errno("ENOENT", `no such directory ${dirname(to)}`);
    this.names.delete(from);
    this.drop(to);
    inode.name = to;
    this.names.set(to, inode);
    this.changed.add(inode);
  }

  unlink(file: string): void {
    this.drop(file);
  }

  /** Removes the file named `file`, if any: its pages are never persisted again, and the store's copy goes with the next commit. */
  private drop(file: string): void {
    const inode = this.names.get(file);
    if (inode === undefined) return;
    this.names.delete(file);
    inode.name = null;
    this.changed.delete(inode);
    this.dirty.delete(inode);
    if (inode.stored) this.removed.add(inode.id);
  }

  /** Makes `file` a new file holding `data` (replacing any of that name), every page of it to be written. */
  private create(file: string, data: Uint8Array, every_page_dirty: boolean): Inode {
    const parent = dirname(file);
    if (!this.dirs.has(parent)) throw errno("ENOENT", `no such directory ${parent}`);
    this.drop(file);
    const inode: Inode = { id: this.next_id++, data, name: file, stored: false };
    this.names.set(file, inode);
    this.changed.add(inode);
    if (every_page_dirty) for (let page = 0; page < page_count(data.length); page++) this.mark_dirty(inode, page);
    return inode;
  }

  private mark_dirty(inode: Inode, page: number): void {
    let pages = this.dirty.get(inode);
    if (pages === undefined) {
      pages = new Set();
      this.dirty.set(inode, pages);
    }
    pages.add(page);
  }

  // ---------------------------------------------------------------- files

  private used_bytes(): number {
    let total = 0;
    for (const inode of this.names.values()) total += inode.data.length;
    return total;
  }

  private make_zeroed(file: string, size_bytes: number): Inode {
    assert(Number.isSafeInteger(size_bytes) && size_bytes >= 0, "a file size is a whole number of bytes");
    const existing = this.names.get(file)?.data.length ?? 0;
    if (this.used_bytes() - existing + size_bytes > this.capacity_bytes) throw errno("ENOSPC", "no space left on device");
    // A zeroed file's pages are absent from the store and read as zeros: nothing to write but its record.
    return this.create(file, new Uint8Array(size_bytes), false);
  }

  async create_zeroed(file: string, size_bytes: number, should_stop?: () => boolean): Promise<void> {
    if (should_stop?.()) throw new Error("stopped");
    const inode = this.make_zeroed(file, size_bytes);
    try {
      await this.persist();
    } catch (err) {
      // The contract leaves no file behind a failure.
      if (this.names.get(file) === inode) this.drop(file);
      throw err;
    }
  }

  /** Made in memory only, durable with the next commit: the store cannot be awaited on the JS thread. */
  create_zeroed_sync(file: string, size_bytes: number): void {
    this.make_zeroed(file, size_bytes);
  }

  async write_file_atomic(file: string, bytes: Uint8Array, _mode?: number): Promise<void> {
    // One transaction replaces the old file by the new one: there is no temp file to see.
    this.create(file, bytes.slice(), true);
    await this.persist();
  }

  open(file: string): FileHandle {
    const inode = this.inode(file);
    let closed = false;
    return {
      write: (bytes, from, length, file_offset) => {
        assert(!closed, "no write through a closed handle");
        assert(from >= 0 && length >= 0 && from + length <= bytes.length && file_offset >= 0, "a write lies within its source");
        if (file_offset + length > inode.data.length) throw errno("EFBIG", "write past the preallocated end");
        inode.data.set(bytes.subarray(from, from + length), file_offset);
        // An unlinked file's pages are never persisted: they would land on a name that is gone or someone else's.
        if (inode.name === null || length === 0) return;
        const last = Math.floor((file_offset + length - 1) / page_size_bytes);
        for (let page = Math.floor(file_offset / page_size_bytes); page <= last; page++) this.mark_dirty(inode, page);
      },
      sync: () => this.persist(),
      close: () => {
        closed = true;
      },
    };
  }

  map(file: string): Uint8Array {
    return this.inode(file).data;
  }

  async sync_dir(_dir: string): Promise<void> {
    await this.persist();
  }

  sync_dir_sync(dir: string): void {
    throw errno("ENOTSUP", `browser storage cannot sync ${dir} on the JS thread; use sync_dir`);
  }

  free_bytes(_dir: string): number | null {
    // The quota (navigator.storage.estimate) is known only asynchronously.
    return Number.isFinite(this.capacity_bytes) ? this.capacity_bytes - this.used_bytes() : null;
  }

  /** In this page only: another tab is kept out with a Web Lock before the log is opened. */
  lock(file: string): { release(): void } {
    if (this.locks.has(file)) throw new InterlogError("DATA_DIR_LOCKED", `data directory is in use (${file})`);
    this.locks.add(file);
    let held = true;
    return {
      release: () => {
        if (held) this.locks.delete(file);
        held = false;
      },
    };
  }

  // ---------------------------------------------------------------- commits

  /** Resolves once a commit that snapshots the state after this call is durable. */
  private persist(): Promise<void> {
    this.next_commit ??= deferred();
    this.schedule_commit();
    return this.next_commit.promise;
  }

  private schedule_commit(): void {
    if (this.commit_scheduled || this.committing) return;
    this.commit_scheduled = true;
    // At the end of the turn: every sync and sync_dir the caller starts in it joins the same transaction.
    queueMicrotask(() => {
      this.commit_scheduled = false;
      void this.run_commit();
    });
  }

  private async run_commit(): Promise<void> {
    const waiting = this.next_commit;
    if (waiting === null || this.committing) return;
    this.next_commit = null;
    const taken = this.take_pending();
    this.committing = true;
    try {
      // Nothing changed since the last commit (which has completed): the state asked for is durable already.
      if (!tx_is_empty(taken.tx)) {
        await this.store.commit(taken.tx);
      }
      waiting.resolve();
    } catch (err) {
      // Memory is still the truth: the next commit tries again with everything this one held.
      this.put_back(taken);
      waiting.reject(store_error(err));
    } finally {
      this.committing = false;
    }
    if (this.next_commit !== null) this.schedule_commit();
  }

  /** Builds the transaction of everything pending and clears it. */
  private take_pending(): Taken {
    const tx: StoreTx = { delete_files: [...this.removed], put_files: [], put_pages: [], put_dirs: [...this.new_dirs] };
    const taken: Taken = { tx, changed: [], dirty: [] };
    for (const inode of this.changed) {
      assert(inode.name !== null, "a removed file has no pending record");
      taken.changed.push(inode);
      tx.put_files.push({ id: inode.id, name: inode.name, size_bytes: inode.data.length });
      inode.stored = true;
    }
    for (const [inode, pages] of this.dirty) {
      assert(inode.name !== null, "a removed file has no dirty pages");
      // Its record is stored or goes with this transaction.
      assert(inode.stored, "a file's pages are committed with or after its record");
      const list = [...pages].sort((a, b) => a - b);
      taken.dirty.push([inode, list]);
      for (const page of list) {
        const at = page * page_size_bytes;
        // A copy: later writes to the live buffer must not reach this transaction.
        tx.put_pages.push({ file_id: inode.id, page_index: page, bytes: inode.data.slice(at, at + page_length_bytes(inode.data.length, page)) });
      }
    }
    for (const id of tx.delete_files) assert(!tx.put_files.some((f) => f.id === id), "a file is not both deleted and written");
    this.removed = new Set();
    this.changed = new Set();
    this.dirty = new Map();
    this.new_dirs = new Set();
    return taken;
  }

  /** A failed commit's changes are pending again, except for files removed since. */
  private put_back(taken: Taken): void {
    for (const id of taken.tx.delete_files) this.removed.add(id);
    for (const inode of taken.changed) if (inode.name !== null) this.changed.add(inode);
    for (const [inode, pages] of taken.dirty) if (inode.name !== null) for (const page of pages) this.mark_dirty(inode, page);
    for (const d of taken.tx.put_dirs) this.new_dirs.add(d);
  }
}
