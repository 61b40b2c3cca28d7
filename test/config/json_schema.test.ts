import fs from "node:fs";
import path from "node:path";
import { describe, expect, test } from "bun:test";
import { config_json_schema, config_json_schema_text } from "../../src/config/json_schema.ts";
import { duration_pattern, size_pattern } from "../../src/config/units_schema.ts";
import { parse_duration_ms, parse_size_bytes } from "../../src/lib/units.ts";
import { validator_registry } from "../../src/validators/registry.ts";

const schema_file = path.join(import.meta.dir, "..", "..", "config", "interlog.schema.json");

describe("the JSON Schema for editors", () => {
  test("config/interlog.schema.json is current (regenerate with: bun scripts/gen-schema.ts)", () => {
    const committed = fs.readFileSync(schema_file, "utf8");
    if (committed !== config_json_schema_text()) {
      throw new Error("config/interlog.schema.json is stale: run `node_modules/.bin/bun scripts/gen-schema.ts` and commit it");
    }
  });

  test("it allows exactly the top-level keys and lists every registered validator", () => {
    const schema = config_json_schema() as {
      properties: Record<string, unknown>;
      required: string[];
      additionalProperties: boolean;
      definitions: { validator: { anyOf: Array<{ enum?: string[]; required?: string[] }> } };
    };
    expect(Object.keys(schema.properties)).toEqual(["name", "data_dir", "log", "mqtt", "replication", "admin", "validators", "trust", "retention"]);
    expect(schema.required).toEqual(["data_dir"]);
    expect(schema.additionalProperties).toBe(false);
    const [bare, ...with_options] = schema.definitions.validator.anyOf;
    expect(bare.enum).toEqual(validator_registry.names());
    expect(with_options.map((alternative) => alternative.required?.[0])).toEqual(validator_registry.names());
  });

  test("its unit patterns accept what units.ts parses and reject what it refuses", () => {
    const cases: Array<[RegExp, (text: string) => number, string[], string[]]> = [
      [new RegExp(size_pattern), parse_size_bytes, ["64MiB", "128 KiB", "1GB", "10b", "4096", "1.5MiB", "2kib"], ["64XB", "MiB", "-1MiB", "1 MiB/s", "10ms"]],
      [new RegExp(duration_pattern), parse_duration_ms, ["500ms", "10s", "2m", "1min", "1h", "250", "1.5s"], ["5 sec", "10d", "ms", "-5ms", "1MiB"]],
    ];
    for (const [pattern, parse, good, bad] of cases) {
      for (const text of good) {
        expect({ text, matches: pattern.test(text) }).toEqual({ text, matches: true });
        expect(() => parse(text)).not.toThrow();
      }
      for (const text of bad) {
        expect({ text, matches: pattern.test(text) }).toEqual({ text, matches: false });
        expect(() => parse(text)).toThrow();
      }
    }
  });
});
