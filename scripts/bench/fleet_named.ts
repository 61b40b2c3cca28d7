import { parse_bench_args } from "./args.ts";
import { fleet_hub_bytes_per_origin, fleet_hub_ingest_10_per_push_events_per_s, fleet_hub_ingest_events_per_s } from "./fleet_hub_ingest.ts";
import { fleet_spoke_traffic_10k_vs_100_ratio } from "./fleet_spoke_traffic.ts";
import type { Benchmark } from "./types.ts";

/**
 * Fleet benchmarks of 10 000 spokes take minutes each, so a whole-suite run
 * leaves them out: one runs only when `--only` names it, or when `--filter`
 * starts with its `named_by` prefix (and is a prefix of its name):
 *
 *   bun run bench --only fleet_spoke_traffic_10k_vs_100_ratio
 *   bun run bench --filter fleet_spoke_traffic_10k   # the 10 000 vs 100 spokes traffic ratio
 *   bun run bench --filter fleet_hub                 # hub ingest rates and memory per origin
 *   bun run bench --filter fleet_hub_ingest          # only the ingest rates
 *   bun run bench --filter fleet_hub_bytes           # only the memory per origin
 */
const named_only: readonly { named_by: string; bench: Benchmark }[] = [
  { named_by: "fleet_spoke_traffic_10k", bench: fleet_spoke_traffic_10k_vs_100_ratio },
  { named_by: "fleet_hub", bench: fleet_hub_ingest_events_per_s },
  { named_by: "fleet_hub", bench: fleet_hub_ingest_10_per_push_events_per_s },
  { named_by: "fleet_hub", bench: fleet_hub_bytes_per_origin },
];

/** The named-only benchmarks the command line `argv` (bench.ts's arguments) names; none when it names none or does not parse. */
export function fleet_named_only(argv: readonly string[]): Benchmark[] {
  let args: ReturnType<typeof parse_bench_args>;
  try {
    args = parse_bench_args(argv);
  } catch {
    return [];
  }
  const { filter, only } = args;
  return named_only
    .filter(({ named_by, bench }) => only.includes(bench.name) || (filter.startsWith(named_by) && bench.name.startsWith(filter)))
    .map(({ bench }) => bench);
}
