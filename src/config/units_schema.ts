import { z } from "zod";
import { parse_duration_ms, parse_size_bytes } from "../lib/units.ts";
import { describe_value } from "./messages.ts";

/**
 * Zod schemas for sizes (`64MiB`) and durations (`500ms`) as written in
 * config. src/lib/units.ts decides what parses; the patterns below only
 * help editors flag typos through the generated JSON Schema, and a test
 * keeps them in agreement with units.ts.
 */
export const size_pattern = "^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kKmMgG][bB]|[kKmMgG][iI][bB])?\\s*$";
export const duration_pattern = "^\\s*\\d+(\\.\\d+)?\\s*([mM][sS]|[sS]|[mM]|[mM][iI][nN]|[hH])?\\s*$";

function with_units(parse: (text: string | number) => number, pattern: string, description: string, expected: string) {
  const error = (issue: { input?: unknown }) => `expected ${expected}; got ${describe_value(issue.input)}`;
  return z
    .union([z.number().int({ error }).min(0, { error }), z.string()], { error })
    .transform((value, ctx) => {
      try {
        return parse(value);
      } catch (err) {
        ctx.issues.push({ code: "custom", message: (err as Error).message, input: value });
        return z.NEVER;
      }
    })
    .meta({ pattern, description });
}

/** A size in bytes: a plain number of bytes or text with a unit (B, KB, MB, GB, KiB, MiB, GiB). */
export function size(description: string) {
  return with_units(parse_size_bytes, size_pattern, `${description} (a size such as 64MiB, 128KiB or a number of bytes)`, "a size such as 64MiB or 128KiB, or a whole number of bytes");
}

/** A duration in milliseconds: a plain number of ms or text with a unit (ms, s, m, min, h). */
export function duration(description: string) {
  return with_units(parse_duration_ms, duration_pattern, `${description} (a duration such as 500ms, 10s or a number of milliseconds)`, "a duration such as 500ms or 10s, or a whole number of milliseconds");
}
