import { spawnSync } from "bun";
import fs from "node:fs";
import { temp_dir } from "./temp_dir.ts";

/**
 * Runs `body` on a fresh tmpfs of `size` (mount(8) syntax: "8m", "2560k"): a
 * real file system that fills up, unmounted afterwards whatever happens.
 * Needs root (CI runs as root).
 */
export async function with_tmpfs<T>(size: string, body: (mount_point: string) => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) throw new Error("this test mounts a tmpfs and must run as root (CI does)");
  const mount_point = temp_dir("interlog-tmpfs-");
  const mounted = spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mount_point]);
  if (mounted.exitCode !== 0) throw new Error(`mount failed: ${mounted.stderr.toString()}`);
  try {
    return await body(mount_point);
  } finally {
    spawnSync(["umount", "-l", mount_point]);
  }
}

/** Bytes in use on the file system holding `dir`, as statfs reports them. */
export function fs_used_bytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return (Number(st.blocks) - Number(st.bfree)) * Number(st.bsize);
}
