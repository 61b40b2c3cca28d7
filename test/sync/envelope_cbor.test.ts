import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import fc from "fast-check";
import { encode_envelope } from "../../src/sync/envelope_cbor.ts";
import { seed_from_env } from "../../src/lib/random.ts";

/** Envelopes as messages.ts builds them, with values at every CBOR head size. */
const uint = fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.maxSafeNat());
const value = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 40 }), uint, fc.boolean(), fc.uint8Array({ maxLength: 70_000 }), fc.array(uint, { maxLength: 30 }));

describe("envelope CBOR", () => {
  test("writes exactly the bytes cbor2 writes for every envelope shape sync builds", () => {
    const seed = seed_from_env();
    try {
      fc.assert(
        fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 30 }), value, { maxKeys: 30 }), (envelope) => {
          expect(Buffer.from(encode_envelope(envelope)).equals(Buffer.from(encode(envelope)))).toBe(true);
        }),
        { seed, numRuns: 400 },
      );
    } catch (err) {
      console.error(`failed with SEED=${seed}`);
      throw err;
    }
  });

  test("anything else (negative or fractional numbers, nested maps) is left to cbor2", () => {
    for (const envelope of [{ a: -1 }, { a: 1.5 }, { a: { b: 1 } }, { a: [1, -2] }, { a: null }]) {
      expect(Buffer.from(encode_envelope(envelope)).equals(Buffer.from(encode(envelope)))).toBe(true);
    }
  });
});
