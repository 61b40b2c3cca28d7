/**
 * The hub ingest measurement of fleet_hub_ingest.ts in a process of its own:
 * `bun fleet_hub_child.ts DIR SPOKES PUSHES EVENTS_PER_PUSH PAYLOAD_BYTES CHUNK`
 * prints one JSON line (HubIngestResult).
 */
import { run_hub_ingest } from "./fleet_hub_ingest.ts";

const [dir, ...numbers] = process.argv.slice(2);
const [spokes, pushes_per_spoke, events_per_push, payload_bytes, chunk] = numbers.map(Number);
if (dir === undefined || ![spokes, pushes_per_spoke, events_per_push, payload_bytes, chunk].every((n) => Number.isSafeInteger(n) && n > 0)) {
  throw new Error("usage: fleet_hub_child.ts DIR SPOKES PUSHES EVENTS_PER_PUSH PAYLOAD_BYTES CHUNK");
}
const result = await run_hub_ingest(dir, { spokes, pushes_per_spoke, events_per_push, payload_bytes, chunk });
process.stdout.write(`${JSON.stringify(result)}\n`);
