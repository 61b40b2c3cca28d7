import { append_256b_never } from "./append_256b_never.ts";
import { append_256b_vs_sqlite } from "./append_256b_vs_sqlite.ts";
import { append_durable_1 } from "./append_durable_1.ts";
import { append_durable_64 } from "./append_durable_64.ts";
import {
  fleet_100_spoke_bytes_per_event,
  fleet_100_spoke_msgs_per_event,
  fleet_1000_spoke_bytes_per_event,
  fleet_1000_spoke_msgs_per_event,
  fleet_spoke_traffic_1000_vs_100_ratio,
} from "./fleet_spoke_traffic.ts";
import { fleet_named_only } from "./fleet_named.ts";
import { heap_growth_per_1m_appends_bytes } from "./heap_growth.ts";
import { open_1gib_ms } from "./open_1gib_ms.ts";
import { open_64mib_ms } from "./open_64mib_ms.ts";
import { prune_1gib_ms } from "./prune_1gib.ts";
import {
  segment_create_append_durable_fallocated_vs_zeroed_ratio,
  segment_create_fallocate_ms,
  segment_create_write_bytes_ratio,
  segment_create_zeros_ms,
} from "./segment_create.ts";
import { sync_256b_events_per_s } from "./sync_256b_events_per_s.ts";
import { sync_catchup_100k_peak_rss_bytes, sync_catchup_100k_s } from "./sync_catchup_100k.ts";
import { sync_wire_overhead_ratio } from "./sync_wire_overhead.ts";
import type { Benchmark } from "./types.ts";
import { verify_256b_events_per_s } from "./verify_256b.ts";
import { write_amplification_256b_always, write_amplification_256b_never } from "./write_amplification.ts";

/** Every benchmark, in run order. New ones (sync, issue 4) register here. */
export const benchmarks: readonly Benchmark[] = [
  append_256b_never,
  append_256b_vs_sqlite,
  append_durable_1,
  append_durable_64,
  open_64mib_ms,
  open_1gib_ms,
  segment_create_fallocate_ms,
  segment_create_zeros_ms,
  segment_create_write_bytes_ratio,
  segment_create_append_durable_fallocated_vs_zeroed_ratio,
  heap_growth_per_1m_appends_bytes,
  verify_256b_events_per_s,
  write_amplification_256b_never,
  write_amplification_256b_always,
  prune_1gib_ms,
  sync_256b_events_per_s,
  sync_catchup_100k_s,
  sync_catchup_100k_peak_rss_bytes,
  sync_wire_overhead_ratio,
  fleet_100_spoke_msgs_per_event,
  fleet_100_spoke_bytes_per_event,
  fleet_1000_spoke_msgs_per_event,
  fleet_1000_spoke_bytes_per_event,
  fleet_spoke_traffic_1000_vs_100_ratio,
  // Fleets of 10 000 spokes (minutes each): only when --filter names them (fleet_named.ts).
  ...fleet_named_only(process.argv.slice(2)),
];
