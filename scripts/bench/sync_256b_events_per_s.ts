import { live_events, live_rates } from "./sync_live.ts";
import { events_per_message, sync_batch_events, sync_payload_bytes, sync_window_events } from "./sync_load.ts";
import type { Benchmark } from "./types.ts";

const min_ratio = 0.8;

export const sync_256b_events_per_s: Benchmark = {
  name: "sync_256b_events_per_s",
  unit: "events/s",
  description:
    `${live_events / 1e3}k x ${sync_payload_bytes} B events, append (batches of ${sync_batch_events}, sync=always) on A to durable on B through a local mosquitto, ` +
    `at most ${sync_window_events / 1e3}k ahead; baseline: raw mqtt.js QoS 1 of the same payloads, ${events_per_message(sync_payload_bytes)} per message, same pacing`,
  target: { text: `ratio >= ${min_ratio}`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    const rates = await live_rates(ctx);
    return { value: rates.sync_events_per_s, baseline: rates.raw_events_per_s, ratio: rates.sync_events_per_s / rates.raw_events_per_s };
  },
};
