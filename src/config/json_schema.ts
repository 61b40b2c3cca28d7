import { z } from "zod";
import { validator_registry } from "../validators/registry.ts";
import { config_file_schema, validator_entry } from "./schema.ts";

type JsonSchema = Record<string, unknown>;


/** Exact JSON Schema of one validator entry: each registered name, bare or with its own options. */
function validator_entry_json_schema(): JsonSchema[] {
  const alternatives: JsonSchema[] = [];
  const bare = validator_registry.definitions().filter((definition) => definition.options.safeParse({}).success);
  alternatives.push({ type: "string", enum: bare.map((definition) => definition.name), description: "a validator with default options" });
  for (const definition of validator_registry.definitions()) {
    const { $schema: _, ...options } = z.toJSONSchema(definition.options, { io: "input", target: "draft-7" }) as JsonSchema;
    alternatives.push({
      type: "object",
      description: definition.summary,
      properties: { [definition.name]: { anyOf: [options, { type: "null" }] } },
      required: [definition.name],
      additionalProperties: false,
    });
  }
  return alternatives;
}

/**
 * The config file's JSON Schema, for editors (yaml-language-server and the
 * like), generated from the same zod schema load_config checks with.
 * Written to config/interlog.schema.json by scripts/gen-schema.ts.
 */
export function config_json_schema(): JsonSchema {
  const schema = z.toJSONSchema(config_file_schema, {
    io: "input",
    target: "draft-7",
    override(ctx) {
      if (ctx.zodSchema !== validator_entry) return;
      for (const key of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as JsonSchema)[key];
      Object.assign(ctx.jsonSchema, { $ref: "#/definitions/validator" });
    },
  }) as JsonSchema;
  const validator = { description: z.globalRegistry.get(validator_entry)?.description, anyOf: validator_entry_json_schema() };
  return { ...schema, definitions: { validator } };
}

/** The file's exact text: what the generator writes and the staleness test compares. */
export function config_json_schema_text(): string {
  return `${JSON.stringify(config_json_schema(), null, 2)}\n`;
}
