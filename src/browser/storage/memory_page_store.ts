import { assert } from "../../lib/assert.ts";
import type { Random } from "../../lib/random.ts";
import { type PageStore, type StoreTx, type StoredFile, type StoredState, page_count, page_length_bytes } from "./page_store.ts";

/**
 * A PageStore in memory, for tests and the simulator: IndexedDB's contract
 * without a browser. A commit completes a microtask after it is made (as an
 * fsync does in MemFileIO) and commits complete in the order they were made.
 *
 * - crash(rng?): the tab closes. What was committed survives; of the commits
 *   still in flight a prefix lands when an rng is given (a transaction the
 *   browser completed though the page never heard back), none otherwise.
 *   Sessions opened before it are dead: their loads and commits fail.
 * - fail_next_commits(n): the next n commits fail as a full quota does in a
 *   browser (an error named QuotaExceededError), applying nothing.
 *
 * Bytes are copied in and out, so the live buffers of a PagedFileIO cannot
 * reach what counts as durable here.
 */

interface InFlight {
  tx: StoreTx;
  generation: number;
}

function quota_exceeded(): Error {
  return Object.assign(new Error("the quota has been exceeded"), { name: "QuotaExceededError" });
}

function tab_closed(): Error {
  return Object.assign(new Error("the tab that made this transaction was closed"), { name: "AbortError" });
}

function copy_tx(tx: StoreTx): StoreTx {
  return {
    delete_files: [...tx.delete_files],
    put_files: tx.put_files.map((f) => ({ ...f })),
    put_pages: tx.put_pages.map((p) => ({ file_id: p.file_id, page_index: p.page_index, bytes: p.bytes.slice() })),
    put_dirs: [...tx.put_dirs],
  };
}

export class MemoryPageStore implements PageStore {
  private readonly files = new Map<number, StoredFile>();
  /** Pages by file id, then page index. */
  private readonly pages = new Map<number, Map<number, Uint8Array>>();
  private readonly dirs = new Set<string>();
  private in_flight: InFlight[] = [];
  private generation = 0;
  private failing_commits = 0;
  /** Transactions applied, for tests. */
  commits = 0;

  load(): Promise<StoredState> {
    return this.load_as(this.generation);
  }

  commit(tx: StoreTx): Promise<void> {
    return this.commit_as(this.generation, tx);
  }

  /** This store as one tab sees it: after crash() every call through it fails. */
  session(): PageStore {
    const generation = this.generation;
    return { load: () => this.load_as(generation), commit: (tx) => this.commit_as(generation, tx) };
  }

  fail_next_commits(n: number): void {
    assert(Number.isSafeInteger(n) && n >= 0, "a count of commits");
    this.failing_commits = n;
  }

  /** The tab closes (or the machine loses power): see the class comment. */
  crash(rng?: Random): void {
    const kept = rng === undefined ? 0 : rng.int(0, this.in_flight.length);
    for (const f of this.in_flight.slice(0, kept)) this.apply(f.tx);
    this.in_flight = [];
    this.generation++;
  }

  /** Pages stored, for tests. */
  get page_count(): number {
    let n = 0;
    for (const pages of this.pages.values()) n += pages.size;
    return n;
  }

  private async load_as(generation: number): Promise<StoredState> {
    await Promise.resolve();
    if (generation !== this.generation) throw tab_closed();
    const state: StoredState = { files: [], pages: [], dirs: [...this.dirs] };
    for (const f of this.files.values()) state.files.push({ ...f });
    for (const [file_id, pages] of this.pages) {
      for (const [page_index, bytes] of pages) state.pages.push({ file_id, page_index, bytes: bytes.slice() });
    }
    return state;
  }

  private async commit_as(generation: number, tx: StoreTx): Promise<void> {
    if (generation !== this.generation) throw tab_closed();
    if (this.failing_commits > 0) {
      this.failing_commits--;
      await Promise.resolve();
      throw quota_exceeded();
    }
    const entry: InFlight = { tx: copy_tx(tx), generation };
    this.in_flight.push(entry);
    await Promise.resolve();
    // A crash since decided this transaction's fate (landed or lost); the tab that made it never learns which.
    if (entry.generation !== this.generation) throw tab_closed();
    assert(this.in_flight[0] === entry, "transactions complete in the order they were made");
    this.in_flight.shift();
    this.apply(entry.tx);
  }

  private apply(tx: StoreTx): void {
    for (const id of tx.delete_files) {
      assert(!tx.put_files.some((f) => f.id === id), "a transaction does not both delete and write a file");
      this.files.delete(id);
      this.pages.delete(id);
    }
    for (const f of tx.put_files) {
      const old = this.files.get(f.id);
      assert(old === undefined || old.size_bytes === f.size_bytes, "a stored file keeps its size");
      this.files.set(f.id, { ...f });
    }
    const names = new Set<string>();
    for (const f of this.files.values()) {
      assert(!names.has(f.name), `one stored file per name (${f.name})`);
      names.add(f.name);
    }
    for (const p of tx.put_pages) {
      const f = this.files.get(p.file_id);
      assert(f !== undefined, `a page belongs to a stored file (id ${p.file_id})`);
      assert(p.page_index >= 0 && p.page_index < page_count(f.size_bytes), `a page lies within its file (${f.name} page ${p.page_index})`);
      assert(p.bytes.length === page_length_bytes(f.size_bytes, p.page_index), `a page is whole (${f.name} page ${p.page_index})`);
      let pages = this.pages.get(p.file_id);
      if (pages === undefined) {
        pages = new Map();
        this.pages.set(p.file_id, pages);
      }
      pages.set(p.page_index, p.bytes);
    }
    for (const d of tx.put_dirs) this.dirs.add(d);
    this.commits++;
  }
}
