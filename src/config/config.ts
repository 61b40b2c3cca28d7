import fs from "node:fs";
import YAML from "yaml";
import { InterlogError } from "../lib/errors.ts";
import { parse_duration_ms, parse_size_bytes } from "../lib/units.ts";
import type { SyncMode } from "../log/log.ts";

/**
 * The replica's configuration. This is the storage-only subset; the full
 * schema (mqtt, admin, validators) arrives with the appliance issue.
 */
export interface Config {
  name: string;
  data_dir: string;
  log: {
    segment_size_bytes: number;
    sync: SyncMode;
    sync_interval_ms: number;
  };
}

export function load_config(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new InterlogError("CONFIG_INVALID", `${file}: cannot read config: ${(err as Error).message}`);
  }
  const doc = YAML.parse(text) as Record<string, unknown> | null;
  const raw = (doc ?? {}) as { name?: unknown; data_dir?: unknown; log?: Record<string, unknown> };
  if (typeof raw.data_dir !== "string") throw new InterlogError("CONFIG_INVALID", `${file}: data_dir: expected a path`);
  const log = raw.log ?? {};
  const sync = (log.sync ?? "always") as SyncMode;
  if (!["always", "interval", "never"].includes(sync)) {
    throw new InterlogError("CONFIG_INVALID", `${file}: log.sync: expected always, interval or never`);
  }
  try {
    return {
      name: typeof raw.name === "string" ? raw.name : "",
      data_dir: raw.data_dir,
      log: {
        segment_size_bytes: parse_size_bytes((log.segment_size as string | number | undefined) ?? "64MiB"),
        sync,
        sync_interval_ms: parse_duration_ms((log.sync_interval as string | number | undefined) ?? "10ms"),
      },
    };
  } catch (err) {
    throw new InterlogError("CONFIG_INVALID", `${file}: ${(err as Error).message}`);
  }
}
