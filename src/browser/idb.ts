/**
 * IndexedDB for the page (its key store, and the log's pages through
 * storage/indexeddb_page_store.ts). The project compiles without the DOM
 * library (adding it to one file adds it to every file, and its fetch and
 * stream types clash with Bun's), so the part of IndexedDB used is declared
 * here with the DOM's names.
 */
export interface IdbRequest<T> {
  readonly result: T;
  readonly error: Error | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}

export interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: (() => void) | null;
}

export type IdbKey = number | string | IdbKey[];

export type IdbKeyRange = { readonly lower: unknown; readonly upper: unknown };

export interface IdbObjectStore {
  get(key: IdbKey): IdbRequest<unknown>;
  add(value: unknown, key?: IdbKey): IdbRequest<IdbKey>;
  put(value: unknown, key?: IdbKey): IdbRequest<IdbKey>;
  delete(query: IdbKey | IdbKeyRange): IdbRequest<undefined>;
  getAll(): IdbRequest<unknown[]>;
  getAllKeys(): IdbRequest<IdbKey[]>;
}

export interface IdbTransaction {
  readonly error: Error | null;
  objectStore(name: string): IdbObjectStore;
  commit?(): void;
  oncomplete: (() => void) | null;
  onabort: (() => void) | null;
  onerror?: (() => void) | null;
}

export interface IdbDatabase {
  readonly objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string, options?: { keyPath?: string }): IdbObjectStore;
  transaction(stores: string | string[], mode?: "readonly" | "readwrite", options?: { durability?: "default" | "strict" | "relaxed" }): IdbTransaction;
  close(): void;
  onversionchange: (() => void) | null;
}

export interface IdbGlobals {
  indexedDB?: { open(name: string, version: number): IdbOpenRequest };
  IDBKeyRange?: { bound(lower: IdbKey, upper: IdbKey): IdbKeyRange };
}

export function request<T>(r: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

export function open_db(name: string, stores: readonly string[]): Promise<IdbDatabase> {
  const idb = (globalThis as unknown as IdbGlobals).indexedDB;
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
