import type { FileIO } from "../../log/file_api.ts";

/**
 * The browser twin of src/log/file_io.ts: the interface and mkdir_durable as
 * they are, and no Node file system (a tab stores through PagedFileIO over
 * IndexedDB, passed to the log as `io`).
 */
export type { FileHandle, FileIO } from "../../log/file_api.ts";
export { mkdir_durable } from "../../log/file_api.ts";

export const node_file_io: FileIO = new Proxy({} as FileIO, {
  get(_target, name) {
    throw new Error(`no file system in a browser (FileIO.${String(name)}): open the log with io = PagedFileIO`);
  },
});
