import { FFIType, read } from "bun:ffi";
import os from "node:os";
import { libc_ffi_platform, open_libc } from "./libc.ts";

/**
 * Allocates a file's blocks without writing them, or says it cannot: Linux
 * fallocate(2) with mode 0, called through bun:ffi. The blocks are really
 * reserved (not a sparse hole), so a full disk shows as ENOSPC here and not
 * later as SIGBUS when a mapping of the file is written; until written they
 * read as zeros (ext4 and xfs mark them as unwritten extents, tmpfs allocates
 * the pages). Copy-on-write file systems (btrfs, ZFS) cannot promise space
 * for later rewrites however the file was made.
 *
 * The C library is opened on first use (not at import), so a platform
 * without fallocate (not Linux, no such symbol, a 32-bit off_t) costs nothing
 * and gets `false`, and the caller writes zeros instead.
 */

interface Libc {
  fallocate(fd: number, mode: number, offset: number, len: number): number;
  /** The calling thread's errno, read right after a failed call. */
  errno(): number;
}

/** undefined: not looked up yet; null: this platform has no usable fallocate. */
let libc: Libc | null | undefined;

function load_libc(): Libc | null {
  // off_t is 64-bit on both; on a 32-bit ABI `fallocate` would take a 32-bit off_t.
  if (!libc_ffi_platform()) return null;
  const opened = open_libc({
    fallocate: { args: [FFIType.i32, FFIType.i32, FFIType.i64, FFIType.i64], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  if (!("lib" in opened)) return null;
  const { fallocate, __errno_location } = opened.lib.symbols;
  return {
    fallocate: (fd, mode, offset, len) => fallocate(fd, mode, offset, len),
    errno: () => {
      const at = __errno_location();
      return at === null ? 0 : read.i32(at, 0);
    },
  };
}

function the_libc(): Libc | null {
  if (libc === undefined) libc = load_libc();
  return libc;
}

/** Whether this process can call fallocate at all (the file system may still refuse it). */
export function fallocate_available(): boolean {
  return the_libc() !== null;
}

const errno_numbers = os.constants.errno as Record<string, number>;
const errno_names = new Map<number, string>();
for (const [name, n] of Object.entries(errno_numbers)) if (!errno_names.has(n)) errno_names.set(n, name);

const errno_texts: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EFBIG: "file too large",
  EIO: "i/o error",
};

/** An error shaped like Node's system errors (`code`, `errno`, `syscall`, `path`), so errno_code() reads it. */
function errno_error(n: number, file: string): NodeJS.ErrnoException {
  const code = errno_names.get(n) ?? `E${n}`;
  const err: NodeJS.ErrnoException = new Error(`${code}: ${errno_texts[code] ?? `errno ${n}`}, fallocate '${file}'`);
  err.code = code;
  err.errno = -n;
  err.syscall = "fallocate";
  err.path = file;
  return err;
}

/** The file system cannot allocate without writing (or the kernel has no fallocate): the caller writes zeros instead. */
const unsupported = new Set([errno_numbers.EOPNOTSUPP, errno_numbers.ENOTSUP, errno_numbers.ENOSYS]);

/**
 * Allocates bytes [0, size_bytes) of the open regular file `fd` (extending
 * its size to size_bytes) without writing them; not durable until the caller
 * fsyncs. Returns false, having changed nothing, when it cannot be done here
 * (no fallocate in this process, or the file system does not support it).
 * Throws an errno error (code ENOSPC, EDQUOT, EIO, ...) when it failed; some
 * blocks may then be allocated, so the caller removes the file. `file` only
 * names it in the error.
 */
export function allocate_file_blocks(fd: number, size_bytes: number, file: string): boolean {
  const c = the_libc();
  if (c === null) return false;
  if (size_bytes === 0) return true; // fallocate(2) refuses len 0 (EINVAL); there is nothing to allocate.
  for (;;) {
    if (c.fallocate(fd, 0, 0, size_bytes) === 0) return true;
    // errno is per thread: read it right after the call, before anything else here can set it.
    const n = c.errno();
    if (n === errno_numbers.EINTR) continue; // a signal arrived mid-call; what it allocated stays, the rest follows.
    if (unsupported.has(n)) return false;
    throw errno_error(n, file);
  }
}

/** fallocate(2) mode FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE. */
const punch_hole_mode = 0x02 | 0x01;

/**
 * Frees the blocks of bytes [0, size_bytes) of the open file `fd`, keeping
 * its size, so a mapping of it reads zeros (never SIGBUS, as truncating
 * would). A file that is unlinked while mapped keeps its blocks until the
 * mapping is collected; a pruned segment's space must come back at once.
 * Returns false when it cannot be done here; the space then comes back when
 * the mapping is collected.
 */
export function release_file_blocks(fd: number, size_bytes: number): boolean {
  const c = the_libc();
  if (c === null || size_bytes === 0) return c !== null;
  for (;;) {
    if (c.fallocate(fd, punch_hole_mode, 0, size_bytes) === 0) return true;
    if (c.errno() !== errno_numbers.EINTR) return false;
  }
}
