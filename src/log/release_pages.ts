import { FFIType, ptr } from "bun:ffi";
import { libc_ffi_platform, open_libc } from "./libc.ts";

/**
 * Drops a mapping's resident pages from this process: Linux madvise(2) with
 * MADV_DONTNEED on a shared file mapping, through bun:ffi. The pages stay in
 * the page cache (the file's data is untouched, written or not) and a later
 * read of the mapping faults them back in from there, so this only stops a
 * sealed segment that was read once (the appender reads what it publishes)
 * from counting in the process's RSS for as long as the log is open: without
 * it, RSS grows with the log up to the disk budget (issue 16). Best effort:
 * a platform without madvise keeps the pages.
 */

/** MADV_DONTNEED in linux/mman.h (the same on x86-64 and arm64). */
const madv_dontneed = 4;
const page_bytes = 4096;

type Madvise = (address: number, length: number, advice: number) => number;
/** undefined: not looked up yet; null: not available here. */
let madvise: Madvise | null | undefined;

function load(): Madvise | null {
  if (!libc_ffi_platform()) return null;
  const opened = open_libc({ madvise: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 } });
  if (!("lib" in opened)) return null;
  const call = opened.lib.symbols.madvise;
  return (address, length, advice) => call(address, length, advice);
}

/**
 * Releases the resident pages of `view`, which must be a whole mapping from
 * Bun.mmap (page-aligned, a multiple of the page size long). Returns whether
 * madvise accepted it.
 */
export function release_mapped_pages(view: Uint8Array): boolean {
  if (view.byteLength === 0 || view.byteLength % page_bytes !== 0) return false;
  if (madvise === undefined) madvise = load();
  if (madvise === null) return false;
  const address = ptr(view);
  if (address % page_bytes !== 0) return false;
  return madvise(address, view.byteLength, madv_dontneed) === 0;
}
