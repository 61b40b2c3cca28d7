import { z } from "zod";
import { format_bytes } from "../lib/units.ts";
import { is_origin } from "../log/ids.ts";
import { retention_segments_min, segment_size_config_min_bytes, segment_size_max_bytes, sync_interval_max_ms, sync_modes } from "../log/log_options.ts";
import { retention_policies } from "../log/retention.ts";
import { type SyncLimits, resolve_sync_limits, sync_defaults, sync_limit_problems } from "../sync/sync_options.ts";
import { prefix_default } from "../sync/topics.ts";
import { type ValidatorSpec, validator_registry } from "../validators/registry.ts";
import { config_error_map, describe_value } from "./messages.ts";
import { duration, size } from "./units_schema.ts";

// zod compiles a fast parser for each object schema with new Function(): the config is parsed once, and that code
// generation wakes JavaScriptCore's parser and compiler in a binary that otherwise runs precompiled bytecode (issue 16).
z.config({ jitless: true });

/**
 * The config file format, in zod: what the YAML may say, with defaults.
 * load.ts turns its output into the resolved Config (secrets, paths).
 * scripts/gen-schema.ts turns it into config/interlog.schema.json.
 */

export const mqtt_presets = ["mosquitto", "aws-iot", "rabbitmq", "emqx", "hivemq"] as const;
export type MqttPreset = (typeof mqtt_presets)[number];
/** AWS IoT Core refuses MQTT packets above 128 KiB. */
export const aws_iot_packet_max_bytes = 128 * 1024;
/** The MQTT protocol's own ceiling (remaining length of 268,435,455 bytes). */
export const mqtt_packet_max_bytes = 268_435_455;
export const mqtt_packet_min_bytes = 4 * 1024;
const segment_page_bytes = 4096;
const mqtt_protocols = ["mqtt:", "mqtts:", "ws:", "wss:"];
export const tls_protocols = ["mqtts:", "wss:"];

const env_var_name = (description: string) =>
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: (issue) => `expected the name of an environment variable (letters, digits, _), got ${describe_value(issue.input)}` })
    .meta({ description });

const file_path = (description: string) => z.string().min(1).meta({ description: `${description}; relative paths are from the working directory` });

/** A place to listen: `HOST:PORT`, with an IPv6 host in brackets (`[::1]:8080`). */
export interface ListenAddress {
  host: string;
  port: number;
}

export function parse_listen(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

/** A DNS name (or dotted IPv4), optionally fully qualified with a trailing dot. */
const host_name_pattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function is_loopback_host(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const log_section = z
  .strictObject({
    segment_size: size("size of each preallocated segment file; a multiple of 4 KiB")
      .refine((bytes) => bytes >= segment_size_config_min_bytes && bytes % segment_page_bytes === 0, {
        error: `expected a multiple of 4KiB of at least ${segment_size_config_min_bytes / 2 ** 20}MiB (a segment holds whole signed ranges of peers' events), e.g. 64MiB`,
      })
      .refine((bytes) => bytes <= segment_size_max_bytes, { error: `expected at most ${segment_size_max_bytes / 2 ** 30}GiB (one segment is mapped whole)` })
      .prefault("64MiB"),
    sync: z.enum(sync_modes).default("always").meta({
      description: "always: an append returns once it is on disk (fsync); interval: fsync every sync_interval; never: leave it to the OS",
    }),
    sync_interval: duration("how often to fsync when sync is interval")
      .refine((ms) => ms >= 1, { error: "expected at least 1ms" })
      .refine((ms) => ms <= sync_interval_max_ms, { error: "expected at most 1h (an interval fsync protects only what it has synced)" })
      .prefault("10ms"),
  })
  .meta({ description: "the local log on disk" });

/** Nodes of one cluster a replica may be given to fail over between. */
export const mqtt_urls_max = 16;
export const mqtt_protocol_versions = ["5", "3.1.1"] as const;

const mqtt_url = z
  .string()
  .superRefine((text, ctx) => {
        let url: URL | undefined;
        try {
          url = new URL(text);
        } catch {}
        if (url === undefined || !mqtt_protocols.includes(url.protocol) || url.hostname === "") {
          ctx.addIssue({ code: "custom", message: `expected a broker URL like mqtt://127.0.0.1:1883 or mqtts://broker.example.com:8883, got ${describe_value(text)}` });
        } else if (url.username !== "" || url.password !== "") {
          ctx.addIssue({ code: "custom", message: "put the user name in mqtt.username and the password in an environment variable named by mqtt.password_env, not in the URL" });
        }
      });

const mqtt_section = z
  .strictObject({
    url: z
      .union([
        mqtt_url,
        z
          .array(mqtt_url)
          .min(1, { error: "expected at least one broker URL" })
          .max(mqtt_urls_max, { error: `expected at most ${mqtt_urls_max} broker URLs` })
          .superRefine((urls, ctx) => {
            const schemes = new Set(urls.map((u) => u.split("://")[0]));
            if (schemes.size > 1) ctx.addIssue({ code: "custom", message: `expected URLs of one scheme (nodes of one cluster), got ${[...schemes].join(", ")}` });
            const paths = new Set(urls.map((u) => (URL.canParse(u) ? new URL(u).pathname : "")));
            if (paths.size > 1) ctx.addIssue({ code: "custom", message: "expected URLs with one path (nodes of one cluster)" });
          }),
      ])
      .default("mqtt://127.0.0.1:1883")
      .meta({
        description:
          "broker URL: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (also ws://, wss://); or a list of a cluster's nodes, tried in turn (a replica whose node dies moves to the next)",
      }),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, { error: (issue) => `expected topic levels of letters, digits, _ . - separated by /, got ${describe_value(issue.input)}` })
      .max(64, { error: "expected at most 64 characters (every topic carries the prefix, and a message keeps room for its topic)" })
      .default(prefix_default)
      .meta({ description: "topic prefix: this replica publishes under PREFIX/<replica id>/" }),
    username: z.string().min(1).optional().meta({ description: "MQTT user name" }),
    password_env: env_var_name("environment variable holding the MQTT password").optional(),
    max_packet: size("largest MQTT packet to send; sync chunks batches below it")
      .refine((bytes) => bytes >= mqtt_packet_min_bytes && bytes <= mqtt_packet_max_bytes, {
        error: `expected from ${format_bytes(mqtt_packet_min_bytes)} to ${format_bytes(mqtt_packet_max_bytes)}`,
      })
      .prefault("128KiB"),
    preset: z.enum(mqtt_presets).default("mosquitto").meta({ description: "the broker's kind, for its limits and ways (see the README's broker table)" }),
    protocol: z
      .enum(mqtt_protocol_versions, { error: (issue) => `expected "5" or "3.1.1", got ${describe_value(issue.input)}` })
      .optional()
      .meta({ description: 'MQTT version: "5" (default), or "3.1.1" for brokers that speak only that (the rabbitmq preset sets it)' }),
    ca_file: file_path("PEM file of the CA that signed the broker's certificate (TLS only)").optional(),
    cert_file: file_path("PEM client certificate, for brokers that authenticate clients by certificate (TLS only)").optional(),
    key_file: file_path("PEM private key of cert_file (TLS only)").optional(),
  })
  .superRefine((mqtt, ctx) => {
    const first = typeof mqtt.url === "string" ? mqtt.url : (mqtt.url[0] ?? "");
    const tls = tls_protocols.some((protocol) => first.startsWith(protocol.slice(0, -1) + "://"));
    for (const key of ["ca_file", "cert_file", "key_file"] as const) {
      if (mqtt[key] !== undefined && !tls) {
        ctx.addIssue({ code: "custom", path: [key], message: `${key} is only used with TLS; use an mqtts:// (or wss://) url, or remove ${key}` });
      }
    }
    if ((mqtt.cert_file === undefined) !== (mqtt.key_file === undefined)) {
      const missing = mqtt.cert_file === undefined ? "cert_file" : "key_file";
      const given = missing === "cert_file" ? "key_file" : "cert_file";
      ctx.addIssue({ code: "custom", path: [given], message: `${given} needs ${missing} too (a client certificate and its key go together)` });
    }
    if (mqtt.preset === "aws-iot") {
      if (!tls) ctx.addIssue({ code: "custom", path: ["url"], message: "AWS IoT Core accepts only TLS connections; use an mqtts:// url" });
      if (mqtt.max_packet > aws_iot_packet_max_bytes) {
        ctx.addIssue({ code: "custom", path: ["max_packet"], message: `AWS IoT Core accepts packets of at most ${aws_iot_packet_max_bytes / 1024}KiB; got ${mqtt.max_packet} bytes` });
      }
    }
    if (mqtt.preset === "rabbitmq" && mqtt.prefix.includes(".")) {
      ctx.addIssue({ code: "custom", path: ["prefix"], message: `RabbitMQ maps MQTT's "/" to "." in routing keys, so a "." in the prefix would split a topic level; use letters, digits, _ and - (got "${mqtt.prefix}")` });
    }
    if (mqtt.preset === "rabbitmq" && mqtt.protocol === "5") {
      ctx.addIssue({ code: "custom", path: ["protocol"], message: 'RabbitMQ\'s MQTT plugin speaks only MQTT 3.1.1; remove protocol or set it to "3.1.1"' });
    }
  })
  .meta({ description: "the MQTT broker to sync through; leave out to run offline" });

/**
 * replication.* keys that bound what peers can make this replica hold or
 * send, and the sync limit each sets (src/sync/sync_options.ts). Absent,
 * sync's default applies (the Config carries undefined).
 */
export const replication_limit_keys = {
  peers_max: "peers_max",
  claims_per_peer_max: "claims_per_peer_max",
  origins_max: "origins_max",
  gap_buffer_max: "gap_buffer_max_bytes",
  gap_buffer_per_peer_max: "gap_buffer_per_peer_max_bytes",
  reassembly_max: "reassembly_max_bytes",
  reassembly_per_peer_max: "reassembly_per_peer_max_bytes",
  answer_rate_per_requester: "answer_rate_per_requester_bytes_per_s",
  answer_burst_per_requester: "answer_burst_per_requester_bytes",
  want_timeout: "want_timeout_ms",
  want_deadline: "want_deadline_ms",
  peer_cooldown: "peer_cooldown_ms",
} as const satisfies Record<string, keyof SyncLimits>;

const d = sync_defaults;
const count = (description: string, default_count: number) =>
  z
    .number({ error: (issue) => `expected a whole number, got ${describe_value(issue.input)}` })
    .int({ error: (issue) => `expected a whole number, got ${describe_value(issue.input)}` })
    .min(1, { error: "expected at least 1" })
    .optional()
    .meta({ description: `${description} (default ${default_count})` });
const limit_size = (description: string, default_bytes: number) => size(`${description} (default ${format_bytes(default_bytes)})`).optional();
const limit_duration = (description: string, default_ms: number) => duration(`${description} (default ${default_ms}ms)`).optional();

const replication_section = z
  .strictObject({
    pull: z
      .array(z.string())
      .min(1)
      .superRefine((pull, ctx) => {
        pull.forEach((entry, i) => {
          if (entry === "*") {
            if (pull.length > 1) ctx.addIssue({ code: "custom", path: [i], message: `"*" (every replica) must be the only entry` });
          } else if (!is_origin(entry)) {
            ctx.addIssue({ code: "custom", path: [i], message: `expected "*" or a replica id (16 lowercase hex digits, as interlog status shows), got ${describe_value(entry)}` });
          }
        });
      })
      .default(["*"])
      .meta({ description: `whose events this replica fetches: ["*"] for every replica, or a list of replica ids` }),
    peer_events_max: size(
      "disk quota for events of other replicas (synced events): record bytes they may take; beyond it they are dropped and local appends keep the rest (default: half of what the log could use at start, its files plus the free space)",
    ).optional(),
    peers_max: count("replicas tracked; messages from further ones are dropped", d.peers_max),
    claims_per_peer_max: count("origins one peer's version vector is remembered for", d.claims_per_peer_max),
    origins_max: count("origins whose sources are remembered, all peers together; at least twice claims_per_peer_max and more than the fleet's replicas", d.origins_max),
    gap_buffer_max: limit_size("memory for events that arrived out of order, all peers together", d.gap_buffer_max_bytes),
    gap_buffer_per_peer_max: limit_size("the same for one peer; at most half of gap_buffer_max", d.gap_buffer_per_peer_max_bytes),
    reassembly_max: limit_size("memory for large events arriving in fragments, all peers together", d.reassembly_max_bytes),
    reassembly_per_peer_max: limit_size("the same for one peer; at least one largest event, at most half of reassembly_max", d.reassembly_per_peer_max_bytes),
    answer_rate_per_requester: limit_size("repair answers sent to one requester per second; keep it below the link's rate", d.answer_rate_per_requester_bytes_per_s),
    answer_burst_per_requester: limit_size("repair answer bytes one requester may get at once", d.answer_burst_per_requester_bytes),
    want_timeout: limit_duration("a repair request whose answer brings nothing for this long is given up and the peer asked last", d.want_timeout_ms),
    want_deadline: limit_duration("a repair request is given up this long after it was sent, whatever its answer still sends", d.want_deadline_ms),
    peer_cooldown: limit_duration("a peer that wasted a repair request is asked last for this long", d.peer_cooldown_ms),
  })
  .superRefine((replication, ctx) => {
    const options: Record<string, number> = {};
    for (const [key, option] of Object.entries(replication_limit_keys)) {
      const value = replication[key as keyof typeof replication_limit_keys];
      if (value !== undefined) options[option] = value;
    }
    const yaml_key = Object.fromEntries(Object.entries(replication_limit_keys).map(([key, option]) => [option, key]));
    for (const problem of sync_limit_problems(resolve_sync_limits(options))) {
      const key = yaml_key[problem.key];
      // Limits that are not in the file are reported on the section.
      const in_file = key !== undefined && replication[key as keyof typeof replication] !== undefined;
      ctx.addIssue({ code: "custom", path: in_file ? [key] : [], message: in_file ? problem.message : `${key ?? problem.key}: ${problem.message}` });
    }
  })
  .meta({ description: "which replicas' events to hold, and the limits on what peers can make this replica hold or send" });

/** reserve_own when retention leaves it out: this share of max_bytes is kept for the replica's own events. */
export const reserve_own_share_default = 0.1;

const retention_section = z
  .strictObject({
    max_bytes: size(
      `disk budget for the data directory's segment files (the spare included); at least ${retention_segments_min} segments (log.segment_size). At the budget the oldest segments go as the policy allows`,
    ),
    policy: z.enum(retention_policies).default("drop-acked").meta({
      description:
        "drop-acked: delete the oldest segments whose events every upstream holds, and refuse appends (LOG_FULL, naming the upstream) when none may go; drop-oldest: delete the oldest segment even if no upstream holds it (counted as lost); reject: never delete, LOG_FULL at the budget",
    }),
    upstreams: z
      .array(
        z.string().regex(/^[0-9a-f]{16}$/, {
          error: (issue) => `expected a replica id (16 lowercase hex digits, as interlog status shows), got ${describe_value(issue.input)}`,
        }),
      )
      .min(1)
      .optional()
      .meta({
        description:
          "replica ids whose durable version vector counts as the acknowledgement drop-acked waits for; default: every peer that pulls the origin (as its vv says), so a peer that pulls but stays offline holds pruning back",
      }),
    reserve_own: size(
      `share of max_bytes that other replicas' synced events may not use (replication.peer_events_max becomes at most max_bytes minus this); default ${reserve_own_share_default * 100}% of max_bytes`,
    ).optional(),
  })
  .superRefine((retention, ctx) => {
    if (retention.reserve_own !== undefined && retention.reserve_own > retention.max_bytes) {
      ctx.addIssue({
        code: "custom",
        path: ["reserve_own"],
        message: `expected at most max_bytes (${format_bytes(retention.max_bytes)}); got ${format_bytes(retention.reserve_own)}`,
      });
    }
  })
  .meta({ description: "a disk budget and what may be deleted to keep it; leave out and the log only grows" });

const admin_section = z
  .strictObject({
    listen: z
      .string()
      .superRefine((text, ctx) => {
        if (parse_listen(text) === null) {
          ctx.addIssue({ code: "custom", message: `expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got ${describe_value(text)}` });
        }
      })
      .default("127.0.0.1:8080")
      .meta({ description: "HOST:PORT of the admin API and dashboard" }),
    token_env: env_var_name("environment variable holding the bearer token the admin API requires").optional(),
    allowed_hosts: z
      .array(
        z
          .string()
          .max(253)
          .regex(host_name_pattern, { error: (issue) => `expected a host name such as truck-0042.local (no scheme, port or path), got ${describe_value(issue.input)}` })
          .transform((name) => name.toLowerCase().replace(/\.$/, "")),
      )
      .default([])
      .meta({
        description:
          "names this replica is reached by in a browser or client, besides localhost and IP addresses; requests naming another host (DNS rebinding) or sent by pages of another site are refused with 403",
      }),
    app: z.boolean().default(false).meta({
      description: "serve the browser replica page (built by npm run browser) at /app/ without the token; serve refuses to start when its files are missing",
    }),
    app_dir: file_path("directory of the built browser replica page; default: the project's dist/browser, or share/interlog/app beside an installed binary (/usr/local/share/interlog/app)").optional(),
  })
  .superRefine((admin, ctx) => {
    const listen = parse_listen(admin.listen);
    if (listen !== null && !is_loopback_host(listen.host) && admin.token_env === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["listen"],
        message: `listening on ${listen.host} opens the admin API beyond this machine; set admin.token_env to the name of an environment variable holding a token`,
      });
    }
  })
  .meta({ description: "the admin HTTP API and dashboard" });

const validator_entry_description = "a validator name such as max-size, or NAME: {options} such as max-size: {max_bytes: 64KiB}";

/**
 * One entry of `validators.append` / `validators.sync`: `NAME` or
 * `NAME: {options}`. Checked against the registry here so that a bad name or
 * option is reported with its line; the JSON Schema gets the exact shapes
 * from json_schema.ts.
 */
export const validator_entry = z
  .unknown()
  .transform((entry, ctx): ValidatorSpec => {
    let name: string;
    let options: unknown;
    if (typeof entry === "string") {
      name = entry;
      options = {};
    } else if (typeof entry === "object" && entry !== null && !Array.isArray(entry) && Object.keys(entry).length === 1) {
      [[name, options]] = Object.entries(entry);
      if (options === null) options = {};
    } else {
      ctx.addIssue({ code: "custom", message: `expected ${validator_entry_description}; got ${describe_value(entry)}` });
      return z.NEVER;
    }
    const definition = validator_registry.get(name);
    if (definition === undefined) {
      ctx.addIssue({ code: "custom", message: validator_registry.unknown_name_message(name) });
      return z.NEVER;
    }
    const parsed = definition.options.safeParse(options, { error: config_error_map });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: [name, ...issue.path] } as z.core.$ZodRawIssue);
      return z.NEVER;
    }
    return { name, options: options as Record<string, unknown> };
  })
  .meta({ description: validator_entry_description });

const validator_list = (description: string) => z.array(validator_entry).default([]).meta({ description });

const validators_section = z
  .strictObject({
    append: validator_list("validators every local append must pass, in order"),
    sync: validator_list("validators every event arriving from a peer must pass; failures are quarantined"),
  })
  .meta({ description: "compiled-in payload validators (see src/validators/registry.ts)" });

const trust_entry = z
  .string()
  .regex(/^(?:[0-9a-f]{16}|[0-9a-f]{64})$/, {
    error: (issue) => `expected a replica id (16 lowercase hex digits) or public key (64), as interlog status shows; got ${describe_value(issue.input)}`,
  });

const trust_section = z
  .strictObject({
    replicas: z
      .array(trust_entry)
      .min(1)
      .optional()
      .meta({
        description:
          "the only replicas (ids or public keys, as interlog status shows) whose events this replica accepts from peers; others are refused and counted (event_not_trusted). Unset: any replica, its key pinned on first use",
      }),
  })
  .meta({ description: "which replicas' signed events are accepted" });

export const config_file_schema = z
  .strictObject({
    name: z.string().trim().min(1).max(64).optional().meta({ description: "human name of this replica, shown in status and the dashboard (default: the host name); not its id" }),
    data_dir: z.string().min(1).meta({ description: "the directory holding the log, e.g. data_dir: ./data (relative to the working directory)" }),
    log: log_section.prefault({}),
    mqtt: mqtt_section.optional(),
    replication: replication_section.prefault({}),
    admin: admin_section.prefault({}),
    validators: validators_section.prefault({}),
    trust: trust_section.prefault({}),
    retention: retention_section.optional(),
  })
  .superRefine((config, ctx) => {
    const retention = config.retention;
    const min_bytes = retention_segments_min * config.log.segment_size;
    if (retention !== undefined && retention.max_bytes < min_bytes) {
      ctx.addIssue({
        code: "custom",
        path: ["retention", "max_bytes"],
        message: `expected at least ${format_bytes(min_bytes)} (${retention_segments_min} segments of log.segment_size ${format_bytes(config.log.segment_size)}: the active one, one that can be pruned and the spare); got ${format_bytes(retention.max_bytes)}`,
      });
    }
    // Sync publishes what the log calls durable; with `never` that is only in the page cache, and a power cut
    // would take back events peers already hold: the replica would then reissue their seqs with other content.
    if (config.mqtt !== undefined && config.log.sync === "never") {
      ctx.addIssue({
        code: "custom",
        path: ["log", "sync"],
        message: "never cannot be used with mqtt: peers would be sent events a power cut can take back; use interval (fsync every sync_interval) or always",
      });
    }
  })
  .meta({ title: "InterLog replica configuration" });

/** Sections that may be written as an empty key (`log:`) to mean "all defaults" (mqtt: "offline"). */
export const config_sections = ["log", "mqtt", "replication", "admin", "validators", "trust", "retention"] as const;

export type ConfigFile = z.output<typeof config_file_schema>;
