import { CheckedEvents } from "../../src/log/checked_events.ts";
import {
  check_frame,
  flag_rejected,
  flag_signed,
  frame_crc,
  frame_flags,
  frame_header_bytes,
  frame_len,
  frame_origin_hi,
  frame_origin_lo,
  frame_seq,
  frame_time_ms,
  proof_bytes,
} from "../../src/log/frame.ts";
import { origin_from_words } from "../../src/log/ids.ts";
import type { Log } from "../../src/log/log.ts";
import { keep_signed_ranges } from "../../src/log/signed_ranges.ts";

/**
 * What sync does with other origins' frames once a message is decoded, for
 * tests that need events a sync validator refused without running sync
 * (the admin quarantine, metrics, dashboard): the signed ranges are checked
 * against the origins' keys (keep_signed_ranges, as the replicator does),
 * each payload goes through `validate`, and a refused event is marked
 * rejected and stored with its original bytes (as merge.ts does), through
 * Log.accept_checked. Throws when a range does not verify: tests give real
 * frames (test/support/origin.ts).
 */
export function accept_validated(log: Log, frames: Uint8Array, validate: (payload: Uint8Array, seq: number) => string | null): { appended: number; rejected: number } {
  const events = new CheckedEvents();
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  for (let at = 0; at < frames.length; ) {
    const size = check_frame(frames, view, at, frames.length);
    if (size <= 0) throw new Error(`the frames are torn or corrupt at byte ${at}`);
    const hi = frame_origin_hi(view, at);
    const lo = frame_origin_lo(view, at);
    events.push(origin_from_words(hi, lo), hi, lo, frame_seq(view, at), frame_time_ms(view, at), frame_flags(view, at), frame_crc(view, at), frames, at + frame_header_bytes, at + frame_len(view, at));
    at += size;
  }
  const count = events.count;
  keep_signed_ranges(events, log.keys, (problem, n) => {
    throw new Error(`${n} events refused: ${problem}`);
  });
  if (events.count !== count) throw new Error("some frames are not in a whole signed range");
  let rejected = 0;
  for (let i = 0; i < events.count; i++) {
    const payload_end = (events.flags[i] & flag_signed) !== 0 ? events.end[i] - proof_bytes : events.end[i];
    if (validate(frames.subarray(events.start[i], payload_end), events.seq[i]) === null) continue;
    events.flags[i] |= flag_rejected;
    rejected++;
  }
  return { appended: log.accept_checked(events), rejected };
}
