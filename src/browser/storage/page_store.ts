/**
 * What a paged file system (paged_file_io.ts) persists through: files cut in
 * pages of page_size_bytes, committed in atomic transactions. IndexedDB in a
 * browser (indexeddb_page_store.ts), memory in tests and the simulator
 * (memory_page_store.ts).
 *
 * A file is stored as a record (id, name, size) and its pages keyed by
 * (file id, page index). Files are known by id, not name, so a rename
 * rewrites one record and moves no page. A page never written is absent and
 * reads as zeros: segment files are preallocated zeroed and mostly empty.
 */

export const page_size_bytes = 64 * 1024;

export interface StoredFile {
  /** Never reused for another file while this one is stored. */
  id: number;
  /** Full path, e.g. /r/segments/00000000000000000000.seg. */
  name: string;
  size_bytes: number;
}

export interface StoredPage {
  file_id: number;
  page_index: number;
  /** page_size_bytes, or less for a file's last page; a fresh buffer (IndexedDB clones a view with its whole buffer). */
  bytes: Uint8Array;
}

/** Everything as of the last committed transaction. */
export interface StoredState {
  files: StoredFile[];
  pages: StoredPage[];
  /** Directories, full paths. */
  dirs: string[];
}

/**
 * One atomic transaction, applied in this order: delete_files (each file's
 * record and all its pages), then put_files, put_pages, put_dirs. An id is
 * never both deleted and put in one transaction.
 */
export interface StoreTx {
  /** Files gone since the last commit: unlinked, or replaced by a rename or a new file of the same name. */
  delete_files: number[];
  /** Records of files created or renamed since the last commit. */
  put_files: StoredFile[];
  /** Pages written since the last commit, of files stored already or in put_files. */
  put_pages: StoredPage[];
  put_dirs: string[];
}

export interface PageStore {
  /** Reads the state the last committed transaction left. */
  load(): Promise<StoredState>;
  /**
   * Applies `tx` whole or not at all; resolves once it is durable. A failure
   * (the browser's quota: an error named QuotaExceededError) applies none of it.
   */
  commit(tx: StoreTx): Promise<void>;
}

/** How many pages a file of size_bytes has. */
export function page_count(size_bytes: number): number {
  return Math.ceil(size_bytes / page_size_bytes);
}

/** The length of page `page_index` of a file of size_bytes: a whole page but the last. */
export function page_length_bytes(size_bytes: number, page_index: number): number {
  return Math.min(page_size_bytes, size_bytes - page_index * page_size_bytes);
}

export function empty_tx(): StoreTx {
  return { delete_files: [], put_files: [], put_pages: [], put_dirs: [] };
}

export function tx_is_empty(tx: StoreTx): boolean {
  return tx.delete_files.length === 0 && tx.put_files.length === 0 && tx.put_pages.length === 0 && tx.put_dirs.length === 0;
}
