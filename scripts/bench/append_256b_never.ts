import { append_payload_bytes, never_rates } from "./append_never_rate.ts";
import type { Benchmark } from "./types.ts";

const min_events_per_s = 1_500_000;
const min_ratio = 0.8;

export const append_256b_never: Benchmark = {
  name: "append_256b_never",
  unit: "events/s",
  description: `append() of ${append_payload_bytes} B payloads, sync=never, timed until closed; baseline: raw sequential write of the same bytes in 64 KiB write() calls + fdatasync (as events/s)`,
  target: {
    text: `ratio >= ${min_ratio} and >= ${min_events_per_s / 1e6}M/s`,
    met: (r) => r.ratio !== null && r.ratio >= min_ratio && r.value >= min_events_per_s,
  },
  async run(ctx) {
    const rates = await never_rates(ctx);
    // Baseline in events/s of the same payload size, so ratio = our MB/s / raw MB/s.
    const baseline = rates.raw_bytes_per_s / append_payload_bytes;
    return { value: rates.log_events_per_s, baseline, ratio: rates.log_events_per_s / baseline };
  },
};
