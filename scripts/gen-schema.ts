/**
 * Writes config/interlog.schema.json (the config's JSON Schema, for editors)
 * from the zod schema in src/config/schema.ts. Run after changing the config
 * format or adding a validator: `bun scripts/gen-schema.ts`.
 * test/config/json_schema.test.ts fails while the committed file is stale.
 */
import fs from "node:fs";
import path from "node:path";
import { config_json_schema_text } from "../src/config/json_schema.ts";

export const schema_file = path.join(import.meta.dir, "..", "config", "interlog.schema.json");

if (import.meta.main) {
  fs.writeFileSync(schema_file, config_json_schema_text());
  console.log(`wrote ${path.relative(process.cwd(), schema_file)}`);
}
