import path from "node:path";
import { InterlogError } from "../lib/errors.ts";
import type { FileIO } from "./file_io.ts";
import { is_origin, new_origin } from "./ids.ts";

/** replica.json: who this log belongs to. Created once per data directory, never from config. */
export interface ReplicaInfo {
  id: string;
  name: string;
  created: string;
}

export const replica_file_name = "replica.json";

export function read_replica(io: FileIO, dir: string): ReplicaInfo | null {
  const file = path.join(dir, replica_file_name);
  const bytes = io.read_file(file);
  if (bytes === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new InterlogError("DATA_DIR_INVALID", `${file} is not valid JSON; restore it from a backup (it holds the replica id)`);
  }
  const info = parsed as Partial<ReplicaInfo>;
  if (typeof info.id !== "string" || !is_origin(info.id) || typeof info.name !== "string") {
    throw new InterlogError("DATA_DIR_INVALID", `${file} lacks a valid "id" (16 hex digits) or "name"; restore it from a backup`);
  }
  return { id: info.id, name: info.name, created: typeof info.created === "string" ? info.created : "" };
}

export async function create_replica(
  io: FileIO,
  dir: string,
  name: string,
  now_ms: number,
  fill_random?: (bytes: Uint8Array) => void,
): Promise<ReplicaInfo> {
  const info: ReplicaInfo = { id: new_origin(fill_random), name, created: new Date(now_ms).toISOString() };
  await io.write_file_atomic(path.join(dir, replica_file_name), new TextEncoder().encode(`${JSON.stringify(info, null, 2)}\n`));
  return info;
}
