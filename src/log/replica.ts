import path from "node:path";
import { InterlogError } from "../lib/errors.ts";
import type { FileIO } from "./file_io.ts";
import { is_origin } from "./ids.ts";
import { bytes_of_hex, hex_of } from "./key_id.ts";
import { private_seed_bytes, ReplicaKey } from "./replica_key.ts";
import type { Signer } from "./signer.ts";

/**
 * replica.json: who this log belongs to, and replica.key: its private key.
 * Created once per data directory, never from config. The id is bound to
 * the public key (replica_key.ts), so a data directory cannot be given
 * another id, and the key never leaves the directory (mode 0600).
 */
export interface ReplicaInfo {
  id: string;
  name: string;
  created: string;
  /** The Ed25519 public key, 64 hex digits. */
  public_key: string;
  /** On-disk format: 3 since events are signed. */
  format: number;
}

export const replica_file_name = "replica.json";
export const key_file_name = "replica.key";
/** The format this version writes and reads: 3 = signed frames (0.2 wrote unsigned frames and no "format"). */
export const data_format = 3;

export interface Replica {
  info: ReplicaInfo;
  /** Null when the log is opened read-only and the key file is not readable. */
  key: Signer | null;
}

function invalid(file: string, what: string): InterlogError {
  return new InterlogError("DATA_DIR_INVALID", `${file} ${what}; restore the data directory from a backup`);
}

function is_old_format(info: { format?: unknown; public_key?: unknown }): boolean {
  return info.format === undefined && info.public_key === undefined;
}

function old_format(dir: string): InterlogError {
  return new InterlogError(
    "DATA_DIR_OLD_FORMAT",
    `${dir} was written by InterLog 0.2, whose events are not signed; this version cannot extend it. ` +
      `Read its events out with an InterLog 0.2 binary ("interlog read --data-dir ${dir}"), then give this version a new data directory ("interlog init --data-dir NEW_DIR"); the old directory is left as it is`,
  );
}

/** Throws DATA_DIR_OLD_FORMAT for a 0.2 data directory (its replica.json has no format); anything else is read_replica's to judge. */
export function refuse_old_format(io: FileIO, dir: string): void {
  const bytes = io.read_file(path.join(dir, replica_file_name));
  if (bytes === null) return;
  let info: unknown;
  try {
    info = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return;
  }
  if (typeof info === "object" && info !== null && is_old_format(info)) throw old_format(dir);
}

/** `signer`: the key kept outside the directory (LogOptions.signer); replica.key is then not read. */
export function read_replica(io: FileIO, dir: string, need_key = true, signer: Signer | null = null): Replica | null {
  const file = path.join(dir, replica_file_name);
  const bytes = io.read_file(file);
  if (bytes === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw invalid(file, "is not valid JSON (it holds the replica id)");
  }
  const info = parsed as Partial<ReplicaInfo>;
  if (typeof info.id !== "string" || !is_origin(info.id) || typeof info.name !== "string") {
    throw invalid(file, `lacks a valid "id" (16 hex digits) or "name"`);
  }
  if (is_old_format(info)) throw old_format(dir);
  if (info.format !== data_format) throw invalid(file, `has format ${String(info.format)}, this version reads format ${data_format}`);
  if (typeof info.public_key !== "string" || !/^[0-9a-f]{64}$/.test(info.public_key)) throw invalid(file, `lacks a valid "public_key" (64 hex digits)`);
  const replica: ReplicaInfo = { id: info.id, name: info.name, created: typeof info.created === "string" ? info.created : "", public_key: info.public_key, format: data_format };
  if (signer !== null) {
    if (signer.id !== replica.id || signer.public_key_hex !== replica.public_key) {
      throw invalid(file, `belongs to replica ${replica.id}, not to this key's replica ${signer.id}`);
    }
    return { info: replica, key: signer };
  }
  const key_file = path.join(dir, key_file_name);
  const key_bytes = io.read_file(key_file);
  if (key_bytes === null) {
    if (!need_key) return { info: replica, key: null };
    throw invalid(key_file, "is missing (it holds the replica's private key)");
  }
  const seed_hex = new TextDecoder().decode(key_bytes).trim();
  if (!/^[0-9a-f]{64}$/.test(seed_hex)) throw invalid(key_file, "is not 64 hex digits");
  const key = ReplicaKey.from_seed(bytes_of_hex(seed_hex));
  if (key.id !== replica.id || key.public_key_hex !== replica.public_key) {
    throw invalid(key_file, `does not belong to replica ${replica.id} (the key and replica.json come from different directories)`);
  }
  return { info: replica, key };
}

export async function create_replica(
  io: FileIO,
  dir: string,
  name: string,
  now_ms: number,
  fill_random?: (bytes: Uint8Array) => void,
  signer: Signer | null = null,
): Promise<Replica> {
  let key: Signer;
  if (signer !== null) key = signer;
  else {
    const made = ReplicaKey.generate(fill_random);
    if (made.seed.length !== private_seed_bytes) throw new Error("unreachable: seed size");
    key = made.key;
    // The key first: a replica.json without its key would be a directory no one can sign for.
    await io.write_file_atomic(path.join(dir, key_file_name), new TextEncoder().encode(`${hex_of(made.seed)}\n`), 0o600);
  }
  const info: ReplicaInfo = { id: key.id, name, created: new Date(now_ms).toISOString(), public_key: key.public_key_hex, format: data_format };
  await io.write_file_atomic(path.join(dir, replica_file_name), new TextEncoder().encode(`${JSON.stringify(info, null, 2)}\n`));
  return { info, key };
}
