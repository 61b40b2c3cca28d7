import { type FFIFunction, type Library, dlopen } from "bun:ffi";

/** glibc first, then musl (x64, arm64). The libc the process runs on is already loaded, so this only finds it. */
const libc_names = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"];

/**
 * Opens the process's C library with `symbols` through bun:ffi: the first of
 * libc_names that has them all. Returns the library, or what each name said
 * when none did (for an error message).
 */
export function open_libc<Fns extends Record<string, FFIFunction>>(symbols: Fns): { lib: Library<Fns> } | { tried: string[] } {
  const tried: string[] = [];
  for (const name of libc_names) {
    try {
      return { lib: dlopen(name, symbols) };
    } catch (err) {
      tried.push(`${name}: ${(err as Error).message}`);
    }
  }
  return { tried };
}

/** Whether the process can call libc through bun:ffi with 64-bit sizes and offsets (Linux on x64 or arm64). */
export function libc_ffi_platform(): boolean {
  return process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64");
}
