import { FFIType } from "bun:ffi";
import { InterlogError } from "../lib/errors.ts";
import { open_libc } from "./libc.ts";

/** flock(2) operations (linux/fs.h). */
const lock_exclusive = 2;
const lock_non_blocking = 4;

type Flock = (fd: number, operation: number) => number;
let flock: Flock | null = null;

function libc_flock(): Flock {
  if (flock !== null) return flock;
  const opened = open_libc({ flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
  if (!("lib" in opened)) {
    throw new InterlogError("IO_ERROR", `cannot lock the data directory: no C library with flock() found (${opened.tried.join("; ")})`);
  }
  flock = opened.lib.symbols.flock as Flock;
  return flock;
}

/** Takes an exclusive, non-blocking flock on `fd`: true when held, false when another open file holds it. */
export function os_flock_exclusive(fd: number): boolean {
  return libc_flock()(fd, lock_exclusive | lock_non_blocking) === 0;
}
