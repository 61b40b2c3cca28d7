import type { Log } from "../log/log.ts";

/** What sync needs of the local log; `Log` provides it. */
export type ReplicaLog = Pick<
  Log,
  | "id"
  | "name"
  | "count"
  | "bytes"
  | "durable_count"
  | "held"
  | "durable_held"
  | "vv"
  | "durable_vv"
  | "iterate"
  | "get"
  | "scan_origin"
  | "accept_checked"
  | "keys"
  | "first_pos"
  | "pruned_through"
>;
