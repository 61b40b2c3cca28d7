import { durable_appenders } from "./durable_appenders.ts";
import type { Benchmark } from "./types.ts";

const appenders = 1;
const min_ratio = 0.8;

export const append_durable_1: Benchmark = {
  name: "append_durable_1",
  unit: "events/s",
  description: "one appender, sync=always, awaiting each append; baseline: the disk's rate of 4 KiB write + fdatasync, measured in slices alternating with the log's",
  target: { text: `ratio >= ${min_ratio}`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    const run = await durable_appenders(ctx, appenders);
    return { value: run.events_per_s, baseline: run.fdatasync_per_s, ratio: run.events_per_s / run.fdatasync_per_s };
  },
};
