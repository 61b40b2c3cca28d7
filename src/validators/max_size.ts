import { format_bytes } from "../lib/units.ts";
import { payload_max_bytes } from "../log/frame.ts";
import { define_validator, size, z } from "./validator.ts";

export const max_size_default = "64KiB";

/** Rejects payloads larger than `max_bytes`. */
export const max_size = define_validator({
  name: "max-size",
  summary: `rejects payloads larger than max_bytes (default ${max_size_default})`,
  options: z.strictObject({
    max_bytes: size("largest payload accepted")
      .refine((bytes) => bytes >= 1 && bytes <= payload_max_bytes, {
        message: `max_bytes must be between 1 byte and ${format_bytes(payload_max_bytes)} (the log's payload limit)`,
      })
      .prefault(max_size_default),
  }),
  create({ max_bytes }) {
    const limit_text = `${max_bytes} bytes (${format_bytes(max_bytes)})`;
    return (payload) => (payload.length <= max_bytes ? null : `payload is ${payload.length} bytes, larger than the limit of ${limit_text}`);
  },
});
