import { durable_appenders } from "./durable_appenders.ts";
import type { Benchmark } from "./types.ts";

const appenders = 64;
const min_ratio = 25;

export const append_durable_64: Benchmark = {
  name: "append_durable_64",
  unit: "events/s",
  description: "64 concurrent appenders, sync=always, group commit; baseline: the disk's rate of 4 KiB write + fdatasync, measured in slices alternating with the log's",
  target: { text: `ratio >= ${min_ratio}`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    const run = await durable_appenders(ctx, appenders);
    return { value: run.events_per_s, baseline: run.fdatasync_per_s, ratio: run.events_per_s / run.fdatasync_per_s };
  },
};
