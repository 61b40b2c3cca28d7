import { InterlogError } from "../lib/errors.ts";
import { verify_async } from "../log/ed25519_verify.ts";
import { Log } from "../log/log.ts";
import { Replicator } from "../sync/replicator.ts";
import { MqttTransport } from "../transport/mqtt_transport.ts";
import { type BrokerPresetName, broker_presets } from "../transport/presets.ts";
import { build_validator } from "../validators/registry.ts";
import { load_or_create_key } from "./key_store.ts";
import { IndexedDbPageStore } from "./storage/indexeddb_page_store.ts";
import { PagedFileIO } from "./storage/paged_file_io.ts";

/** Where the broker is and what this tab follows; remembered across reloads. */
export interface BrokerSettings {
  /** ws:// or wss:// URL of the broker's MQTT-over-WebSocket listener (with its path, e.g. /ws or /mqtt). */
  url: string;
  username?: string;
  password?: string;
  /** Topic prefix of the fleet (default "interlog", as on the devices). */
  prefix?: string;
  /** The broker's kind (default generic MQTT 3.1.1, which every broker speaks); "rabbitmq" for RabbitMQ's web_mqtt. */
  preset?: BrokerPresetName;
  /** Origins to replicate, or "*" (default): a phone follows a few trucks. */
  pull?: "*" | string[];
}

export interface PageEvent {
  id: string;
  origin: string;
  seq: number;
  time_ms: number;
  payload: Uint8Array;
}

export interface PeerView {
  id: string;
  online: boolean | null;
  lag_events: number;
}

export interface PageStatus {
  id: string;
  online: boolean;
  writer: boolean;
  /** The browser promised to keep this page's storage (navigator.storage.persist); null: unknown. */
  persistent: boolean | null;
  broker: { url: string; connected: boolean; last_error: string | null } | null;
  peers: PeerView[];
  events: number;
}

/**
 * Segments of 4 MiB: a tab holds its whole log in memory (PagedFileIO), and
 * a segment is the unit retention prunes, so small ones keep both in check.
 */
export const browser_segment_size_bytes = 4 * 1024 * 1024;
/** The log's directory inside the tab's storage. */
const data_dir = "/interlog";

/** The validators a device runs by default (config/default.yaml): payloads up to 64 KiB. */
const default_validators = [{ name: "max-size", options: {} }];

/**
 * A full replica in a browser tab: the device's Log on IndexedDB (through
 * PagedFileIO), signing with the tab's WebCrypto key, and the device's
 * Replicator and MqttTransport over MQTT-over-WebSocket, verifying with
 * WebCrypto. Only the tab holding the writer lock opens one (tab_role.ts).
 */
export class BrowserReplica {
  private replicator: Replicator | null = null;
  private transport: MqttTransport | null = null;
  private broker: BrokerSettings | null = null;
  private stop_push: (() => void) | null = null;
  private readonly validate_append = build_validator(default_validators);
  private readonly validate_sync = build_validator(default_validators);

  private constructor(
    readonly log: Log,
    private readonly on_warning: (message: string, details: Record<string, unknown>) => void,
  ) {}

  /** Whether the browser promised not to evict this origin's storage (navigator.storage.persist); null when it cannot say. */
  persistent: boolean | null = null;

  static async open(db_name: string, on_warning: (message: string, details: Record<string, unknown>) => void): Promise<BrowserReplica> {
    // Best-effort storage may be evicted under pressure, taking unsynced events and the key with it: ask to keep it.
    const storage = (globalThis as { navigator?: { storage?: { persist?: () => Promise<boolean> } } }).navigator?.storage;
    const persistent = storage?.persist === undefined ? null : await storage.persist().catch(() => null);
    if (persistent === false) on_warning("the browser may evict this page's storage under pressure (persistent storage was refused): sync often, or install the page as an app", {});
    const signer = await load_or_create_key(`${db_name}-key`);
    const store = await IndexedDbPageStore.open(db_name);
    const io = await PagedFileIO.open(store);
    const log = await Log.open({ dir: data_dir, io, signer, name: "browser", sync: "always", segment_size_bytes: browser_segment_size_bytes, on_warning });
    const replica = new BrowserReplica(log, on_warning);
    replica.persistent = persistent;
    return replica;
  }

  /** Appends one event; resolves with its id once durable (its IndexedDB transaction complete). */
  async append(data: string | Uint8Array): Promise<string> {
    const payload = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const rejected = this.validate_append(payload, { kind: "append", origin: this.log.id, seq: this.log.held(this.log.id) + 1, time_ms: Date.now() });
    // The admin API's code for the same refusal (422 VALIDATION_FAILED).
    if (rejected !== null) throw Object.assign(new Error(`${rejected}; nothing was written`), { code: "VALIDATION_FAILED" });
    const seq = this.log.append(payload);
    await this.log.durable();
    return `${this.log.id}:${seq}`;
  }

  read(from: number, limit: number): PageEvent[] {
    return this.log.read(from, limit).map((e) => ({ id: e.id, origin: e.origin, seq: e.seq, time_ms: e.time_ms, payload: e.payload.slice() }));
  }

  vv(): Record<string, number> {
    return this.log.vv();
  }

  /** Connects and disconnects one at a time: two at once would leave two clients with one client id knocking each other off. */
  private link_turn: Promise<unknown> = Promise.resolve();

  private in_turn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.link_turn.then(fn, fn);
    this.link_turn = run.catch(() => {});
    return run;
  }

  /** Connects (and keeps reconnecting) to the broker; replaces any earlier connection. */
  connect(settings: BrokerSettings): Promise<void> {
    return this.in_turn(() => this.connect_now(settings));
  }

  disconnect(): Promise<void> {
    return this.in_turn(() => this.disconnect_now());
  }

  private async connect_now(settings: BrokerSettings): Promise<void> {
    await this.disconnect_now();
    const preset = settings.preset ?? "generic";
    const presets = broker_presets[preset];
    if (presets === undefined) throw new InterlogError("CONFIG_INVALID", `unknown broker preset "${preset}"; use generic or rabbitmq`);
    if (!/^wss?:\/\//.test(settings.url)) throw new InterlogError("CONFIG_INVALID", `a browser reaches the broker over WebSocket: the URL must start with ws:// or wss://, not ${settings.url}`);
    const replicator = new Replicator({
      log: this.log,
      prefix: settings.prefix ?? "interlog",
      pull: settings.pull ?? "*",
      max_packet_bytes: Math.min(presets.max_packet_bytes, 256 * 1024),
      announce_to_new_peers: !presets.retained_to_wildcards,
      validate: (payload, ctx) => this.validate_sync(payload, { kind: "sync", origin: ctx.origin, seq: ctx.seq, time_ms: ctx.time_ms }),
      on_warning: this.on_warning,
    });
    const transport = new MqttTransport({
      replicator,
      url: settings.url,
      // 3.1.1 unless the preset says otherwise: every broker speaks it, and RabbitMQ speaks nothing else.
      protocol_version: preset === "generic" ? 4 : undefined,
      username: settings.username,
      password: settings.password,
      preset,
      verify_async: (checks) => Promise.all(checks.map((c) => verify_async(c.public_key, c.message, c.signature))),
      whole_publishes: false,
      on_warning: this.on_warning,
    });
    this.replicator = replicator;
    this.transport = transport;
    this.broker = settings;
    transport.start();
    this.stop_push = this.log.on_durable(() => transport.notify_local());
  }

  private async disconnect_now(): Promise<void> {
    this.stop_push?.();
    this.stop_push = null;
    const transport = this.transport;
    this.transport = null;
    this.replicator = null;
    this.broker = null;
    if (transport !== null) await transport.stop(2000);
  }

  status(writer: boolean): PageStatus {
    const transport = this.transport?.status() ?? null;
    const sync = this.replicator?.status(Date.now()) ?? null;
    return {
      id: this.log.id,
      online: transport?.connected ?? false,
      writer,
      persistent: this.persistent,
      broker: transport === null || this.broker === null ? null : { url: transport.url, connected: transport.connected, last_error: transport.last_error },
      peers: (sync?.peers ?? []).map((p) => ({ id: p.id, online: p.online, lag_events: p.lag_events })),
      events: this.log.count,
    };
  }

  async close(): Promise<void> {
    await this.disconnect();
    await this.log.close();
  }
}
