import { catchup, catchup_events } from "./sync_catchup.ts";
import { live_rates } from "./sync_live.ts";
import type { Benchmark } from "./types.ts";

const min_ratio = 0.5;

export const sync_catchup_100k_s: Benchmark = {
  name: "sync_catchup_100k_s",
  unit: "s",
  description:
    `a fresh replica fetches ${catchup_events / 1e3}k x 256 B events it missed (repair requests through a local mosquitto; the serving replica's answer_rate_per_requester raised to 256 MiB/s, a LAN hub), start to all durable; ` +
    `baseline: the same events at the live sync rate (sync_256b_events_per_s); ratio = catch-up rate / live rate`,
  target: { text: `ratio >= ${min_ratio}`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    const live = await live_rates(ctx);
    const result = await catchup(ctx);
    const live_seconds = catchup_events / live.sync_events_per_s;
    return { value: result.seconds, baseline: live_seconds, ratio: live_seconds / result.seconds };
  },
};

export const sync_catchup_100k_peak_rss_bytes: Benchmark = {
  name: "sync_catchup_100k_peak_rss_bytes",
  unit: "bytes",
  description:
    `peak resident memory (VmHWM) of a process whose only job is the replica catching up the ${catchup_events / 1e3}k events of sync_catchup_100k_s ` +
    "(runtime, log, MQTT client; segment pages it maps included); baseline: its resident memory with the log open, before the catch-up",
  async run(ctx) {
    const { child } = await catchup(ctx);
    return { value: child.peak_rss_bytes, baseline: child.rss_before_bytes, ratio: null };
  },
};
