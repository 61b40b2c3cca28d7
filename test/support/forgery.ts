import path from "node:path";
import type { FileIO } from "../../src/log/file_io.ts";
import {
  frame_crc_compute,
  frame_crc_offset,
  frame_header_bytes,
  frame_len,
  frame_origin_hi_offset,
  frame_origin_lo_offset,
  frame_payload_end,
  frame_size_at,
  without_local_marks,
} from "../../src/log/frame.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import { Log, type LogOptions } from "../../src/log/log.ts";
import { key_file_name, replica_file_name } from "../../src/log/replica.ts";
import { ManualTimers } from "./manual_timers.ts";
import { MemFileIO } from "./mem_file_io.ts";

/**
 * Signed frames for sync tests, real and forged: logs on an in-memory disk
 * (each a real origin with its own key), the frames of their events as they
 * stored them, second devices sharing a key (a copied data directory), and
 * the crc-valid forgeries a hostile peer makes of real frames (a changed
 * payload, another origin's id), which only a signature check can tell.
 */

const encoder = new TextEncoder();

/** A log of its own (own key, own id) on an in-memory disk: an origin whose frames a test hands around. */
export async function mem_log(options: Partial<LogOptions> = {}): Promise<Log> {
  return Log.open({ dir: "/origin", io: new MemFileIO(), sync: "never", segment_size_bytes: 64 * 1024, timers: new ManualTimers(), ...options });
}

/** Offsets of the frames in a region of concatenated frames. */
export function frame_offsets(frames: Uint8Array): number[] {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  const out: number[] = [];
  for (let at = 0; at < frames.length; at += frame_size_at(view, at)) out.push(at);
  return out;
}

/** The frames of `log`'s events of `origin` with seq in (after, upto], concatenated as stored. */
export function frames_of_log(log: Log, origin: string = log.id, after = 0, upto = Number.POSITIVE_INFINITY): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of log.events_after(origin, after)) {
    if (e.seq > upto) break;
    parts.push(e.frame);
  }
  // As the origin wrote them: the local words (this log's marks and write epochs) are not the origin's.
  return without_local_marks(new Uint8Array(Buffer.concat(parts)));
}

/**
 * Appends the payloads as one batch and returns its frames: one signed
 * range (reading them seals it), provided the log's earlier writes were
 * read or made durable too; appends not yet sealed would join this range.
 */
export function write_range(log: Log, ...payloads: (Uint8Array | string)[]): Uint8Array {
  const bytes = payloads.map((p) => (typeof p === "string" ? encoder.encode(p) : p));
  const first = bytes.length === 1 ? log.append(bytes[0]) : log.append_batch(bytes);
  return frames_of_log(log, log.id, first - 1);
}

/** Re-makes the crc of the frame at `at` after its bytes were changed: what a forger does so the crc checks. */
export function fix_crc(frames: Uint8Array, at: number): void {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  view.setUint32(at + frame_crc_offset, frame_crc_compute(frames, at, frame_len(view, at)), true);
}

/**
 * A copy of `frames` whose frame number `index` has payload byte `byte`
 * changed and its crc made good: every frame checks, the signature over its
 * range does not.
 */
export function forge_payload(frames: Uint8Array, index = 0, byte = 0): Uint8Array {
  const out = frames.slice();
  const view = new DataView(out.buffer);
  const at = frame_offsets(out)[index];
  const payload_bytes = frame_payload_end(view, at) - at - frame_header_bytes;
  if (payload_bytes === 0) throw new Error("forge_payload needs a frame with a payload");
  out[at + frame_header_bytes + (byte % payload_bytes)] ^= 0x01;
  fix_crc(out, at);
  return out;
}

/** A copy of `frames` with every frame's origin set to `origin` and its crc made good (the proof still carries the signer's key). */
export function relabel(frames: Uint8Array, origin: string): Uint8Array {
  const out = frames.slice();
  const view = new DataView(out.buffer);
  for (const at of frame_offsets(out)) {
    view.setUint32(at + frame_origin_hi_offset, origin_hi(origin), true);
    view.setUint32(at + frame_origin_lo_offset, origin_lo(origin), true);
    fix_crc(out, at);
  }
  return out;
}

/**
 * A second device holding the same key as the log in `dir` on `io`: a copy
 * of its replica.json and replica.key without its events, as when a data
 * directory is copied before the original writes on. What it writes is
 * signed with the shared key, so it verifies, and conflicts with the
 * original's events of the same seqs.
 */
export async function clone_replica(io: FileIO, dir: string, options: Partial<LogOptions> = {}): Promise<Log> {
  const copy = new MemFileIO();
  copy.mkdirp("/clone");
  for (const name of [replica_file_name, key_file_name]) {
    const bytes = io.read_file(path.join(dir, name));
    if (bytes === null) throw new Error(`no ${name} in ${dir}`);
    await copy.write_file_atomic(path.join("/clone", name), bytes, 0o600);
  }
  return Log.open({ dir: "/clone", io: copy, sync: "never", segment_size_bytes: 64 * 1024, timers: new ManualTimers(), ...options });
}

/**
 * `count` new origins, each with one signed event of `payload`: their ids
 * (in creation order), each one's frame, and all their frames concatenated,
 * ready for Log.accept_frames. The origins' logs are closed; later events of one of
 * them can be had from `more(i, payload)` only while `keep` includes i.
 */
export async function many_origins(
  count: number,
  payload = "x",
  keep: readonly number[] = [],
  options: Partial<LogOptions> = {},
): Promise<{ ids: string[]; frames: Uint8Array; each: Uint8Array[]; more: (i: number, payload: string) => Uint8Array; close: () => Promise<void> }> {
  const ids: string[] = [];
  const parts: Uint8Array[] = [];
  const kept = new Map<number, Log>();
  for (let i = 0; i < count; i++) {
    const log = await mem_log(options);
    ids.push(log.id);
    parts.push(write_range(log, payload));
    if (keep.includes(i)) kept.set(i, log);
    else await log.close();
  }
  return {
    ids,
    frames: new Uint8Array(Buffer.concat(parts)),
    each: parts,
    more: (i, p) => {
      const log = kept.get(i);
      if (log === undefined) throw new Error(`origin ${i} was not kept`);
      return write_range(log, p);
    },
    close: async () => {
      for (const log of kept.values()) await log.close();
    },
  };
}
