import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "bun:test";

/**
 * Fresh directories for tests, all under one parent per test process. bun
 * runs this module (and so its afterAll) once per process, not per file, and
 * runs no exit hook, so the parents of test processes that are gone are
 * removed when the next run starts.
 */
const parent_prefix = "interlog-test-";
const parent = path.join(os.tmpdir(), `${parent_prefix}${process.pid}`);

function is_alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

for (const name of fs.readdirSync(os.tmpdir())) {
  const pid = Number(name.slice(parent_prefix.length));
  if (name.startsWith(parent_prefix) && Number.isInteger(pid) && pid !== process.pid && !is_alive(pid)) {
    fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

const made: string[] = [];
export function temp_dir(prefix = "interlog-"): string {
  fs.mkdirSync(parent, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  made.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
export const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
