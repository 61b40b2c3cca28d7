/**
 * Broker presets: limits a broker enforces that the transport must honour
 * rather than trip over. The replicator's max_packet_bytes must match.
 */
export interface BrokerPreset {
  max_packet_bytes: number;
  /** Publishes per second per connection; null for none. */
  publishes_per_s: number | null;
  /** Bytes per second per connection; null for none. */
  bytes_per_s: number | null;
  /** Topic filters one connection may subscribe to; null for no known limit. */
  subscriptions_max: number | null;
}

export const broker_presets = {
  /** Any broker without published limits (mosquitto, EMQX, ...). */
  generic: { max_packet_bytes: 128 * 1024, publishes_per_s: null, bytes_per_s: null, subscriptions_max: null },
  /** AWS IoT Core: 128 KiB per message, 100 publishes/s, 512 KiB/s and 50 subscriptions per connection. */
  aws_iot: { max_packet_bytes: 128 * 1024, publishes_per_s: 100, bytes_per_s: 512 * 1024, subscriptions_max: 50 },
} as const satisfies Record<string, BrokerPreset>;

export type BrokerPresetName = keyof typeof broker_presets;
