import type { ReplicatorOptions } from "../../src/sync/replicator.ts";
import type { MqttTransportOptions } from "../../src/transport/mqtt_transport.ts";
import { Mosquitto } from "./mosquitto.ts";
import { RabbitMq } from "./rabbitmq.ts";

/**
 * The brokers the sync integration tests run against (the broker matrix):
 * each started for real by the harness. `options` is what a replica needs
 * on that broker, as `mqtt.preset` would set it: RabbitMQ's MQTT plugin
 * speaks 3.1.1 only and does not hand retained vvs to wildcard
 * subscriptions, so replicas announce themselves to new peers.
 */
export const broker_kinds = ["mosquitto", "rabbitmq"] as const;
export type BrokerKind = (typeof broker_kinds)[number];

export interface TestBroker {
  readonly kind: BrokerKind;
  readonly url: string;
  readonly protocol_version: 4 | 5;
  /** Replica options this broker needs (merged under a test's own). */
  readonly options: { transport: Partial<MqttTransportOptions>; replicator: Partial<Omit<ReplicatorOptions, "log">> };
  /** A crash: mosquitto forgets everything (no persistence); a RabbitMQ node keeps its disk state. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function start_broker(kind: BrokerKind): Promise<TestBroker> {
  if (kind === "mosquitto") {
    const m = await Mosquitto.start();
    return {
      kind,
      url: m.url,
      protocol_version: 5,
      options: { transport: {}, replicator: {} },
      kill: () => m.kill(),
      start: () => m.start(),
      stop: () => m.stop(),
    };
  }
  const r = await RabbitMq.start();
  return {
    kind,
    url: r.url,
    protocol_version: 4,
    options: { transport: { protocol_version: 4, subscribe_qos: 0 }, replicator: { announce_to_new_peers: true } },
    kill: () => r.kill(),
    start: () => r.start(),
    stop: () => r.stop(),
  };
}
