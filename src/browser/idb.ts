/**
 * IndexedDB requests as promises, for the page's key store (the log's pages
 * go through storage/indexeddb_page_store.ts). The project compiles without
 * the DOM library (its fetch types clash with Bun's), so the few IndexedDB
 * types used here are declared with the DOM's names.
 */
export interface IdbRequest<T> {
  readonly result: T;
  readonly error: Error | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}

interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: (() => void) | null;
}

interface IdbObjectStore {
  get(key: string): IdbRequest<unknown>;
  add(value: unknown, key: string): IdbRequest<unknown>;
}

export interface IdbTransaction {
  objectStore(name: string): IdbObjectStore;
  readonly error: Error | null;
  oncomplete: (() => void) | null;
  onabort: (() => void) | null;
  onerror: (() => void) | null;
}

export interface IdbDatabase {
  readonly objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string): unknown;
  transaction(stores: string, mode?: "readonly" | "readwrite", options?: { durability: "strict" | "relaxed" | "default" }): IdbTransaction;
  close(): void;
}

export function request<T>(r: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

export function open_db(name: string, stores: readonly string[]): Promise<IdbDatabase> {
  const idb = (globalThis as unknown as { indexedDB?: { open(name: string, version: number): IdbOpenRequest } }).indexedDB;
  if (idb === undefined) return Promise.reject(new Error("this browser offers no IndexedDB (a private window may block it)"));
  const r = idb.open(name, 1);
  r.onupgradeneeded = () => {
    for (const store of stores) if (!r.result.objectStoreNames.contains(store)) r.result.createObjectStore(store);
  };
  return request(r);
}

/** Resolves once a readwrite transaction is durable (complete), rejects when it aborted. */
export function done(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
  });
}
