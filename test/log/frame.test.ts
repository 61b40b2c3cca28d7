import { describe, expect, test } from "bun:test";
import { crc32c, crc32c_update } from "../../src/lib/crc32c.ts";
import {
  check_frame,
  epoch_not_before,
  flag_batch_end,
  flag_rejected,
  flag_signed,
  frame_bad,
  frame_end,
  frame_epoch,
  frame_flags,
  frame_header_bytes,
  frame_local,
  frame_local_offset,
  frame_payload_end,
  frame_seq,
  frame_size_bytes,
  frame_time_ms,
  local_word,
  proof_bytes,
  write_frame_header,
} from "../../src/log/frame.ts";
import { origin_from_words, origin_hi, origin_lo } from "../../src/log/ids.ts";
import { for_seeds } from "../support/seeded.ts";

function encode(payload: Uint8Array, seq: number, time_ms: number, origin = "3f09c2a41b7e55d0", flags = flag_batch_end): Uint8Array {
  const bytes = new Uint8Array(frame_size_bytes(payload.length) + 8);
  const view = new DataView(bytes.buffer);
  bytes.set(payload, frame_header_bytes);
  write_frame_header(bytes, view, 0, origin_hi(origin), origin_lo(origin), seq, time_ms, flags, payload);
  return bytes;
}

describe("record frame", () => {
  test("crc32c matches the standard check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    // Against a bitwise reference, at every alignment and length around the 16-byte stride, and chained.
    const bitwise = (bytes: Uint8Array, start: number, end: number): number => {
      let c = 0xffffffff;
      for (let i = start; i < end; i++) {
        c ^= bytes[i];
        for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      }
      return ~c >>> 0;
    };
    const data = new Uint8Array(300).map((_, i) => (i * 131 + 7) & 255);
    for (let start = 0; start < 20; start++) {
      for (let end = start; end < start + 70; end++) expect(crc32c(data, start, end)).toBe(bitwise(data, start, end));
    }
    expect(crc32c_update(crc32c(data, 0, 37), data, 37, 300)).toBe(bitwise(data, 0, 300));
  });

  test("frames are 8-byte aligned and round-trip every field", async () => {
    await for_seeds(300, (rng) => {
      const payload = rng.bytes(rng.chance(0.1) ? 0 : rng.int(1, 5000));
      const seq = rng.int(1, Number.MAX_SAFE_INTEGER);
      const time_ms = rng.int(0, 2 ** 45);
      const bytes = encode(payload, seq, time_ms);
      const view = new DataView(bytes.buffer);
      const size = check_frame(bytes, view, 0, bytes.length);
      expect(size).toBe(frame_size_bytes(payload.length));
      expect(size % 8).toBe(0);
      expect(frame_seq(view, 0)).toBe(seq);
      expect(frame_time_ms(view, 0)).toBe(time_ms);
      expect(frame_flags(view, 0)).toBe(flag_batch_end);
      expect(bytes.subarray(frame_header_bytes, frame_header_bytes + payload.length)).toEqual(payload);
      expect(check_frame(bytes, view, size, bytes.length)).toBe(frame_end);
    });
  });

  test("any single flipped bit in a frame is detected", async () => {
    await for_seeds(500, (rng) => {
      const payload = rng.bytes(rng.int(0, 600));
      const bytes = encode(payload, rng.int(1, 1e9), rng.int(0, 1e12));
      new DataView(bytes.buffer).setUint32(frame_local_offset, local_word(rng.pick([0, flag_rejected]), rng.int(0, 0xffff)), true);
      const size = frame_size_bytes(payload.length);
      const at = rng.int(0, size - 1);
      bytes[at] ^= 1 << rng.int(0, 7);
      const result = check_frame(bytes, new DataView(bytes.buffer), 0, bytes.length);
      // A flip in the len word may turn it into 0 (reads as end of data); it is never read as a good frame.
      expect(result === frame_bad || (result === frame_end && at < 4)).toBe(true);
    });
  });

  test("the local word (this replica's marks and write epoch) is outside the crc; an unknown mark is refused", async () => {
    await for_seeds(100, (rng) => {
      const payload = rng.bytes(rng.int(0, 600));
      const bytes = encode(payload, rng.int(1, 1e9), rng.int(0, 1e12));
      const view = new DataView(bytes.buffer);
      const size = frame_size_bytes(payload.length);
      expect(frame_local(view, 0)).toBe(0);
      expect(frame_epoch(view, 0)).toBe(0);
      // A relay marks an event rejected, and every frame carries the epoch it was written in, without touching the origin's bytes.
      const marks = rng.pick([0, flag_rejected]);
      const epoch = rng.int(0, 0xffff);
      view.setUint32(frame_local_offset, local_word(marks, epoch), true);
      expect(check_frame(bytes, view, 0, bytes.length)).toBe(size);
      expect(frame_local(view, 0)).toBe(marks);
      expect(frame_epoch(view, 0)).toBe(epoch);
      expect(frame_flags(view, 0)).toBe(flag_batch_end);
      // A frame written before epochs existed (marks in both halves) reads as epoch 0 with its marks.
      view.setUint32(frame_local_offset, ((marks << 16) | marks) >>> 0, true);
      expect(check_frame(bytes, view, 0, bytes.length)).toBe(size);
      expect(frame_epoch(view, 0)).toBe(0);
      expect(frame_local(view, 0)).toBe(marks);
      // A mark this version does not know is refused.
      view.setUint32(frame_local_offset, (local_word(marks, epoch) | 1) >>> 0, true);
      expect(check_frame(bytes, view, 0, bytes.length)).toBe(frame_bad);
    });
  });

  test("every single flipped bit of every local word (each epoch, each mark, and the words written before epochs) makes the frame bad", () => {
    const bytes = encode(new Uint8Array(3), 1, 1);
    const view = new DataView(bytes.buffer);
    const words: number[] = [0x00020002];
    for (let epoch = 0; epoch <= 0xffff; epoch++) words.push(local_word(0, epoch), local_word(flag_rejected, epoch));
    let checked = 0;
    for (const word of words) {
      view.setUint32(frame_local_offset, word, true);
      expect(check_frame(bytes, view, 0, bytes.length)).toBeGreaterThan(0);
      for (let bit = 0; bit < 32; bit++) {
        view.setUint32(frame_local_offset, (word ^ (1 << bit)) >>> 0, true);
        if (check_frame(bytes, view, 0, bytes.length) !== frame_bad) throw new Error(`word ${word.toString(16)} with bit ${bit} flipped reads as whole`);
        checked++;
      }
    }
    expect(checked).toBe(words.length * 32);
  });

  test("epochs compare as serial numbers across the 16-bit wrap", () => {
    expect(epoch_not_before(5, 5)).toBe(true);
    expect(epoch_not_before(6, 5)).toBe(true);
    expect(epoch_not_before(5, 6)).toBe(false);
    expect(epoch_not_before(1, 0xffff)).toBe(true);
    expect(epoch_not_before(0xffff, 1)).toBe(false);
  });

  test("a signed frame counts its proof in len but not in its payload, and one too short for a proof is bad", async () => {
    await for_seeds(100, (rng) => {
      const payload = rng.bytes(rng.int(0, 300));
      // The body of a signed frame as received whole: payload, then the proof.
      const body = new Uint8Array(payload.length + proof_bytes);
      body.set(payload);
      body.set(rng.bytes(proof_bytes), payload.length);
      const bytes = encode(body, 3, 4, undefined, flag_batch_end | flag_signed);
      const view = new DataView(bytes.buffer);
      expect(check_frame(bytes, view, 0, bytes.length)).toBe(frame_size_bytes(body.length));
      expect(frame_flags(view, 0)).toBe(flag_batch_end | flag_signed);
      expect(bytes.subarray(frame_header_bytes, frame_payload_end(view, 0))).toEqual(payload);
      const short = rng.bytes(rng.int(0, proof_bytes - 1));
      const bad = encode(short, 3, 4, undefined, flag_batch_end | flag_signed);
      expect(check_frame(bad, new DataView(bad.buffer), 0, bad.length)).toBe(frame_bad);
    });
  });

  test("a frame cut short is torn, not accepted", async () => {
    await for_seeds(300, (rng) => {
      const payload = rng.bytes(rng.int(1, 3000));
      const bytes = encode(payload, 7, 7);
      const limit = rng.int(4, frame_size_bytes(payload.length) - 1);
      expect(check_frame(bytes, new DataView(bytes.buffer), 0, limit)).toBe(frame_bad);
    });
  });

  test("replica ids round-trip through their two u32 words", async () => {
    await for_seeds(200, (rng) => {
      const id = origin_from_words(rng.u32(), rng.u32());
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      expect(origin_from_words(origin_hi(id), origin_lo(id))).toBe(id);
    });
  });
});
