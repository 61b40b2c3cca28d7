import { open_times } from "./open_time.ts";
import type { Benchmark } from "./types.ts";

const max_ratio = 2;

export const open_1gib_ms: Benchmark = {
  name: "open_1gib_ms",
  unit: "ms",
  description: "Log.open of a 1 GiB log (16 full segments, the last scanned as the tail); baseline: open_64mib_ms",
  target: { text: `ratio <= ${max_ratio}`, met: (r) => r.ratio !== null && r.ratio <= max_ratio },
  async run(ctx) {
    const t = await open_times(ctx);
    return { value: t.big_ms, baseline: t.small_ms, ratio: t.big_ms / t.small_ms };
  },
};
