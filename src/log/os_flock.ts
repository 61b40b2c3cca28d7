import { FFIType, dlopen } from "bun:ffi";
import { InterlogError } from "../lib/errors.ts";

/** flock(2) operations (linux/fs.h). */
const lock_exclusive = 2;
const lock_non_blocking = 4;

/** glibc first, then musl (x64, arm64). The libc the process runs on is already loaded, so this only finds it. */
const libc_names = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"];

type Flock = (fd: number, operation: number) => number;
let flock: Flock | null = null;

function libc_flock(): Flock {
  if (flock !== null) return flock;
  const tried: string[] = [];
  for (const name of libc_names) {
    try {
      const lib = dlopen(name, { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
      flock = lib.symbols.flock as Flock;
      return flock;
    } catch (err) {
      tried.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new InterlogError("IO_ERROR", `cannot lock the data directory: no C library with flock() found (${tried.join("; ")})`);
}

/** Takes an exclusive, non-blocking flock on `fd`: true when held, false when another open file holds it. */
export function os_flock_exclusive(fd: number): boolean {
  return libc_flock()(fd, lock_exclusive | lock_non_blocking) === 0;
}
