import { frame_size_bytes } from "../../src/log/frame.ts";
import { BenchBroker } from "./sync_broker.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import { CountingProxy } from "./sync_counting_proxy.ts";
import { events_per_message, sync_batch_events, sync_inflight_max, sync_payload_bytes, sync_run, sync_window_events } from "./sync_load.ts";
import { raw_mqtt_run } from "./sync_raw_mqtt.ts";
import { BenchReplica, until } from "./sync_replica.ts";
import type { Benchmark } from "./types.ts";

const wire_events = 50_000;
const max_ratio = 1.1;

interface Links {
  /** Bytes both ways on the sender's link / payload bytes. */
  sender: number;
  /** Bytes both ways on the receiver's link / payload bytes. */
  receiver: number;
}

const worst = (l: Links): number => Math.max(l.sender, l.receiver);

export const sync_wire_overhead_ratio: Benchmark = {
  name: "sync_wire_overhead_ratio",
  unit: "x payload",
  description:
    `TCP bytes (both directions, counted by a relay in front of mosquitto) on the busier of A's and B's links while ${wire_events / 1e3}k x ${sync_payload_bytes} B events ` +
    `sync until A sees B's acknowledgement, / payload bytes; baseline: the same for raw mqtt.js QoS 1 (${events_per_message(sync_payload_bytes)} payloads per message)`,
  target: { text: `<= ${max_ratio}`, met: (r) => r.value <= max_ratio },
  async run(ctx) {
    const pool = payload_pool(sync_payload_bytes);
    const broker = await BenchBroker.start();
    const proxies: CountingProxy[] = [];
    try {
      const proxy_a = await CountingProxy.start(broker.port);
      proxies.push(proxy_a);
      const proxy_b = await CountingProxy.start(broker.port);
      proxies.push(proxy_b);
      const ours = await ours_links(ctx, pool, proxy_a, proxy_b);
      proxy_a.reset();
      proxy_b.reset();
      await raw_mqtt_run({
        url: broker.url,
        pool,
        payload_bytes: sync_payload_bytes,
        events: wire_events,
        batch_events: sync_batch_events,
        events_per_message: events_per_message(sync_payload_bytes),
        window_events: sync_window_events,
        inflight_max: sync_inflight_max,
        port_override: { publisher: proxy_a.port, subscriber: proxy_b.port },
      });
      const payload_bytes = wire_events * sync_payload_bytes;
      const raw: Links = { sender: proxy_a.total_bytes / payload_bytes, receiver: proxy_b.total_bytes / payload_bytes };
      ctx.progress(`raw mqtt.js: sender link ${raw.sender.toFixed(4)}x, receiver link ${raw.receiver.toFixed(4)}x payload`);
      return { value: worst(ours), baseline: worst(raw), ratio: worst(ours) / worst(raw) };
    } finally {
      for (const proxy of proxies) await proxy.stop();
      await broker.stop();
    }
  },
};

async function ours_links(ctx: BenchContext, pool: readonly Uint8Array[], proxy_a: CountingProxy, proxy_b: CountingProxy): Promise<Links> {
  const dir_a = ctx.fresh_dir("wire-a");
  const dir_b = ctx.fresh_dir("wire-b");
  const opened: BenchReplica[] = [];
  try {
    const a = await BenchReplica.open(dir_a, `mqtt://127.0.0.1:${proxy_a.port}`, "a");
    opened.push(a);
    const b = await BenchReplica.open(dir_b, `mqtt://127.0.0.1:${proxy_b.port}`, "b");
    opened.push(b);
    a.start();
    b.start();
    await until(() => a.sees([b]) && b.sees([a]), () => "replicas did not see each other", 10_000);
    // The connect-time exchange (status, vv, subscriptions) is paid once per connection, not per event.
    await Bun.sleep(300);
    proxy_a.reset();
    proxy_b.reset();
    const a_out_before = a.rep.counters.bytes_out;
    const a_messages_before = { ...a.rep.counters.messages_out };
    await sync_run(a, b, pool, wire_events);
    await until(
      () => a.rep.status(Date.now()).peers.find((p) => p.id === b.id)?.lag_events === 0,
      () => "A never saw B's acknowledgement (vv)",
      10_000,
    );
    const payload_bytes = wire_events * sync_payload_bytes;
    const frame_bytes = wire_events * frame_size_bytes(sync_payload_bytes);
    const message_bytes = a.rep.counters.bytes_out - a_out_before;
    const links: Links = { sender: proxy_a.total_bytes / payload_bytes, receiver: proxy_b.total_bytes / payload_bytes };
    const ac = a.rep.counters.messages_out;
    const sent = (kind: keyof typeof ac): number => ac[kind] - a_messages_before[kind];
    ctx.progress(
      `ours: sender link ${links.sender.toFixed(4)}x (up ${proxy_a.up_bytes} B, down ${proxy_a.down_bytes} B), receiver link ${links.receiver.toFixed(4)}x ` +
        `(down ${proxy_b.down_bytes} B, up ${proxy_b.up_bytes} B) for ${payload_bytes} B of payload`,
    );
    ctx.progress(
      `  where A's upstream bytes go: record frames ${(frame_bytes / payload_bytes).toFixed(4)}x payload (40 B header + padding per event), ` +
        `+ CBOR envelopes ${((message_bytes - frame_bytes) / payload_bytes).toFixed(4)}x, + MQTT headers and topics ${((proxy_a.up_bytes - message_bytes) / payload_bytes).toFixed(4)}x; ` +
        `A published ${sent("events")} event, ${sent("vv")} vv, ${sent("to")} repair-answer messages`,
    );
    return links;
  } finally {
    for (const r of opened) await r.close();
    ctx.remove_dir(dir_a);
    ctx.remove_dir(dir_b);
  }
}
