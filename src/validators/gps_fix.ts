/**
 * Example of a domain validator, written the way you would write your own.
 *
 * Writing a validator:
 * 1. Create a file in src/validators/, e.g. `src/validators/door_event.ts`.
 * 2. Export `define_validator({ name, summary, options, create })`:
 *    - `name`: what config lists under `validators.append` / `validators.sync`
 *      (lowercase words joined by `-`).
 *    - `options`: a zod object schema (`z.strictObject({...})`) of the options
 *      config may give, with defaults where sensible; use `size(...)` and
 *      `duration(...)` from ./validator.ts for `64KiB` / `500ms` values.
 *      Config errors in options are reported with file, line and key path.
 *    - `create(options)`: returns the check `(payload, ctx) => string | null`:
 *      null accepts the event, a string rejects it with that message (422 to
 *      an appending caller; a synced event is kept as its origin signed
 *      it, marked rejected, and /api/quarantine shows the message). `ctx` says which replica wrote the
 *      event (`origin`), its `seq`, `time_ms`, and `kind` ("append" | "sync").
 *      State kept in the closure is per configured use, lives in memory and
 *      starts empty after a restart; update it only when the event passes,
 *      and list stateful validators last in config (a later validator's
 *      rejection cannot undo it). Never throw for bad input; return a
 *      message a field technician can act on.
 * 3. Add it to the list in src/validators/registry.ts.
 * 4. Name it in the config, e.g. `append: [json, door-event]` or with
 *    options `- door-event: { max_open: 10min }`.
 * 5. Regenerate the editors' schema (`bun scripts/gen-schema.ts`, which
 *    lists validator names and options), run `npm test`, and rebuild the
 *    firmware: validators are compiled in, never loaded at run time.
 *
 * This one: a container's GPS fix, as JSON `{"lat":..,"lon":..,"time_ms":..}`
 * or the same map in CBOR. Latitude must be within [-90, 90], longitude within
 * [-180, 180], and the fix's device time (`time_ms`, ms since the epoch) must
 * not go back from one event of an origin to the next.
 */
import { parse_cbor_payload } from "./cbor.ts";
import { parse_json_payload } from "./json.ts";
import { define_validator, z } from "./validator.ts";

/** Bound on the per-origin memory of last fix times (the least recently seen origin is forgotten first). */
export const gps_fix_origins_max = 10_000;

/** A CBOR map's first byte has major type 5 (0xa0-0xbf); no JSON text starts with such a byte. */
const cbor_major_type_mask = 0xe0;
const cbor_map_major_type = 0xa0;

interface LastFix {
  seq: number;
  time_ms: number;
}

function read_fix(payload: Uint8Array): { lat: unknown; lon: unknown; time_ms: unknown } | string {
  const is_cbor_map = payload.length > 0 && (payload[0] & cbor_major_type_mask) === cbor_map_major_type;
  const parsed = is_cbor_map ? parse_cbor_payload(payload) : parse_json_payload(payload);
  if ("error" in parsed) return `a GPS fix must be a JSON or CBOR map: ${parsed.error}`;
  const value = parsed.value;
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Map) {
    return "a GPS fix must be a map with lat, lon and time_ms";
  }
  return value as { lat: unknown; lon: unknown; time_ms: unknown };
}

export const gps_fix = define_validator({
  name: "gps-fix",
  summary: "a container GPS fix: lat/lon in range, device time never going back per origin",
  options: z.strictObject({}),
  create() {
    const last_fix_by_origin = new Map<string, LastFix>();
    return (payload, ctx) => {
      const fix = read_fix(payload);
      if (typeof fix === "string") return fix;
      const { lat, lon, time_ms } = fix;
      if (typeof lat !== "number" || !(lat >= -90 && lat <= 90)) return `lat must be a number from -90 to 90, got ${JSON.stringify(lat)}`;
      if (typeof lon !== "number" || !(lon >= -180 && lon <= 180)) return `lon must be a number from -180 to 180, got ${JSON.stringify(lon)}`;
      if (typeof time_ms !== "number" || !Number.isSafeInteger(time_ms) || time_ms < 0) {
        return `time_ms must be the fix's device time in ms since 1970, got ${JSON.stringify(time_ms)}`;
      }
      const last = last_fix_by_origin.get(ctx.origin);
      // A seq at or below the last one seen means that event was never written
      // (its append or batch failed) and its seq is being reused: no reference then.
      if (last !== undefined && ctx.seq > last.seq && time_ms < last.time_ms) {
        return `time_ms ${time_ms} goes back ${last.time_ms - time_ms} ms from this device's previous fix (${last.time_ms}, event ${ctx.origin}:${last.seq}); check the device clock`;
      }
      last_fix_by_origin.delete(ctx.origin);
      if (last_fix_by_origin.size >= gps_fix_origins_max) {
        const oldest = last_fix_by_origin.keys().next().value;
        if (oldest !== undefined) last_fix_by_origin.delete(oldest);
      }
      last_fix_by_origin.set(ctx.origin, { seq: ctx.seq, time_ms });
      return null;
    };
  },
});
