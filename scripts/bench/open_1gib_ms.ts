import { open_time } from "./open_time.ts";
import type { Benchmark } from "./types.ts";

const max_ratio = 2;

export const open_1gib_ms: Benchmark = {
  name: "open_1gib_ms",
  unit: "ms",
  description: "Log.open of a 1 GiB log (16 full segments, the last scanned as the tail); baseline: open_64mib_ms",
  target: { text: `ratio <= ${max_ratio}`, met: (r) => r.ratio !== null && r.ratio <= max_ratio },
  async run(ctx) {
    const small = await open_time(ctx, 1);
    const big = await open_time(ctx, 16);
    return { value: big.median_ms, baseline: small.median_ms, ratio: big.median_ms / small.median_ms };
  },
};
