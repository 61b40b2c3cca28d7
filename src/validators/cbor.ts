import { decode } from "cbor2";
import { define_validator, no_options } from "./validator.ts";

/** Nesting deeper than this is refused: a hostile payload must not exhaust the stack. */
export const cbor_depth_max = 64;

/** Decodes a payload as exactly one CBOR item; returns the value, or a message saying why it is not CBOR. */
export function parse_cbor_payload(payload: Uint8Array): { value: unknown } | { error: string } {
  if (payload.length === 0) return { error: "payload is empty, expected one CBOR item" };
  try {
    // Global tags off: this checks well-formedness, not what a tag's content means.
    return { value: decode(payload, { ignoreGlobalTags: true, maxDepth: cbor_depth_max }) };
  } catch (err) {
    return { error: `payload is not well-formed CBOR: ${(err as Error).message}` };
  }
}

/** Accepts payloads that are exactly one well-formed CBOR item (RFC 8949). */
export const cbor = define_validator({
  name: "cbor",
  summary: "accepts only one well-formed CBOR item",
  options: no_options,
  create: () => (payload) => {
    const parsed = parse_cbor_payload(payload);
    return "error" in parsed ? parsed.error : null;
  },
});
