import fs from "node:fs";
import path from "node:path";
import type { FileIO } from "../../src/log/file_io.ts";
import type { Log } from "../../src/log/log.ts";
import { parse_segment_file_name } from "../../src/log/segment.ts";

/**
 * Helpers for retention tests: payloads a test can recompute from their
 * seq, appends until a condition, and what a data directory holds on disk.
 */

/** A payload that names its seq in its first bytes, `size` bytes long (at least 8). */
export function payload_for(seq: number, size: number, tag = 0): Uint8Array {
  const bytes = new Uint8Array(Math.max(8, size));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, seq, true);
  view.setUint32(4, tag, true);
  for (let i = 8; i < bytes.length; i++) bytes[i] = (seq * 31 + i * 7 + tag) & 255;
  return bytes;
}

/**
 * Appends own events one at a time (payload_for their seq, `size_of(seq)`
 * bytes) until `done()`, awaiting durability every `durable_every` appends
 * like a server between requests; records each payload in `written`.
 */
export async function append_until(
  log: Log,
  done: () => boolean,
  written: Map<number, Uint8Array>,
  size_of: (seq: number) => number = () => 200,
  durable_every = 16,
  max_appends = 1_000_000,
): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i >= max_appends) throw new Error(`append_until: not done after ${max_appends} appends`);
    const seq = log.held(log.id) + 1;
    const payload = payload_for(seq, size_of(seq));
    expect_seq(log.append(payload), seq);
    written.set(seq, payload);
    if (i % durable_every === durable_every - 1) await log.durable();
  }
  await log.durable();
}

function expect_seq(got: number, want: number): void {
  if (got !== want) throw new Error(`append returned seq ${got}, expected ${want}`);
}

/** First positions of the segment files in `segments_dir`, in order (through `io`, or the real file system). */
export function segment_firsts(segments_dir: string, io?: FileIO): number[] {
  const names = io === undefined ? fs.readdirSync(segments_dir) : io.list(segments_dir);
  return names
    .map(parse_segment_file_name)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

/** Sizes of every file under `dir` (recursively), as the file system reports them: apparent bytes and allocated bytes. */
export function dir_usage(dir: string): { bytes: number; allocated_bytes: number; files: number } {
  let bytes = 0;
  let allocated_bytes = 0;
  let files = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = dir_usage(file);
      bytes += inner.bytes;
      allocated_bytes += inner.allocated_bytes;
      files += inner.files;
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      continue; // removed between the listing and the stat (a rename or unlink in flight)
    }
    bytes += st.size;
    allocated_bytes += st.blocks * 512;
    files++;
  }
  return { bytes, allocated_bytes, files };
}

/** Bytes of the segment files (`*.seg`, the spare, and half-made `*.tmp` ones) under `segments_dir`. */
export function segment_file_bytes(segments_dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(segments_dir)) {
    if (!(name.endsWith(".seg") || name === "spare" || name.endsWith(".seg.tmp") || name === "spare.tmp")) continue;
    try {
      total += fs.statSync(path.join(segments_dir, name)).size;
    } catch {
      // gone between the listing and the stat
    }
  }
  return total;
}
