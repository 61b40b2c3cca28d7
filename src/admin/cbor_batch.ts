/**
 * The body of POST /api/events as application/cbor: one CBOR array (RFC
 * 8949) of byte strings, one per event. Read here with a small header walker
 * instead of a general decoder, so a hostile body costs no more than its
 * bounds allow: the array header's count is checked against the limit before
 * any item is looked at (a 17 MiB body of empty byte strings claims 17
 * million items in its first 5 bytes), an indefinite-length array is refused
 * at the first item past the limit, and a byte string's declared length is
 * checked against the bytes actually there before anything is made. Payloads
 * are views into the body (copied only for chunked byte strings); nothing
 * else is allocated per item.
 */

export type BatchResult =
  | { ok: true; payloads: Uint8Array[] }
  | { ok: false; status: 400 | 413; code: "BAD_REQUEST" | "BATCH_TOO_LARGE"; message: string };

const major_bytes = 2;
const major_array = 4;
const additional_indefinite = 31;
const break_byte = 0xff;

/** Thrown inside the walker for bodies that end early or use reserved encodings; turned into one 400 answer. */
class Malformed extends Error {}

/** Reads CBOR item heads (major type and argument) from a byte array. */
class HeadReader {
  pos = 0;

  constructor(readonly bytes: Uint8Array) {}

  get at_end(): boolean {
    return this.pos >= this.bytes.length;
  }

  peek(): number {
    if (this.pos >= this.bytes.length) throw new Malformed("it ends in the middle of an item");
    return this.bytes[this.pos];
  }

  /**
   * The head at pos: major type and argument. The argument is -1 for
   * indefinite length, and Infinity for an 8-byte argument of 2^53 or more
   * (larger than any count or length a body can satisfy).
   */
  head(): { major: number; arg: number } {
    const initial = this.peek();
    this.pos++;
    const major = initial >> 5;
    const info = initial & 31;
    if (info < 24) return { major, arg: info };
    if (info === additional_indefinite) return { major, arg: -1 };
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) throw new Malformed(`it uses the reserved additional information ${info} at byte ${this.pos - 1}`);
    if (this.pos + size > this.bytes.length) throw new Malformed("it ends in the middle of an item head");
    let arg = 0;
    for (let i = 0; i < size; i++) arg = arg * 256 + this.bytes[this.pos + i];
    this.pos += size;
    return { major, arg: Number.isSafeInteger(arg) ? arg : Number.POSITIVE_INFINITY };
  }

  /** A view of the next `length` bytes. */
  take(length: number): Uint8Array {
    if (length > this.bytes.length - this.pos) throw new Malformed(`a byte string claims ${count_of(length, "byte")} but only ${this.bytes.length - this.pos} follow`);
    const view = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }
}

function count_of(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

const not_an_array = "an application/cbor body must be one array of byte strings (one per event)";

function too_many(events_max: number, count: string): BatchResult {
  return {
    ok: false,
    status: 413,
    code: "BATCH_TOO_LARGE",
    message: `the batch holds ${count} events; a request may carry at most ${events_max}: split it into smaller batches. Nothing was written`,
  };
}

function not_a_byte_string(index: number): BatchResult {
  return { ok: false, status: 400, code: "BAD_REQUEST", message: `item ${index} of the batch is not a byte string; send one byte string per event` };
}

/**
 * The payloads of a CBOR batch body, or why it is refused: 413
 * BATCH_TOO_LARGE past `events_max` items, 400 BAD_REQUEST when it is not
 * one well-formed array of byte strings. Work is bounded by
 * min(body bytes, events_max) steps.
 */
export function parse_cbor_batch(body: Uint8Array, events_max: number): BatchResult {
  const r = new HeadReader(body);
  try {
    if (body.length === 0) throw new Malformed("the body is empty");
    const top = r.head();
    if (top.major !== major_array) return { ok: false, status: 400, code: "BAD_REQUEST", message: not_an_array };
    const definite = top.arg >= 0;
    if (definite && top.arg > events_max) return too_many(events_max, Number.isFinite(top.arg) ? String(top.arg) : "more than 2^53");
    const payloads: Uint8Array[] = [];
    // Chunks of chunked byte strings, counted against the same limit as items (each costs a step like an item).
    const chunks = { left: events_max };
    for (let i = 0; definite ? i < top.arg : r.peek() !== break_byte; i++) {
      if (i >= events_max) return too_many(events_max, `more than ${events_max}`);
      const item = r.head();
      if (item.major !== major_bytes) return not_a_byte_string(i);
      const payload = item.arg >= 0 ? r.take(item.arg) : read_chunked(r, chunks);
      if (payload === null) {
        return {
          ok: false,
          status: 413,
          code: "BATCH_TOO_LARGE",
          message: `the batch's byte strings are split into more than ${events_max} chunks; send each event as one byte string. Nothing was written`,
        };
      }
      payloads.push(payload);
    }
    if (!definite) r.pos++; // the break byte
    if (payloads.length === 0) return { ok: false, status: 400, code: "BAD_REQUEST", message: "the batch is empty; send at least one byte string" };
    if (!r.at_end) throw new Malformed(`the body goes on after the array (${count_of(body.length - r.pos, "more byte")}); send exactly one array`);
    return { ok: true, payloads };
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
    return { ok: false, status: 400, code: "BAD_REQUEST", message: `the body is not well-formed CBOR (${err.message})` };
  }
}

/** Bytes enough for the array's head (1 initial byte and an argument of up to 8). */
export const batch_head_max_bytes = 9;

/**
 * The refusal a batch's first bytes already decide (an array header claiming
 * more than `events_max` items), or null: lets the body reader stop at the
 * first chunk instead of taking in megabytes it would refuse anyway.
 */
export function refuse_batch_head(head: Uint8Array, events_max: number): BatchResult | null {
  if (head.length === 0) return null;
  const r = new HeadReader(head);
  try {
    const top = r.head();
    if (top.major === major_array && top.arg > events_max) return too_many(events_max, Number.isFinite(top.arg) ? String(top.arg) : "more than 2^53");
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
  }
  return null;
}

/**
 * An indefinite-length byte string (its head already read): definite chunks
 * up to a break, joined into one payload; null once the batch has used more
 * chunks than `chunks.left` allowed. Two passes so no list of chunks is built.
 */
function read_chunked(r: HeadReader, chunks: { left: number }): Uint8Array | null {
  const start = r.pos;
  let total = 0;
  while (r.peek() !== break_byte) {
    if (--chunks.left < 0) return null;
    const chunk = r.head();
    if (chunk.major !== major_bytes || chunk.arg < 0) throw new Malformed("a chunked byte string holds something other than definite-length byte strings");
    total += r.take(chunk.arg).length;
  }
  const end = r.pos;
  const joined = new Uint8Array(total);
  let filled = 0;
  r.pos = start;
  while (r.pos < end) {
    const part = r.take(r.head().arg);
    joined.set(part, filled);
    filled += part.length;
  }
  r.pos = end + 1; // the break byte
  return joined;
}
