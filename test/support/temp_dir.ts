import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "bun:test";

/** A fresh directory under the OS temp dir, removed after the test file finishes. */
const made: string[] = [];
export function temp_dir(prefix = "interlog-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

export const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
export const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
