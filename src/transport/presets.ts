/**
 * Broker presets: what a broker enforces or does differently that the
 * transport and the replicator must honour rather than trip over. The
 * replicator's max_packet_bytes must match.
 */
export interface BrokerPreset {
  max_packet_bytes: number;
  /** Publishes per second per connection; null for none. */
  publishes_per_s: number | null;
  /** Bytes per second per connection; null for none. */
  bytes_per_s: number | null;
  /** Topic filters one connection may subscribe to; null for no known limit. */
  subscriptions_max: number | null;
  /** Topic filters one SUBSCRIBE may carry (AWS IoT Core closes the connection past 8); null for no known limit. */
  filters_per_subscribe_max: number | null;
  /** MQTT version spoken: 5, or 4 (3.1.1) for brokers that close an MQTT 5 CONNECT. */
  protocol_version: 4 | 5;
  /**
   * Whether a new subscriber to `P/+/vv` gets every replica's retained vv
   * and status. When not (RabbitMQ: retained messages reach exact-topic
   * subscriptions only, and stay on the cluster node that got them),
   * replicas republish theirs when a peer comes online (announce_to_new_peers).
   */
  retained_to_wildcards: boolean;
  /**
   * QoS of this replica's subscriptions. RabbitMQ keeps a QoS 1
   * subscription in a durable queue on the node the client first used, so
   * while that node is down the client cannot subscribe anywhere in the
   * cluster (measured: the connection is closed after CONNACK); QoS 0
   * subscriptions live with the connection and fail over. Sync repairs
   * what an at-most-once delivery loses (vv and repair requests).
   */
  subscribe_qos: 0 | 1;
}

export const broker_presets = {
  /** Any broker without published limits (mosquitto, EMQX, HiveMQ, ...). */
  generic: { max_packet_bytes: 128 * 1024, publishes_per_s: null, bytes_per_s: null, subscriptions_max: null, filters_per_subscribe_max: null, protocol_version: 5, retained_to_wildcards: true, subscribe_qos: 1 },
  /** AWS IoT Core: 128 KiB per message, 100 publishes/s, 512 KiB/s and 50 subscriptions per connection, 8 filters per SUBSCRIBE. */
  aws_iot: { max_packet_bytes: 128 * 1024, publishes_per_s: 100, bytes_per_s: 512 * 1024, subscriptions_max: 50, filters_per_subscribe_max: 8, protocol_version: 5, retained_to_wildcards: true, subscribe_qos: 1 },
  /** RabbitMQ's MQTT plugin (3.x): MQTT 3.1.1 only; retained messages per node and to exact-topic subscriptions only; QoS 1 subscriptions pinned to a node. */
  rabbitmq: { max_packet_bytes: 128 * 1024, publishes_per_s: null, bytes_per_s: null, subscriptions_max: null, filters_per_subscribe_max: null, protocol_version: 4, retained_to_wildcards: false, subscribe_qos: 0 },
} as const satisfies Record<string, BrokerPreset>;

export type BrokerPresetName = keyof typeof broker_presets;

/** The transport preset for a config's `mqtt.preset` (mosquitto, EMQX and HiveMQ need nothing special). */
export function transport_preset(config_preset: "mosquitto" | "aws-iot" | "rabbitmq" | "emqx" | "hivemq"): BrokerPresetName {
  if (config_preset === "aws-iot") return "aws_iot";
  if (config_preset === "rabbitmq") return "rabbitmq";
  return "generic";
}
