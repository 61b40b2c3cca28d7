import { open_time } from "./open_time.ts";
import type { Benchmark } from "./types.ts";

export const open_64mib_ms: Benchmark = {
  name: "open_64mib_ms",
  unit: "ms",
  description: "Log.open of a 64 MiB log (one full segment, scanned as the tail); median of 5 warm opens",
  async run(ctx) {
    const t = await open_time(ctx, 1);
    return { value: t.median_ms, baseline: null, ratio: null };
  },
};
