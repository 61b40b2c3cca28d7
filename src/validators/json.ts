import { utf8_message } from "./utf8.ts";
import { define_validator, no_options } from "./validator.ts";

const decoder = new TextDecoder("utf-8");

/** Parses a payload as JSON text; returns the value, or a message saying why it is not JSON. */
export function parse_json_payload(payload: Uint8Array): { value: unknown } | { error: string } {
  if (payload.length === 0) return { error: "payload is empty, expected a JSON value" };
  const not_utf8 = utf8_message(payload);
  if (not_utf8 !== null) return { error: `payload is not JSON: ${not_utf8}` };
  try {
    return { value: JSON.parse(decoder.decode(payload)) };
  } catch (err) {
    return { error: `payload is not JSON: ${(err as Error).message}` };
  }
}

/** Accepts payloads that are one well-formed JSON value (UTF-8). */
export const json = define_validator({
  name: "json",
  summary: "accepts only well-formed JSON (UTF-8)",
  options: no_options,
  create: () => (payload) => {
    const parsed = parse_json_payload(payload);
    return "error" in parsed ? parsed.error : null;
  },
});
