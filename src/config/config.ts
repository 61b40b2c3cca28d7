/**
 * The replica's configuration, resolved: sizes in bytes, durations in ms,
 * secrets read from the environment, paths absolute. Load it with
 * load_config(file) from ./load.ts (which imports these types, so this file
 * imports nothing from it); the file format is in ./schema.ts.
 */
import type { SyncMode } from "../log/log_options.ts";
import type { RetentionPolicy } from "../log/retention.ts";
import type { ValidatorSpec } from "../validators/registry.ts";
import type { SyncLimits } from "../sync/sync_options.ts";
import type { MqttPreset, replication_limit_keys } from "./schema.ts";

export type { MqttPreset } from "./schema.ts";
export type { ValidatorSpec } from "../validators/registry.ts";

export interface Config {
  /** The config file as given (for messages). */
  file: string;
  /** Human name of the replica (default: host name); never its id. */
  name: string;
  /** Absolute path of the data directory. */
  data_dir: string;
  log: LogConfig;
  /** null: no broker configured, run offline with sync off. */
  mqtt: MqttConfig | null;
  replication: ReplicationConfig;
  admin: AdminConfig;
  validators: ValidatorsConfig;
  trust: TrustConfig;
  /** null: no `retention:` section, the log only grows. */
  retention: RetentionConfig | null;
}

/** The disk budget (issue 13; src/log/retention.ts). */
export interface RetentionConfig {
  max_bytes: number;
  policy: RetentionPolicy;
  /** Replica ids whose durable vv acknowledges events; null: every peer that pulls the origin. */
  upstreams: readonly string[] | null;
  /** Of max_bytes, what synced events may not take (default reserve_own_share_default of it). */
  reserve_own_bytes: number;
}

export interface TrustConfig {
  /** Replica ids or public keys (hex) whose events are accepted from peers; null: trust on first use. */
  replicas: string[] | null;
}

export interface LogConfig {
  segment_size_bytes: number;
  sync: SyncMode;
  sync_interval_ms: number;
}

export interface MqttConfig {
  /** The first of urls. */
  url: string;
  /** One broker, or the nodes of one cluster, tried in turn. */
  urls: string[];
  /** MQTT version: the preset's unless mqtt.protocol says. */
  protocol_version: 4 | 5;
  /** True for mqtts:// and wss:// urls. */
  tls: boolean;
  prefix: string;
  username: string | null;
  /** Read from the environment variable named by password_env; null when none is configured. */
  password: string | null;
  max_packet_bytes: number;
  preset: MqttPreset;
  /** Absolute paths of PEM files, or null. */
  ca_file: string | null;
  cert_file: string | null;
  key_file: string | null;
}

/** The replication.* limits, by the sync option each sets (src/sync/sync_options.ts); undefined: sync's default. */
export type ReplicationLimits = Partial<Pick<SyncLimits, (typeof replication_limit_keys)[keyof typeof replication_limit_keys]>>;

export interface ReplicationConfig extends ReplicationLimits {
  /** "*" pulls every replica's events; otherwise only these origins (16-hex ids). */
  pull: "*" | readonly string[];
  /** Disk quota for synced events, in record bytes; undefined: half of what the log could use at start (the node resolves it). */
  peer_events_max_bytes?: number;
}

export interface AdminConfig {
  /** As written, e.g. `127.0.0.1:8080`. */
  listen: string;
  host: string;
  port: number;
  /** Bearer token read from the environment variable named by token_env; null: no auth (loopback only). */
  token: string | null;
  /**
   * Host names the admin API answers to besides localhost and IP addresses
   * (lowercase): admin.allowed_hosts, plus the listen host when it is a name.
   */
  allowed_hosts: readonly string[];
  /** Serve the browser replica page at /app/ (admin.app). */
  app: boolean;
  /** Where its built files are (admin.app_dir, resolved); null: the project's dist/browser. */
  app_dir: string | null;
}

export interface ValidatorsConfig {
  /** Run on every local append, in order. Build with build_validator() from src/validators/registry.ts. */
  append: readonly ValidatorSpec[];
  /** Run on every event arriving from a peer. */
  sync: readonly ValidatorSpec[];
}

/** The config with secrets masked, for logs and `status`. */
export function redact_config(config: Config): Config {
  return {
    ...config,
    mqtt: config.mqtt === null ? null : { ...config.mqtt, password: config.mqtt.password === null ? null : "***" },
    admin: { ...config.admin, token: config.admin.token === null ? null : "***" },
  };
}
