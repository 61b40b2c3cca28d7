import { assert } from "../../lib/assert.ts";
import type { PageStore, StoreTx, StoredFile, StoredPage, StoredState } from "./page_store.ts";
import { type IdbDatabase, type IdbGlobals, request as request_done } from "../idb.ts";

/**
 * The PageStore of a browser tab: one IndexedDB database with three object
 * stores, "files" (records keyed by id), "pages" (bytes keyed by
 * [file id, page index]) and "dirs" (keyed by path). Each commit is one
 * readwrite transaction over all three with durability "strict", so it
 * resolves only once the browser has flushed it to disk.
 *
 * The IndexedDB types are declared in ../idb.ts (the project compiles
 * without the DOM library).
 */

const db_version = 1;
const files_store = "files";
const pages_store = "pages";
const dirs_store = "dirs";
const all_stores = [files_store, pages_store, dirs_store];

function idb(): Required<IdbGlobals> {
  const g = globalThis as unknown as IdbGlobals;
  if (g.indexedDB === undefined || g.IDBKeyRange === undefined) throw new Error("this browser offers no IndexedDB (a private window may turn it off)");
  return { indexedDB: g.indexedDB, IDBKeyRange: g.IDBKeyRange };
}

/** A structured clone of a view copies its whole buffer: store a page's bytes alone. */
function own_bytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

export class IndexedDbPageStore implements PageStore {
  private readonly db: IdbDatabase;

  private constructor(db: IdbDatabase) {
    this.db = db;
  }

  static async open(db_name: string): Promise<IndexedDbPageStore> {
    const request = idb().indexedDB.open(db_name, db_version);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(files_store)) db.createObjectStore(files_store, { keyPath: "id" });
      if (!db.objectStoreNames.contains(pages_store)) db.createObjectStore(pages_store);
      if (!db.objectStoreNames.contains(dirs_store)) db.createObjectStore(dirs_store, { keyPath: "path" });
    };
    const db = await request_done(request);
    // A newer version opened elsewhere: let it upgrade; this tab's commits then fail and its log stops.
    db.onversionchange = () => db.close();
    return new IndexedDbPageStore(db);
  }

  async load(): Promise<StoredState> {
    const tx = this.db.transaction(all_stores, "readonly");
    const pages = tx.objectStore(pages_store);
    // One transaction: keys and values are read from the same snapshot, both in key order.
    const [files, dirs, page_keys, page_values] = await Promise.all([
      request_done(tx.objectStore(files_store).getAll()),
      request_done(tx.objectStore(dirs_store).getAll()),
      request_done(pages.getAllKeys()),
      request_done(pages.getAll()),
    ]);
    assert(page_keys.length === page_values.length, "a page for each page key");
    const state: StoredState = { files: files as StoredFile[], pages: [], dirs: (dirs as { path: string }[]).map((d) => d.path) };
    for (let i = 0; i < page_keys.length; i++) {
      const key = page_keys[i];
      assert(Array.isArray(key) && key.length === 2, "a page key is [file id, page index]");
      const bytes = page_values[i];
      assert(bytes instanceof Uint8Array, "a page holds bytes");
      const page: StoredPage = { file_id: key[0] as number, page_index: key[1] as number, bytes };
      state.pages.push(page);
    }
    return state;
  }

  commit(tx: StoreTx): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = this.db.transaction(all_stores, "readwrite", { durability: "strict" });
      t.oncomplete = () => resolve();
      // A failed request aborts the whole transaction (QuotaExceededError when the quota is full).
      t.onabort = () => reject(t.error ?? new Error("the IndexedDB transaction was aborted"));
      const files = t.objectStore(files_store);
      const pages = t.objectStore(pages_store);
      const dirs = t.objectStore(dirs_store);
      const key_range = idb().IDBKeyRange;
      for (const id of tx.delete_files) {
        files.delete(id);
        pages.delete(key_range.bound([id, 0], [id, Number.MAX_SAFE_INTEGER]));
      }
      for (const f of tx.put_files) files.put({ id: f.id, name: f.name, size_bytes: f.size_bytes });
      for (const p of tx.put_pages) pages.put(own_bytes(p.bytes), [p.file_id, p.page_index]);
      for (const d of tx.put_dirs) dirs.put({ path: d });
      // Every request is made: no need to wait for the transaction to go idle.
      t.commit?.();
    });
  }
}
