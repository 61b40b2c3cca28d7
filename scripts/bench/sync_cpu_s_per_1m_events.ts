import { cpu_events, sync_cpu, total_s } from "./sync_cpu.ts";
import { sync_payload_bytes } from "./sync_load.ts";
import type { Benchmark } from "./types.ts";

const load = `${cpu_events / 1e3}k x ${sync_payload_bytes} B events synced live as in sync_256b_events_per_s (sync=always on both)`;

export const sync_cpu_s_per_1m_events: Benchmark = {
  name: "sync_cpu_s_per_1m_events",
  unit: "CPU s",
  description: `CPU seconds (user + sys) per million ${load}, sender A here plus receiver B in a process of its own; baseline: raw mqtt.js publisher plus subscriber (a process of its own)`,
  async run(ctx) {
    const c = await sync_cpu(ctx);
    return { value: c.total_s, baseline: c.raw_total_s, ratio: c.total_s / c.raw_total_s };
  },
};

export const sync_cpu_s_per_1m_events_sender: Benchmark = {
  name: "sync_cpu_s_per_1m_events_sender",
  unit: "CPU s",
  description: `CPU seconds per million ${load}, on the sender (A and the load appending to it); baseline: the raw mqtt.js publisher`,
  async run(ctx) {
    const c = await sync_cpu(ctx);
    return { value: total_s(c.sender), baseline: total_s(c.raw_publisher), ratio: total_s(c.sender) / total_s(c.raw_publisher) };
  },
};

export const sync_cpu_s_per_1m_events_receiver: Benchmark = {
  name: "sync_cpu_s_per_1m_events_receiver",
  unit: "CPU s",
  description: `CPU seconds per million ${load}, on the receiver (B, in a process of its own); baseline: the raw mqtt.js subscriber`,
  async run(ctx) {
    const c = await sync_cpu(ctx);
    return { value: total_s(c.receiver), baseline: total_s(c.raw_subscriber), ratio: total_s(c.receiver) / total_s(c.raw_subscriber) };
  },
};
