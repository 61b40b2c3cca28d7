import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { parse_cbor_batch, refuse_batch_head } from "../../src/admin/cbor_batch.ts";
import { enc } from "./support.ts";

const bytes = (...parts: (number | Uint8Array)[]) => new Uint8Array(parts.flatMap((p) => (typeof p === "number" ? [p] : [...p])));

function payloads_of(body: Uint8Array, events_max = 100): Uint8Array[] {
  const r = parse_cbor_batch(body, events_max);
  if (!r.ok) throw new Error(`refused: ${r.message}`);
  return r.payloads;
}

function refusal_of(body: Uint8Array, events_max = 100): [number, string, string] {
  const r = parse_cbor_batch(body, events_max);
  if (r.ok) throw new Error("accepted");
  return [r.status, r.code, r.message];
}

describe("the CBOR batch walker", () => {
  test("reads what cbor2 encodes: every length-head size, as views of the body", () => {
    const lengths = [0, 1, 23, 24, 255, 256, 65_535, 65_536];
    const sent = lengths.map((n, i) => new Uint8Array(n).fill(i + 1));
    const body = encode(sent);
    const got = payloads_of(body);
    expect(got.map((p) => p.length)).toEqual(lengths);
    expect(got.every((p, i) => p.every((b) => b === i + 1))).toBe(true);
    expect(got[7].buffer).toBe(body.buffer);
  });

  test("also reads non-preferred length heads, an indefinite-length array and chunked byte strings", () => {
    // [h'61' with a 2-byte length, (_ h'62', h'6363'), h''] as an indefinite array
    const body = bytes(0x9f, 0x59, 0x00, 0x01, 0x61, 0x5f, 0x41, 0x62, 0x42, 0x63, 0x63, 0xff, 0x40, 0xff);
    expect(payloads_of(body).map((p) => new TextDecoder().decode(p))).toEqual(["a", "bcc", ""]);
    expect(payloads_of(bytes(0x9b, 0, 0, 0, 0, 0, 0, 0, 1, 0x41, 0x7a)).map((p) => p[0])).toEqual([0x7a]);
  });

  test("a count over the limit is 413 from the array head alone, before any item", () => {
    // Claims 17 million items but holds none: refused on the count, not on being short.
    const head = bytes(0x9a, 0x01, 0x10, 0x00, 0x00);
    expect(refusal_of(head, 4096)).toEqual([413, "BATCH_TOO_LARGE", "the batch holds 17825792 events; a request may carry at most 4096: split it into smaller batches. Nothing was written"]);
    expect(refuse_batch_head(head, 4096)).toMatchObject({ ok: false, status: 413, code: "BATCH_TOO_LARGE" });
    expect(refusal_of(bytes(0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0), 4096)[2]).toContain("holds more than 2^53 events");
    // A head cut short, or within the limit, decides nothing yet.
    expect(refuse_batch_head(bytes(0x9a, 0x01), 4096)).toBeNull();
    expect(refuse_batch_head(bytes(0x99, 0x10, 0x00), 4096)).toBeNull();
    expect(refuse_batch_head(bytes(0xa1), 4096)).toBeNull();
  });

  test("an indefinite-length array is refused at the first item past the limit", () => {
    const items = (n: number) => bytes(0x9f, ...new Array<number>(n).fill(0x40), 0xff);
    expect(payloads_of(items(4096), 4096).length).toBe(4096);
    expect(refusal_of(items(4097), 4096)).toEqual([413, "BATCH_TOO_LARGE", "the batch holds more than 4096 events; a request may carry at most 4096: split it into smaller batches. Nothing was written"]);
    // Without its break byte, a body of a million empty items still stops at the limit.
    const endless = new Uint8Array(1_000_000).fill(0x40);
    endless[0] = 0x9f;
    const started = performance.now();
    expect(refusal_of(endless, 4096)[1]).toBe("BATCH_TOO_LARGE");
    expect(performance.now() - started).toBeLessThan(50);
  });

  test("lengths are checked against the bytes present, so a lying head allocates nothing", () => {
    // A byte string claiming 4 GiB, and a chunk claiming 2^53.
    expect(refusal_of(bytes(0x81, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x61))).toEqual([
      400,
      "BAD_REQUEST",
      "the body is not well-formed CBOR (a byte string claims 4294967295 bytes but only 1 follow)",
    ]);
    expect(refusal_of(bytes(0x81, 0x5f, 0x5b, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0xff))[2]).toContain("claims Infinity bytes");
    // Chunked byte strings are joined into one payload; their chunks count against the limit like items.
    expect(payloads_of(bytes(0x81, 0x5f, 0x41, 0x61, 0x40, 0x42, 0x62, 0x63, 0xff), 3)).toEqual([enc("abc")]);
    expect(refusal_of(bytes(0x81, 0x5f, 0x41, 0x61, 0x40, 0x42, 0x62, 0x63, 0x40, 0xff), 3)).toEqual([
      413,
      "BATCH_TOO_LARGE",
      "the batch's byte strings are split into more than 3 chunks; send each event as one byte string. Nothing was written",
    ]);
    const empties = new Uint8Array(1_000_003).fill(0x40);
    empties.set([0x81, 0x5f]);
    empties[empties.length - 1] = 0xff;
    const started = performance.now();
    expect(refusal_of(empties, 4096)[1]).toBe("BATCH_TOO_LARGE");
    expect(performance.now() - started).toBeLessThan(50);
  });

  test("anything else is 400 with what to send instead", () => {
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), "not well-formed CBOR (the body is empty)"],
      [bytes(0x82, 0x41), "not well-formed CBOR (a byte string claims 1 byte but only 0 follow)"],
      [bytes(0x81, 0x5c), "reserved additional information 28"],
      [bytes(0x9f, 0x40), "not well-formed CBOR (it ends in the middle of an item)"],
      [encode({ a: enc("x") }), "an application/cbor body must be one array of byte strings (one per event)"],
      [encode(enc("x")), "one array of byte strings"],
      [encode([]), "the batch is empty; send at least one byte string"],
      [bytes(0x9f, 0xff), "the batch is empty"],
      [encode([enc("ok"), "text"]), "item 1 of the batch is not a byte string; send one byte string per event"],
      [bytes(0x81, 0xd8, 0x40, 0x41, 0x61), "item 0 of the batch is not a byte string"],
      [bytes(0x81, 0x5f, 0x61, 0x61, 0xff), "a chunked byte string holds something other than definite-length byte strings"],
      [bytes(...encode([enc("x")]), 0), "not well-formed CBOR (the body goes on after the array (1 more byte); send exactly one array)"],
    ];
    for (const [body, message] of cases) {
      const r = parse_cbor_batch(body, 100);
      expect({ body: [...body.subarray(0, 8)], refused: !r.ok && r.status === 400 && r.code === "BAD_REQUEST" && r.message.includes(message) }).toEqual({
        body: [...body.subarray(0, 8)],
        refused: true,
      });
    }
  });
});
