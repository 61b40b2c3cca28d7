import { flag_signed, frame_header_bytes, frame_len_offset, frame_size_of_len } from "./frame.ts";
import type { CheckedEvents } from "./checked_events.ts";
import type { KeyRing, ProofProblem, RangeCheck } from "./key_ring.ts";
import { proof_at, proof_first_seq } from "./proof.ts";

/** Why events were dropped before any was appended: a proof problem, or frames no signed range covers. */
export type RangeProblem = ProofProblem | "partial_range";

/**
 * Checks the signed ranges of `events`, whose frames are canonical (as their
 * origins wrote them) and lie in one buffer: event i's frame starts at
 * start[i] - 40 in src[i], and the frames of one origin's consecutive seqs
 * are adjacent. Every event must belong to a range that ends at a signed
 * frame in `events` and begins where the proof says (first_seq); the
 * range's proof must verify under its origin's key (KeyRing). Events that
 * fail are removed from `events` (what remains keeps its order) and counted
 * through `dropped`. Returns the number of events kept.
 *
 * Cost: one hash over each range's bytes (a few updates per range) and one
 * Ed25519 verification per range, nothing per event but index bookkeeping.
 */
export function keep_signed_ranges(events: CheckedEvents, keys: KeyRing, dropped: (problem: RangeProblem, events: number) => void, keep = new Uint8Array(events.count)): number {
  const steps = signed_range_steps(events, keys, dropped, keep);
  let step = steps.next();
  while (!step.done) step = steps.next(step.value.map((check) => keys.verify_now(check)));
  return step.value;
}

/**
 * keep_signed_ranges as steps: yields the signature checks of every range
 * at once and takes back whether each verified, so a browser verifies them
 * with WebCrypto (async, all in flight together) from the same code.
 */
export function* signed_range_steps(
  events: CheckedEvents,
  keys: KeyRing,
  dropped: (problem: RangeProblem, events: number) => void,
  keep = new Uint8Array(events.count),
): Generator<RangeCheck[], number, boolean[]> {
  const count = events.count;
  if (keep.length < count) keep = new Uint8Array(count);
  keep.fill(0, 0, count);
  // Open range per origin: index of its first event and how many events it holds so far.
  const open = new Map<string, { first: number; events: number }>();
  // Ranges whose signature is to be verified: checks[k] covers events ranges[2k]..ranges[2k + 1].
  const checks: RangeCheck[] = [];
  const ranges: number[] = [];
  let kept = 0;
  for (let i = 0; i < count; i++) {
    const origin = events.origin[i];
    let range = open.get(origin);
    if (range !== undefined) {
      const prev = i - 1;
      const adjacent = events.origin[prev] === origin && events.seq[prev] + 1 === events.seq[i] && events.src[prev] === events.src[i] && frame_end(events, prev) === events.start[i] - frame_header_bytes;
      if (adjacent) range.events++;
      else {
        dropped("partial_range", range.events);
        range = undefined;
      }
    }
    if (range === undefined) {
      range = { first: i, events: 1 };
      open.set(origin, range);
    }
    const first = range.first;
    if ((events.flags[i] & flag_signed) === 0) continue;
    open.delete(origin);
    const bytes = events.src[i];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const last_at = events.start[i] - frame_header_bytes;
    const proof = proof_at(last_at, view.getUint32(last_at + frame_len_offset, true));
    if (proof_first_seq(view, proof) !== events.seq[first]) {
      dropped("partial_range", i - first + 1);
      continue;
    }
    const check = keys.prepare_range(origin, bytes, view, events.start[first] - frame_header_bytes, last_at);
    if (typeof check === "string") {
      dropped(check, i - first + 1);
      continue;
    }
    checks.push(check);
    ranges.push(first, i);
  }
  // Frames after the last signed one of their origin (a range cut short): never appended.
  for (const range of open.values()) dropped("partial_range", range.events);
  if (checks.length > 0) {
    const verified = yield checks;
    for (let k = 0; k < checks.length; k++) {
      const first = ranges[2 * k];
      const last = ranges[2 * k + 1];
      const problem = keys.settle(checks[k], verified[k] === true);
      if (problem !== null) {
        dropped(problem, last - first + 1);
        continue;
      }
      keep.fill(1, first, last + 1);
      kept += last - first + 1;
    }
  }
  if (kept < count) events.retain(keep);
  return kept;
}

/** End of event i's frame, padding included (the next adjacent frame starts there). */
function frame_end(events: CheckedEvents, i: number): number {
  return events.start[i] - frame_header_bytes + frame_size_of_len(frame_header_bytes + events.end[i] - events.start[i]);
}
