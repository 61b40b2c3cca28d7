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
  fleet_spoke_traffic_10k_vs_100_ratio,
} from "./fleet_spoke_traffic.ts";
import { aws_iot_catchup_week } from "./aws_iot_catchup.ts";
import { browser_append_events_per_s } from "./browser_append.ts";
import { browser_catchup_events_per_s } from "./browser_catchup.ts";
import { fleet_hub_bytes_per_origin, fleet_hub_ingest_10_per_push_events_per_s, fleet_hub_ingest_events_per_s } from "./fleet_hub_ingest.ts";
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
import { sync_cpu_s_per_1m_events, sync_cpu_s_per_1m_events_receiver, sync_cpu_s_per_1m_events_sender } from "./sync_cpu_s_per_1m_events.ts";
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
  sync_cpu_s_per_1m_events,
  sync_cpu_s_per_1m_events_sender,
  sync_cpu_s_per_1m_events_receiver,
  sync_catchup_100k_s,
  sync_catchup_100k_peak_rss_bytes,
  sync_wire_overhead_ratio,
  fleet_100_spoke_msgs_per_event,
  fleet_100_spoke_bytes_per_event,
  fleet_1000_spoke_msgs_per_event,
  fleet_1000_spoke_bytes_per_event,
  fleet_spoke_traffic_1000_vs_100_ratio,
];

/**
 * Benchmarks that take minutes each: a plain run leaves them out, `--only
 * NAME` runs them (`--list` shows them).
 */
export const opt_in_benchmarks: readonly Benchmark[] = [
  aws_iot_catchup_week,
  fleet_spoke_traffic_10k_vs_100_ratio,
  fleet_hub_ingest_events_per_s,
  fleet_hub_ingest_10_per_push_events_per_s,
  fleet_hub_bytes_per_origin,
  browser_append_events_per_s,
  browser_catchup_events_per_s,
];
