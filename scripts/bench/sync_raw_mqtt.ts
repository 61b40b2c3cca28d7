import mqtt, { type MqttClient } from "mqtt";
import { next_turn } from "./appender.ts";
import { until } from "./sync_replica.ts";

/** How the raw baseline is fed: the same shape as the sync benchmark's load. */
export interface RawLoad {
  url: string;
  /** Payloads cycled through (a power-of-two count). */
  pool: readonly Uint8Array[];
  payload_bytes: number;
  events: number;
  /** Events per "append batch": the publisher yields to the event loop after each. */
  batch_events: number;
  /** Events packed into one MQTT message (the replicator's chunk size for this payload size). */
  events_per_message: number;
  /** Published events not yet received by the subscriber; beyond it the publisher waits (as the sync load waits for B). */
  window_events: number;
  /** Unacknowledged QoS 1 publishes at once (the transport's inflight_max). */
  inflight_max: number;
  /** Wraps the client's socket, e.g. to count bytes; default none. */
  port_override?: { publisher: number; subscriber: number };
}

export interface RawRun {
  events_per_s: number;
  seconds: number;
  messages: number;
}

async function connect(url: string, client_id: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { protocolVersion: 5, clientId: client_id, clean: true, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

function port_url(url: string, port: number | undefined): string {
  if (port === undefined) return url;
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

/**
 * The baseline of the sync benchmarks: plain mqtt.js moving the same payload
 * bytes from one client to another through the same broker, QoS 1, in
 * messages of the same event count, with the same in-flight limit and the
 * same pacing. No envelope, no frame headers, no crc, no disk: the most a
 * protocol on this link could reach.
 */
export async function raw_mqtt_run(load: RawLoad): Promise<RawRun> {
  const topic = raw_topic();
  const subscriber = await connect(port_url(load.url, load.port_override?.subscriber), `bench-raw-sub-${topic.split("/")[1]}`);
  try {
    let received_events = 0;
    subscriber.on("message", (_topic, payload) => {
      received_events += payload.length / load.payload_bytes;
    });
    await subscriber.subscribeAsync(topic, { qos: 1 });
    return await raw_publish(load, topic, () => received_events);
  } finally {
    subscriber.end(true);
  }
}

/** A topic of its own for one raw run. */
export function raw_topic(): string {
  return `bench-raw/${process.pid}-${Math.floor(Math.random() * 1e9)}/events`;
}

/**
 * The publishing half of the raw baseline: publishes load.events payloads on
 * `topic` to a subscriber that is already listening and that reports what
 * it received through `received_events` (in this process or another).
 * `on_start` runs once the publisher is connected, as the clock starts.
 */
export async function raw_publish(load: RawLoad, topic: string, received_events: () => number, on_start: () => void | Promise<void> = () => {}): Promise<RawRun> {
  const publisher = await connect(port_url(load.url, load.port_override?.publisher), `bench-raw-pub-${topic.split("/")[1]}`);
  try {
    await on_start();
    const base = received_events();
    const received = (): number => received_events() - base;
    const mask = load.pool.length - 1;
    let inflight = 0;
    let wake: (() => void) | null = null;
    const acked = (): void => {
      inflight--;
      const w = wake;
      wake = null;
      w?.();
    };
    let messages = 0;
    const started = performance.now();
    for (let sent = 0; sent < load.events; ) {
      const batch_end = Math.min(load.events, sent + load.batch_events);
      while (sent < batch_end) {
        const n = Math.min(load.events_per_message, batch_end - sent);
        // One copy per event into the message, as the replicator copies frames out of the log.
        const message = Buffer.allocUnsafe(n * load.payload_bytes);
        for (let i = 0; i < n; i++) message.set(load.pool[(sent + i) & mask], i * load.payload_bytes);
        while (inflight >= load.inflight_max) await new Promise<void>((resolve) => (wake = resolve));
        inflight++;
        publisher.publish(topic, message, { qos: 1 }, acked);
        messages++;
        sent += n;
      }
      await next_turn();
      while (sent - received() > load.window_events) await Bun.sleep(1);
    }
    await until(
      () => received() >= load.events,
      () => `raw subscriber received ${received()} of ${load.events} events`,
    );
    const seconds = (performance.now() - started) / 1000;
    return { events_per_s: load.events / seconds, seconds, messages };
  } finally {
    publisher.end(true);
  }
}
