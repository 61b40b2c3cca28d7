import { open_times } from "./open_time.ts";
import type { Benchmark } from "./types.ts";

export const open_64mib_ms: Benchmark = {
  name: "open_64mib_ms",
  unit: "ms",
  description: "Log.open of a 64 MiB log (one full segment, scanned as the tail); median of 7 warm opens, alternating with open_1gib_ms",
  async run(ctx) {
    const t = await open_times(ctx);
    return { value: t.small_ms, baseline: null, ratio: null };
  },
};
