import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { type Clock, type TimerHandle, type Timers, system_clock, system_timers } from "../lib/clock.ts";
import { InterlogError } from "../lib/errors.ts";
import type { RangeCheck } from "../log/key_ring.ts";
import type { Outbound, Replicator } from "../sync/replicator.ts";
import { type BrokerPreset, type BrokerPresetName, broker_presets } from "./presets.ts";
import { PublishQueue, type PublishQueueStats } from "./publish_queue.ts";
import { read_pem } from "./read_pem.ts";
import { store_publishes_without_copy } from "./store_without_copy.ts";
import { write_publishes_whole } from "./whole_publish_writer.ts";

/**
 * Incoming messages handled in one turn of the event loop, in ms at most
 * (the message that passes it finishes): mqtt.js hands over every message
 * of a socket read in one turn, and a burst of large vvs (a flood of lies,
 * or a restart into many retained ones) would otherwise hold the loop for
 * seconds, starving the admin API and the log's fsync completions. Past
 * it the next message waits for the next turn; the socket is not read
 * meanwhile, so the broker holds (or drops) the rest.
 */
export const incoming_turn_budget_ms = 20;

export interface TlsFiles {
  /** CA bundle that signs the broker's certificate (PEM). */
  ca_file?: string;
  /** Client certificate and key (PEM), for brokers that authenticate clients by certificate (AWS IoT Core). */
  cert_file?: string;
  key_file?: string;
  /** Default true; false only for a test broker with a self-signed certificate. */
  reject_unauthorized?: boolean;
}

export interface MqttTransportOptions {
  replicator: Replicator;
  /**
   * mqtt://host:1883 or mqtts://host:8883; or several nodes of one cluster
   * (same scheme and path): each new connection attempt goes to the next,
   * so a replica whose node died fails over to another.
   */
  url: string | readonly string[];
  /** MQTT 5, or 4 (3.1.1) for brokers that speak only that; default the preset's. */
  protocol_version?: 4 | 5;
  /** QoS of the subscriptions; default the preset's (0 for RabbitMQ, see presets.ts). */
  subscribe_qos?: 0 | 1;
  username?: string;
  /** Already resolved (e.g. from an environment variable); never logged. */
  password?: string;
  tls?: TlsFiles;
  /** Limits of a known broker (default generic). Explicit limits below win. */
  preset?: BrokerPresetName;
  publishes_per_s?: number | null;
  bytes_per_s?: number | null;
  /** Unacknowledged QoS 1 publishes at once (default 64). */
  inflight_max?: number;
  /** Outgoing bytes buffered before the newest non-retained messages are dropped (default 16 MiB). */
  queue_max_bytes?: number;
  keepalive_s?: number;
  reconnect_period_ms?: number;
  connect_timeout_ms?: number;
  /** How often the replicator's timers run (default 100 ms). */
  tick_interval_ms?: number;
  /** How often a rate-limited queue is retried (default 10 ms). */
  drain_interval_ms?: number;
  /** The replicator's time (status sessions, event ages): the wall clock by default. */
  clock?: Clock;
  /** What outgoing pacing measures intervals with: monotonic by default (performance.now). */
  pacing_clock?: Clock;
  timers?: Timers;
  on_warning?: (message: string, details: Record<string, unknown>) => void;
  on_info?: (message: string, details: Record<string, unknown>) => void;
  /**
   * Verifies received signatures asynchronously (a browser's WebCrypto):
   * messages then go through Replicator.on_message_async one at a time, and
   * every other call into the replicator waits for the one in flight.
   */
  verify_async?: (checks: readonly RangeCheck[]) => Promise<boolean[]>;
  /**
   * Write each PUBLISH as one buffer without mqtt.js's copy (default true):
   * these reach into mqtt.js's Node stream writer; its browser build
   * writes to a WebSocket and takes the plain path.
   */
  whole_publishes?: boolean;
}

/** Pacing's clock: a wall clock stepped back by NTP would stall it for the step. */
const monotonic_clock: Clock = { now_ms: () => performance.now() };

export interface TransportStatus {
  connected: boolean;
  /** The broker URL of the current connection (the last one while disconnected), without credentials. */
  url: string;
  protocol_version: 4 | 5;
  connects: number;
  disconnects: number;
  messages_received: number;
  bytes_received: number;
  queue: PublishQueueStats;
  last_error: string | null;
}

/**
 * Adapts a Replicator to an MQTT 5 broker with mqtt.js: client id = replica
 * id, QoS 1, clean start on every (re)connect followed by a fresh subscribe
 * and the replicator's status and vv (a restarted broker without
 * persistence forgets everything), a retained offline will, TLS and
 * username/password, and outgoing pacing within the broker's limits.
 */
/** MQTT 5 DISCONNECT reason: Session taken over (another client connected with this client id). */
const session_taken_over = 0x8e;
/** A connection closed this soon after connecting counts as short... */
const short_session_ms = 5_000;
/** ...and this many in a row are named as a likely client-id clash. */
const short_sessions_warn = 3;

export class MqttTransport {
  private readonly replicator: Replicator;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly queue: PublishQueue;
  private readonly options: MqttTransportOptions;
  private readonly on_warning: (message: string, details: Record<string, unknown>) => void;
  private readonly on_info: (message: string, details: Record<string, unknown>) => void;
  private client: MqttClient | null = null;
  private tick_timer: TimerHandle | null = null;
  private drain_timer: TimerHandle | null = null;
  private connected = false;
  private push_scheduled = false;
  private readonly queue_max_bytes: number;
  private stopping = false;
  private readonly counts = { connects: 0, disconnects: 0, messages_received: 0, bytes_received: 0 };
  private connected_at_ms = 0;
  private short_sessions = 0;
  private id_clashes = 0;
  private id_clash_warned_ms = Number.NEGATIVE_INFINITY;
  private last_error: string | null = null;
  private readonly urls: readonly string[];
  private readonly protocol_version: 4 | 5;
  private readonly subscribe_qos: 0 | 1;
  private current_url: string;
  /** Connections closed before any CONNACK (an MQTT 3.1.1-only broker closes an MQTT 5 CONNECT so). */
  private closed_before_connack = 0;
  private readonly preset: BrokerPreset;
  /** When the current event-loop turn started handling incoming messages; -1 outside one. */
  private turn_started_ms = -1;
  /** Tells the client's PUBLISH writer that a payload has room for its header in front (whole_publish_writer.ts). */
  private mark_header_room: (payload: Buffer, room_bytes: number) => void = () => {};
  /** A message being verified asynchronously (verify_async), or null: the replicator takes one input at a time. */
  private inbound: Promise<void> | null = null;
  /** A tick waits for the message being verified. */
  private tick_due = false;

  constructor(options: MqttTransportOptions) {
    this.options = options;
    this.replicator = options.replicator;
    this.clock = options.clock ?? system_clock;
    this.timers = options.timers ?? system_timers;
    this.on_warning = options.on_warning ?? (() => {});
    this.on_info = options.on_info ?? (() => {});
    const preset = broker_presets[options.preset ?? "generic"];
    this.preset = preset;
    this.urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new InterlogError("CONFIG_INVALID", "no MQTT broker URL given");
    this.current_url = this.urls[0];
    this.protocol_version = options.protocol_version ?? preset.protocol_version;
    this.subscribe_qos = options.subscribe_qos ?? preset.subscribe_qos;
    if (this.replicator.max_packet_bytes > preset.max_packet_bytes) {
      throw new InterlogError(
        "CONFIG_INVALID",
        `sync max packet size ${this.replicator.max_packet_bytes} bytes exceeds the ${options.preset} broker's limit of ${preset.max_packet_bytes} bytes`,
      );
    }
    this.queue_max_bytes = options.queue_max_bytes ?? 16 * 1024 * 1024;
    this.queue = new PublishQueue(
      {
        publishes_per_s: options.publishes_per_s !== undefined ? options.publishes_per_s : preset.publishes_per_s,
        bytes_per_s: options.bytes_per_s !== undefined ? options.bytes_per_s : preset.bytes_per_s,
        inflight_max: options.inflight_max ?? 64,
        queue_max_bytes: this.queue_max_bytes,
      },
      // Pacing runs on a monotonic clock: a wall clock stepped back by NTP would stall it for the step.
      options.pacing_clock ?? monotonic_clock,
      (m, done) => this.send(m, done),
    );
  }

  /** Connects (and keeps reconnecting) in the background. */
  start(): void {
    if (this.client !== null) return;
    const o = this.options;
    const will = this.replicator.will();
    const client_options: IClientOptions = {
      clientId: this.replicator.id,
      protocolVersion: this.protocol_version,
      clean: true,
      resubscribe: false,
      keepalive: o.keepalive_s ?? 30,
      reconnectPeriod: o.reconnect_period_ms ?? 1000,
      connectTimeout: o.connect_timeout_ms ?? 10_000,
      queueQoSZero: false,
      // mqtt-packet's default number cache is 65 536 two-byte Buffers made at the first packet: about 8 MiB of heap on an idle device (issue 16).
      writeCache: false,
      will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true },
    };
    if (this.protocol_version === 5) client_options.properties = { maximumPacketSize: this.replicator.max_packet_bytes };
    if (this.urls.length > 1) client_options.servers = this.urls.map(server_of);
    if (o.username !== undefined) client_options.username = o.username;
    if (o.password !== undefined) client_options.password = o.password;
    if (o.tls !== undefined) {
      if (o.tls.ca_file !== undefined) client_options.ca = read_pem(o.tls.ca_file, "CA certificate");
      if (o.tls.cert_file !== undefined) client_options.cert = read_pem(o.tls.cert_file, "client certificate");
      if (o.tls.key_file !== undefined) client_options.key = read_pem(o.tls.key_file, "client key");
      client_options.rejectUnauthorized = o.tls.reject_unauthorized ?? true;
    }
    // Parsed here, not by mqtt.js: it uses the deprecated url.parse(), whose warning would greet every start on stderr.
    const client = mqtt.connect({ ...connect_options_of(this.urls[0]), ...client_options });
    if (o.whole_publishes ?? true) {
      store_publishes_without_copy(client);
      this.mark_header_room = write_publishes_whole(client, this.protocol_version);
    }
    this.client = client;
    client.on("connect", () => this.handle_connect(client));
    client.on("close", () => this.handle_close());
    // mqtt.js sets the TLS server name from the first node and keeps it for the next ones: each node must be checked under its own name.
    client.on("reconnect", () => {
      if (this.urls.length > 1) delete client.options.servername;
    });
    client.on("disconnect", (packet) => {
      // MQTT 5 reason 0x8E: another client connected with this client id, which is the replica id.
      if (packet.reasonCode === session_taken_over) this.warn_id_clash("the broker closed this connection: another client connected with the same client id");
    });
    client.on("error", (err) => {
      this.last_error = String(err.message ?? err);
      this.on_warning("MQTT connection problem; retrying", { url: redact(this.url_of(client)), error: this.last_error });
    });
    client.on("message", (topic, payload) => {
      this.counts.messages_received++;
      this.counts.bytes_received += payload.length;
      if (this.turn_started_ms < 0) {
        this.turn_started_ms = performance.now();
        setImmediate(() => {
          this.turn_started_ms = -1;
        });
      }
      this.note_room();
      if (o.verify_async !== undefined) this.receive_async(topic, payload, o.verify_async);
      else this.push(this.replicator.on_message(topic, payload, this.clock.now_ms()));
    });
    // mqtt.js takes the next message of a read once this calls back: past the turn's budget, let the event loop run first.
    client.handleMessage = (_packet, callback) => {
      if (this.inbound !== null) void this.inbound.then(() => callback());
      else if (this.turn_started_ms < 0 || performance.now() - this.turn_started_ms < incoming_turn_budget_ms) callback();
      else setImmediate(() => callback());
    };
    this.tick_timer = this.timers.every(o.tick_interval_ms ?? 100, () => {
      // A tick that finds a message being verified runs right after it, once (a stream of messages must not starve ticks:
      // they publish the vv peers wait for, and expire requests and buffers).
      if (this.tick_due) return;
      this.tick_due = true;
      this.when_idle(() => {
        this.tick_due = false;
        if (this.stopping) return;
        this.note_room();
        this.push(this.replicator.tick(this.clock.now_ms()));
      });
    });
    this.drain_timer = this.timers.every(o.drain_interval_ms ?? 10, () => {
      if (this.connected) this.queue.drain();
    });
  }

  /** A message through the async verifier; mqtt.js hands over the next one only once it is done (handleMessage). */
  private receive_async(topic: string, payload: Uint8Array, verify: (checks: readonly RangeCheck[]) => Promise<boolean[]>): void {
    // Once stopping, the replicator takes no more input (stop() waits for the one in flight, then disconnects it).
    if (this.stopping) return;
    // After the message before it, should one still be verifying (a message of the connection before a reconnect).
    const before = this.inbound;
    // Set below before the body passes its first await, which it always does (on_message_async is async).
    let handled: Promise<void> | null = null;
    handled = (async () => {
      if (before !== null) await before;
      try {
        const out = await this.replicator.on_message_async(topic, payload, this.clock.now_ms(), verify);
        if (this.inbound === handled) this.inbound = null;
        this.note_room();
        this.push(out);
      } catch (err) {
        if (this.inbound === handled) this.inbound = null;
        this.on_warning("a received message could not be handled", { topic, error: String(err) });
      }
    })();
    this.inbound = handled;
  }

  /** Runs fn now, or once no message is being verified (each time one is done, the check is made again). */
  private when_idle(fn: () => void): void {
    const run = (): void => {
      if (this.inbound === null) fn();
      else void this.inbound.then(run);
    };
    run();
  }

  /** Call after local appends became durable: own events are pushed without waiting for the next tick. */
  notify_local(): void {
    if (!this.connected) return;
    if (this.inbound !== null) return this.when_idle(() => this.notify_local());
    this.note_room();
    this.push(this.replicator.on_local(this.clock.now_ms()));
    this.continue_push();
  }

  /**
   * Own events go out a burst at a time, and only while the outgoing queue
   * has room: a backlog then neither holds the event loop (and the log's
   * fsync completions) nor overflows a rate-limited queue, where it would
   * push out repair answers. Acknowledgements make room and resume it.
   */
  private continue_push(): void {
    this.note_room();
    if (this.push_scheduled || !this.replicator.push_pending || this.replicator.outbound_room_bytes < this.replicator.max_packet_bytes) return;
    this.push_scheduled = true;
    setImmediate(() => {
      this.push_scheduled = false;
      this.notify_local();
    });
  }

  /** Tells the replicator how much it may queue: the queue's capacity less what waits, less one message kept for status and vv. */
  private note_room(): void {
    this.replicator.outbound_room_bytes = Math.max(0, this.queue_max_bytes - this.queue.stats.queued_bytes - this.replicator.max_packet_bytes);
  }

  /** Publishes the offline status, waits (bounded) for outgoing messages, and disconnects. */
  async stop(timeout_ms = 5000): Promise<void> {
    if (this.client === null || this.stopping) return;
    this.stopping = true;
    this.tick_timer?.cancel();
    this.drain_timer?.cancel();
    const client = this.client;
    while (this.inbound !== null) await this.inbound;
    if (this.connected) {
      this.push(this.replicator.shutdown(this.clock.now_ms()));
      const deadline = Date.now() + timeout_ms;
      while ((this.queue.stats.queued > 0 || this.queue.stats.inflight > 0) && Date.now() < deadline && this.connected) {
        this.queue.drain();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    while (this.inbound !== null) await this.inbound;
    this.replicator.on_disconnect(this.clock.now_ms());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, timeout_ms);
      client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.connected = false;
  }

  /** Drops the link at once without the offline status, as a crash would: the broker publishes the will. */
  abort(): void {
    if (this.client === null || this.stopping) return;
    this.stopping = true;
    this.tick_timer?.cancel();
    this.drain_timer?.cancel();
    this.connected = false;
    this.when_idle(() => this.replicator.on_disconnect(this.clock.now_ms()));
    this.client.end(true);
  }

  status(): TransportStatus {
    return { connected: this.connected, url: redact(this.current_url), protocol_version: this.protocol_version, ...this.counts, queue: { ...this.queue.stats }, last_error: this.last_error };
  }

  /** The URL mqtt.js connected (or tried) last: with several, it moves on to the next at each attempt. */
  private url_of(client: MqttClient): string {
    if (this.urls.length === 1) return this.urls[0];
    const { host, port } = client.options;
    return this.urls.find((u) => same_server(u, host, port)) ?? this.urls[0];
  }

  private handle_connect(client: MqttClient): void {
    this.counts.connects++;
    this.current_url = this.url_of(client);
    const wanted = this.replicator.subscriptions();
    const limit = this.preset.subscriptions_max;
    if (limit !== null && wanted.length > limit && this.counts.connects === 1) {
      this.on_warning(
        `this replica needs ${wanted.length} subscriptions but the ${this.options.preset} broker allows ${limit} per connection; list fewer origins in replication.pull (each pulled origin costs about as many filters as there are pulled origins)`,
        { subscriptions: wanted.length, limit },
      );
    }
    // AWS IoT Core closes the connection on a SUBSCRIBE of more than 8 filters: send them in requests of at most that many.
    const per_request = Math.max(1, this.preset.filters_per_subscribe_max ?? wanted.length);
    // No-local (MQTT 5) spares the echo of our own publishes; with 3.1.1 the replicator drops them (own_echo).
    const options = this.protocol_version === 5 ? { qos: this.subscribe_qos, nl: true as const } : { qos: this.subscribe_qos };
    const requests: string[][] = [];
    for (let i = 0; i < wanted.length; i += per_request) requests.push(wanted.slice(i, i + per_request));
    let waiting = requests.length;
    let failed = false;
    const refused: string[] = [];
    const subscribed = (request: string[], err: Error | null | undefined, granted: { topic: string; qos: number }[] | undefined) => {
      if (failed) return;
      // mqtt.js reports a SUBACK that refuses any filter as an error carrying that SUBACK.
      const suback = (err as { packet?: { cmd?: string; granted?: unknown[] } } | null | undefined)?.packet;
      if (err && suback?.cmd === "suback" && (suback.granted ?? []).some((g) => typeof g === "number" && g >= 0x80)) {
        // The broker answered and refused some filters (ACL, or its subscriptions-per-connection limit): that is no
        // broken link, and reconnecting would be refused the same way forever. Go on with what was granted.
        for (const f of request) refused.push(f);
        this.last_error = `subscribe refused: ${err.message}`;
      } else if (err) {
        failed = true;
        // Never client.end() here: that stops mqtt.js reconnecting for good (a cluster node closing the link right after
        // CONNACK, as RabbitMQ does while it moves client ids after a node died, left the replica offline forever).
        this.on_warning("MQTT subscribe failed; reconnecting", { url: redact(this.current_url), error: String(err) });
        if (client === this.client && !this.stopping) client.stream?.destroy();
        return;
      }
      else for (const g of granted ?? []) if (g.qos > 2) refused.push(g.topic);
      if (--waiting > 0) return;
      if (refused.length > 0) {
        this.on_warning(
          `the broker refused some subscriptions (check that its ACL lets this replica read ${this.replicator.topics.prefix}/#, and its subscriptions-per-connection limit); syncing with what it granted, so some peers' messages will not arrive`,
          { topics: refused.slice(0, 20), filters_in_refused_requests: refused.length },
        );
      }
      if (this.stopping || client !== this.client) return;
      this.connected = true;
      this.connected_at_ms = this.clock.now_ms();
      this.on_info("connected to the MQTT broker", { url: redact(this.current_url), id: this.replicator.id, mqtt: this.protocol_version === 5 ? "5" : "3.1.1" });
      this.when_idle(() => {
        if (this.stopping || client !== this.client || !this.connected) return;
        this.note_room();
        this.push(this.replicator.on_connect(this.clock.now_ms()));
      });
    };
    if (requests.length === 0) subscribed([], null, []);
    for (const request of requests) {
      client.subscribe(Object.fromEntries(request.map((f) => [f, options])), (err, granted) => subscribed(request, err, granted));
    }
  }

  /**
   * Names the usual cause of connections lost to a client-id clash: two
   * devices run one data directory (a copied SD card), or two processes one
   * replica. Once per minute at most.
   */
  private warn_id_clash(what: string): void {
    this.id_clashes++;
    const now = this.clock.now_ms();
    if (now - this.id_clash_warned_ms < 60_000) return;
    this.id_clash_warned_ms = now;
    this.on_warning(
      `${what} (${this.replicator.id}, this replica's id): two devices or processes run as replica ${this.replicator.id} and keep knocking each other off the broker. A copied data directory does this: keep one, give the other a new data directory (interlog init)`,
      { id: this.replicator.id, clashes: this.id_clashes },
    );
  }

  private handle_close(): void {
    if (!this.connected && !this.stopping) this.note_closed_before_connack();
    // MQTT 3.1.1 brokers just close a taken-over session: connections that keep dying within seconds of connecting say the same.
    const now = this.clock.now_ms();
    if (this.connected && now - this.connected_at_ms < short_session_ms) {
      this.short_sessions++;
      if (this.short_sessions >= short_sessions_warn) this.warn_id_clash(`the broker closed ${this.short_sessions} connections within ${short_session_ms / 1000} s of connecting; usually another client with the same client id`);
    } else if (this.connected) {
      this.short_sessions = 0;
    }
    if (!this.connected) return;
    this.connected = false;
    this.counts.disconnects++;
    this.queue.clear();
    this.when_idle(() => this.replicator.on_disconnect(this.clock.now_ms()));
    if (!this.stopping) this.on_info("lost the MQTT broker; reconnecting", { url: redact(this.current_url), urls: this.urls.length });
  }

  /**
   * A broker that speaks only MQTT 3.1.1 (RabbitMQ 3.x) closes an MQTT 5
   * CONNECT without a word: name the fix once, after a few such closes
   * without any CONNACK ever seen.
   */
  private note_closed_before_connack(): void {
    this.closed_before_connack++;
    // connects counts CONNACKs: once one came, the broker speaks this version.
    if (this.protocol_version !== 5 || this.counts.connects > 0 || this.closed_before_connack !== short_sessions_warn) return;
    this.on_warning(
      "the broker keeps closing the connection before accepting it; if it speaks only MQTT 3.1.1 (RabbitMQ) set mqtt.preset: rabbitmq or mqtt.protocol: 3.1.1, otherwise check its log for the refusal (client id, login, TLS)",
      { url: redact(this.current_url), closes: this.closed_before_connack },
    );
  }

  private push(messages: Outbound[]): void {
    if (messages.length === 0) return;
    if (!this.connected && !this.stopping) return; // stale by the time the link is back; on_connect regenerates state
    this.queue.push(messages);
    this.queue.drain();
  }

  private send(m: Outbound, done: (err?: Error) => void): void {
    const client = this.client;
    if (client === null) return done(new Error("no client"));
    const payload = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    if (m.header_room_bytes !== undefined) this.mark_header_room(payload, m.header_room_bytes);
    client.publish(m.topic, payload, { qos: m.qos, retain: m.retain }, (err) => {
      // Acknowledged: mqtt.js keeps only its own copy (for redelivery), so the buffer may be reused.
      if (!err) m.release?.();
      done(err ?? undefined);
      if (this.connected) {
        this.queue.drain();
        this.continue_push();
      }
    });
  }
}

/** One entry of mqtt.js's `servers` (it connects to each in turn). */
function server_of(url: string): { host: string; port: number; protocol: "mqtt" | "mqtts" | "ws" | "wss" } {
  const u = new URL(url);
  const protocol = u.protocol.slice(0, -1) as "mqtt" | "mqtts" | "ws" | "wss";
  const default_port = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 }[protocol];
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port === "" ? default_port : Number(u.port), protocol };
}

/** What mqtt.js takes from a broker URL when given one (host, port, protocol, WebSocket path, credentials in the URL, query). */
function connect_options_of(url: string): IClientOptions {
  const u = new URL(url);
  const s = server_of(url);
  const options: IClientOptions = { protocol: s.protocol, host: s.host, hostname: s.host, port: s.port, path: `${u.pathname}${u.search}` };
  if (u.username !== "") options.username = decodeURIComponent(u.username);
  if (u.password !== "") options.password = decodeURIComponent(u.password);
  if (u.search !== "") options.query = Object.fromEntries(u.searchParams);
  return options;
}

function same_server(url: string, host: string | undefined, port: number | undefined): boolean {
  const s = server_of(url);
  return s.host === host && s.port === port;
}

/** The URL without credentials, for logs. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
