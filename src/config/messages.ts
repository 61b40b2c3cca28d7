import { z } from "zod";

/**
 * Zod issue messages worded for a field technician editing YAML: what was
 * expected, in YAML terms, and what was found.
 */
export function describe_value(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (typeof value === "object") return "a mapping (key: value)";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

const type_words: Record<string, string> = {
  string: "text",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "a mapping (key: value lines)",
  array: "a list",
};

function description_of(schema: unknown): string | undefined {
  return schema instanceof z.ZodType ? z.globalRegistry.get(schema)?.description : undefined;
}

/** Keys an object schema allows, for "unknown key" messages. */
function known_keys(schema: unknown): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

export const config_error_map: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type": {
      const expected = type_words[issue.expected] ?? issue.expected;
      const description = description_of(issue.inst);
      if (issue.input === undefined) return `required but missing; expected ${description ?? expected}`;
      return `expected ${expected}, got ${describe_value(issue.input)}`;
    }
    case "invalid_value":
      return `expected ${issue.values.length === 1 ? "" : "one of "}${issue.values.map((v) => String(v)).join(", ")}; got ${describe_value(issue.input)}`;
    case "unrecognized_keys": {
      const keys = known_keys(issue.inst);
      return keys.length === 0 ? "no keys are allowed here" : `expected one of: ${keys.join(", ")}`;
    }
    case "invalid_union": {
      const description = description_of(issue.inst);
      return `expected ${description ?? "a different kind of value"}; got ${describe_value(issue.input)}`;
    }
    case "too_small":
      if (issue.origin === "string") return issue.minimum === 1 ? "must not be empty" : `must be at least ${issue.minimum} characters`;
      if (issue.origin === "array") return `must list at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}`;
      return `must be at least ${issue.minimum}, got ${describe_value(issue.input)}`;
    case "too_big":
      if (issue.origin === "string") return `must be at most ${issue.maximum} characters`;
      if (issue.origin === "array") return `must list at most ${issue.maximum} items`;
      return `must be at most ${issue.maximum}, got ${describe_value(issue.input)}`;
    default:
      return undefined;
  }
};
