import net from "node:net";
import * as mqtt_packet from "mqtt-packet";

/**
 * A TCP proxy between MQTT clients and a real broker (mosquitto, see
 * mosquitto.ts) that enforces, per client connection, what AWS IoT Core
 * enforces, so a test can show a client lives within AWS's limits without
 * AWS. Every MQTT packet in both directions is framed here and parsed with
 * mqtt-packet (a dependency of mqtt; imported from test code only); MQTT
 * 3.1.1 and 5 both pass through.
 *
 * The limits, as the AWS IoT Core documentation states them
 * (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits,
 * "AWS IoT Core message broker and protocol limits and quotas"):
 *
 * - Message size 128 KiB: "The payload for every publish request can be no
 *   larger than 128 KB. AWS IoT Core rejects publish and connect requests
 *   larger than this size." Here the size of a message is its topic plus its
 *   payload (stricter than the payload alone); over 128 KiB from the client ->
 *   `publish_too_large` (`retained_too_large` when retained: AWS keeps
 *   retained messages of the same maximum size), and the connection is closed
 *   (MQTT 5: DISCONNECT 0x95 Packet too large first). A CONNECT (with its
 *   will) over 128 KiB -> `connect_too_large`, closed.
 * - Publish requests per second per connection 100, inbound and outbound:
 *   "Publish requests that exceed this limit are discarded." Throughput per
 *   connection 512 KiB/s: "Data received or sent over a client connection
 *   is processed at a maximum throughput rate. Data that exceeds the maximum
 *   throughput is delayed in processing."
 *   Inbound (client -> broker), as AWS documents each: a PUBLISH that
 *   would put more than 100 publishes into any sliding 1000 ms window (by
 *   arrival time here) is discarded: not forwarded, no PUBACK (QoS 1 stays
 *   in flight on the client until it reconnects), counted as
 *   `inbound_publish_rate`; a client within the limit never sees one, and a
 *   test asserts the count is zero. Arrival times carry the sender's and
 *   the link's jitter: the `inbound_jitter_ms` option judges the count over
 *   a window that much shorter, and counts what the strict window would
 *   have refused as `near_misses`. Message bytes (topic + payload) pass a
 *   pipe of 512 KiB/s (Shaper: each message is processed once those before
 *   it are), so a PUBLISH that comes while the pipe is busy is delayed
 *   ("delayed in processing"): it and every packet after it wait here, in
 *   order, with the client's socket not read; counted in `in_delayed` (and
 *   `in_delay_ms_total`). A sender
 *   that overshoots loses nothing but time (and the latency of everything
 *   behind), so pacing is its own interest, not a rule it can break.
 *   Outbound (broker -> client): deliveries are delayed (queued here, in
 *   order) so that no sliding 1000 ms window carries more than 100
 *   publishes, and message bytes pass a pipe of 512 KiB/s as inbound; each
 *   delivery that had to wait is counted in `delayed`. Acknowledgements and other control
 *   packets are not rate limited and are not held behind queued publishes.
 *   While more than 8 MiB wait, the broker's socket is not read (the
 *   broker holds the rest).
 * - Subscriptions per connection 50: the filters that would make more than
 *   50 distinct active filters on the connection are refused (SUBACK 0x80
 *   for those, `subscriptions_over_50`); the others pass. UNSUBSCRIBE frees.
 * - Subscriptions per SUBSCRIBE request 8 ("Maximum number of subscriptions
 *   per subscribe call"): a SUBSCRIBE with more filters -> `subscribe_over_8`
 *   and the connection is closed (AWS documents the limit, not its effect:
 *   closing is the stricter reading).
 * - QoS 2 is not supported: a QoS 2 PUBLISH -> `qos2_publish`, the
 *   connection is closed (MQTT 5: DISCONNECT 0x9B QoS not supported first);
 *   a QoS 2 subscription is granted as QoS 1 (forwarded to the broker as 1),
 *   counted in `qos2_subscriptions_downgraded`, not a violation.
 * - Topics: at most 256 bytes and 7 slashes ("Topic size", "Maximum number
 *   of slashes in topic and topic filter"); a PUBLISH or filter beyond ->
 *   `topic_invalid`, closed.
 * - Connect requests per second per client ID 1: a CONNECT less than
 *   1000 ms after the previous CONNECT with the same client id ->
 *   `connect_rate`, closed without CONNACK (throttled).
 * - Client-id takeover: a second connection with a client id takes the
 *   session over and the first is closed (MQTT 5: DISCONNECT 0x8E). AWS does
 *   this and so does mosquitto, so the proxy just passes it through (tested).
 * - Retained messages: AWS IoT Core keeps one retained message per topic (a
 *   newer one replaces it), of at most the message size above, and a retained
 *   publish with an empty payload deletes it
 *   (https://aws.amazon.com/blogs/iot/getting-started-mqtt-retained-messages-aws-iot-core/,
 *   and the iot-data Publish API: "Publishing an empty (null) payload with
 *   retain = true deletes the retained message identified by topic").
 *   mosquitto behaves the same; the proxy enforces the size.
 *
 * Not modelled: account-wide quotas (connections, subscriptions per second,
 * inbound publishes per account), the 100 in-flight unacknowledged messages
 * quota, persistent sessions, and the policy (authorization) itself.
 */

export const aws_iot_limits = {
  max_message_bytes: 128 * 1024,
  publishes_per_s: 100,
  bytes_per_s: 512 * 1024,
  subscriptions_max: 50,
  filters_per_subscribe_max: 8,
  topic_max_bytes: 256,
  topic_max_slashes: 7,
  connects_per_client_id_per_s: 1,
  window_ms: 1000,
  /**
   * Inbound rates are judged over window_ms less this (0: strictly). The
   * proxy sees arrival times, and a sender whose event loop stalls (an
   * fsync in the same test process) mid-write delivers a message late, so
   * it lands in the same second as one sent a second after it. A test that
   * sets this still counts what the strict window would have refused, as
   * near misses.
   */
  inbound_jitter_ms: 0,
} as const;

export type AwsIotLimits = { -readonly [K in keyof typeof aws_iot_limits]: number };

export const violation_kinds = [
  "publish_too_large",
  "retained_too_large",
  "connect_too_large",
  "qos2_publish",
  "inbound_publish_rate",
  "subscriptions_over_50",
  "subscribe_over_8",
  "topic_invalid",
  "connect_rate",
] as const;
export type ViolationKind = (typeof violation_kinds)[number];
export type Violations = Record<ViolationKind, number>;

function no_violations(): Violations {
  return Object.fromEntries(violation_kinds.map((k) => [k, 0])) as Violations;
}

export interface ConnectionStats {
  /** Order of accept, from 1. */
  n: number;
  client_id: string | null;
  protocol_version: number | null;
  opened_ms: number;
  closed_ms: number | null;
  /** Why the proxy closed it (a violation kind), "client", "broker", or null while open. */
  closed_by: string | null;
  violations: Violations;
  /** PUBLISH packets and message bytes (topic + payload) the client sent and the proxy forwarded. */
  in_publishes: number;
  in_bytes: number;
  /** PUBLISH packets and message bytes (topic + payload) delivered to the client; wire bytes are every byte written to it. */
  out_publishes: number;
  out_bytes: number;
  out_wire_bytes: number;
  in_wire_bytes: number;
  /** Deliveries that waited for the outbound limits, and their total wait. */
  delayed: number;
  delay_ms_total: number;
  /** Inbound publishes the strict window would have refused but inbound_jitter_ms let through. */
  near_misses: number;
  /** Inbound publishes held back by the 512 KiB/s throughput limit, and their total wait. */
  in_delayed: number;
  in_delay_ms_total: number;
  /** The most any sliding 1000 ms window held. */
  max_in_publishes_per_s: number;
  max_in_bytes_per_s: number;
  max_out_publishes_per_s: number;
  max_out_bytes_per_s: number;
  /** Active distinct topic filters. */
  subscriptions: number;
  qos2_subscriptions_downgraded: number;
  /** Deliveries to the client by topic: publishes and message bytes. */
  out_by_topic: Record<string, { publishes: number; bytes: number }>;
  /** Another connection took this one's client id over (the broker closed this one). */
  taken_over: boolean;
  /** performance.now() of the first and last delivery to the client. */
  first_out_ms: number | null;
  last_out_ms: number | null;
}

/** A sliding window of (time, bytes) entries of the last window_ms. */
class SlidingWindow {
  private readonly at: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  bytes = 0;

  constructor(private readonly window_ms: number) {}

  get count(): number {
    return this.at.length - this.head;
  }

  prune(now: number): void {
    while (this.head < this.at.length && this.at[this.head] <= now - this.window_ms) {
      this.bytes -= this.sizes[this.head];
      this.head++;
    }
    if (this.head > 4096) {
      this.at.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  add(now: number, size: number): void {
    this.at.push(now);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Milliseconds from now until the window holds at most `bytes` (entries leave as they age out). */
  ms_until_bytes(now: number, bytes: number): number {
    let held = this.bytes;
    for (let i = this.head; i < this.at.length; i++) {
      if (held <= bytes) return i === this.head ? 0 : this.at[i - 1] + this.window_ms - now;
      held -= this.sizes[i];
    }
    return this.at.length === this.head ? 0 : this.at[this.at.length - 1] + this.window_ms - now;
  }

  /** When the oldest entry leaves the window. */
  oldest_expires_ms(): number {
    return this.at[this.head] + this.window_ms;
  }
}

/**
 * Throughput as a pipe of `bytes_per_s`: a message is processed once the
 * ones before it are (each takes size / rate), so data over the rate waits
 * and none is lost; the average is exactly the rate, whatever the sizes.
 */
class Shaper {
  private free_at_ms = 0;

  constructor(private readonly bytes_per_s: number) {}

  /** Milliseconds until the pipe is free for the next message. */
  wait_ms(now: number): number {
    return Math.max(0, this.free_at_ms - now);
  }

  take(now: number, size: number): void {
    this.free_at_ms = Math.max(now, this.free_at_ms) + (size * 1000) / this.bytes_per_s;
  }
}

/** MQTT packet type of a frame's first byte. */
const PUBLISH = 3;
const SUBSCRIBE = 8;
const SUBACK = 9;
const UNSUBSCRIBE = 10;
const CONNECT = 1;

/** Splits a byte stream into whole MQTT packets (fixed header + remaining length). */
class Framer {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Buffer[] = [];
    let at = 0;
    for (;;) {
      if (this.buffer.length - at < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      for (; i < this.buffer.length && i < at + 5; i++) {
        const b = this.buffer[i];
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete) {
        if (i >= at + 5) throw new Error("malformed MQTT remaining length");
        break;
      }
      const end = i + length;
      if (end > this.buffer.length) break;
      frames.push(this.buffer.subarray(at, end));
      at = end;
    }
    this.buffer = at === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(at);
    return frames;
  }
}

type Packet = mqtt_packet.Packet;

/** Parses one whole frame (mqtt-packet emits synchronously). */
function parse(frame: Buffer, protocol_version: number): Packet {
  const parser = mqtt_packet.parser({ protocolVersion: protocol_version });
  let packet: Packet | null = null;
  let error: Error | null = null;
  parser.on("packet", (p: Packet) => (packet = p));
  parser.on("error", (e: Error) => (error = e));
  parser.parse(frame);
  if (error !== null) throw error;
  if (packet === null) throw new Error("incomplete MQTT packet");
  return packet;
}

function topic_valid(topic: string, limits: AwsIotLimits): boolean {
  return Buffer.byteLength(topic) <= limits.topic_max_bytes && topic.split("/").length - 1 <= limits.topic_max_slashes;
}

class Connection {
  readonly stats: ConnectionStats;
  private readonly client_framer = new Framer();
  private readonly broker_framer = new Framer();
  private version = 4;
  private connected = false;
  private readonly in_window: SlidingWindow;
  /** window_ms less inbound_jitter_ms: what refuses. */
  private readonly in_judged: SlidingWindow;
  private readonly out_window: SlidingWindow;
  private readonly in_pipe: Shaper;
  private readonly out_pipe: Shaper;
  private readonly out_queue: { frame: Buffer; size: number; queued_ms: number }[] = [];
  private out_queued_bytes = 0;
  private out_timer: ReturnType<typeof setTimeout> | null = null;
  private readonly filters = new Set<string>();
  /** SUBSCRIBEs forwarded with some filters refused here: messageId -> positions and the filters forwarded. */
  private readonly pending_subs = new Map<number, { total: number; refused: Set<number>; forwarded: string[] }>();
  private client_needs_drain = false;
  private closed = false;
  /** Client packets waiting behind a publish the throughput limit delays (in order); the client socket is paused meanwhile. */
  private readonly in_held: Buffer[] = [];
  private in_held_since_ms = 0;
  private in_timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly proxy: AwsIotProxy,
    private readonly client: net.Socket,
    private readonly broker: net.Socket,
    n: number,
    private readonly limits: AwsIotLimits,
  ) {
    this.in_window = new SlidingWindow(limits.window_ms);
    this.in_judged = new SlidingWindow(limits.window_ms - limits.inbound_jitter_ms);
    this.out_window = new SlidingWindow(limits.window_ms);
    this.in_pipe = new Shaper(limits.bytes_per_s);
    this.out_pipe = new Shaper(limits.bytes_per_s);
    this.stats = {
      n,
      client_id: null,
      protocol_version: null,
      opened_ms: performance.now(),
      closed_ms: null,
      closed_by: null,
      violations: no_violations(),
      near_misses: 0,
      in_delayed: 0,
      in_delay_ms_total: 0,
      in_publishes: 0,
      in_bytes: 0,
      out_publishes: 0,
      out_bytes: 0,
      out_wire_bytes: 0,
      in_wire_bytes: 0,
      delayed: 0,
      delay_ms_total: 0,
      max_in_publishes_per_s: 0,
      max_in_bytes_per_s: 0,
      max_out_publishes_per_s: 0,
      max_out_bytes_per_s: 0,
      subscriptions: 0,
      qos2_subscriptions_downgraded: 0,
      out_by_topic: {},
      taken_over: false,
      first_out_ms: null,
      last_out_ms: null,
    };
    client.on("data", (chunk: Buffer) => this.guard(() => this.from_client(chunk)));
    broker.on("data", (chunk: Buffer) => this.guard(() => this.from_broker(chunk)));
    client.on("drain", () => {
      this.client_needs_drain = false;
      this.update_broker_flow();
    });
    broker.on("drain", () => client.resume());
    client.on("close", () => this.close("client"));
    broker.on("close", () => {
      // AWS IoT Core tells an MQTT 5 client its session was taken over (0x8E); mosquitto 2.0 just closes it.
      if (this.stats.taken_over && this.version === 5 && !this.closed) {
        this.client.write(mqtt_packet.generate({ cmd: "disconnect", reasonCode: 0x8e } as Packet, { protocolVersion: 5 }));
      }
      this.close("broker");
    });
    client.on("error", () => this.close("client"));
    broker.on("error", () => this.close("broker"));
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch {
      this.close("malformed");
    }
  }

  private violation(kind: ViolationKind, size = 0): void {
    this.stats.violations[kind]++;
    this.proxy.violations[kind]++;
    if (this.proxy.violation_log.length < 1000) {
      const now = performance.now();
      this.in_window.prune(now);
      this.proxy.violation_log.push({ kind, client_id: this.stats.client_id, at_ms: now, size, window_publishes: this.in_window.count, window_bytes: this.in_window.bytes });
    }
  }

  /** Closes the connection for a violation; MQTT 5 clients get a DISCONNECT with the reason first. */
  private refuse(kind: ViolationKind, reason_code: number | null): void {
    this.violation(kind);
    if (this.version === 5 && this.connected && reason_code !== null && !this.closed) {
      this.client.write(mqtt_packet.generate({ cmd: "disconnect", reasonCode: reason_code } as Packet, { protocolVersion: 5 }));
    }
    this.close(kind);
  }

  close(by: string): void {
    if (this.closed) return;
    this.closed = true;
    this.stats.closed_ms = performance.now();
    this.stats.closed_by = by;
    if (this.out_timer !== null) clearTimeout(this.out_timer);
    if (this.in_timer !== null) clearTimeout(this.in_timer);
    this.out_queue.length = 0;
    this.in_held.length = 0;
    this.broker.destroy();
    // What was written (a DISCONNECT with a reason) still goes out.
    this.client.end();
    setTimeout(() => this.client.destroy(), 200).unref?.();
  }

  private to_broker(frame: Buffer): void {
    if (this.closed) return;
    if (!this.broker.write(frame)) this.client.pause();
  }

  private to_client(frame: Buffer): void {
    if (this.closed) return;
    this.stats.out_wire_bytes += frame.length;
    if (!this.client.write(frame)) {
      this.client_needs_drain = true;
      this.update_broker_flow();
    }
  }

  private update_broker_flow(): void {
    if (this.client_needs_drain || this.out_queued_bytes > 8 * 1024 * 1024) this.broker.pause();
    else this.broker.resume();
  }

  private from_client(chunk: Buffer): void {
    for (const frame of this.client_framer.push(chunk)) {
      if (this.closed) return;
      this.stats.in_wire_bytes += frame.length;
      if (this.in_held.length > 0) {
        // Behind a delayed publish: delayed too.
        if (frame[0] >> 4 === PUBLISH) this.stats.in_delayed++;
        this.in_held.push(frame);
      } else this.client_frame(frame);
    }
  }

  /** Handles the client's packets held behind a delayed publish, in order, until one must wait again. */
  private release_held(): void {
    this.in_timer = null;
    while (this.in_held.length > 0 && !this.closed) {
      const frame = this.in_held.shift() as Buffer;
      const was = this.in_held.length;
      this.client_frame(frame, true);
      if (this.in_held.length > was) return; // it went back to the front: still waiting
    }
    if (!this.closed) this.client.resume();
  }

  private client_frame(frame: Buffer, released = false): void {
    const type = frame[0] >> 4;
    if (!this.connected) {
      if (type !== CONNECT) return this.close("malformed");
      if (frame.length > this.limits.max_message_bytes) return this.refuse("connect_too_large", null);
      const p = parse(frame, 4) as mqtt_packet.IConnectPacket;
      this.version = p.protocolVersion ?? 4;
      this.stats.protocol_version = this.version;
      this.stats.client_id = p.clientId;
      if (p.clientId !== "" && !this.proxy.note_connect(p.clientId, this)) return this.refuse("connect_rate", null);
      this.connected = true;
      this.to_broker(frame);
      return;
    }
    if (type === PUBLISH) this.client_publish(frame, released);
    else if (type === SUBSCRIBE) this.client_subscribe(frame);
    else if (type === UNSUBSCRIBE) {
      const p = parse(frame, this.version) as mqtt_packet.IUnsubscribePacket;
      for (const f of p.unsubscriptions) this.filters.delete(f);
      this.stats.subscriptions = this.filters.size;
      this.to_broker(frame);
    } else this.to_broker(frame);
  }

  private client_publish(frame: Buffer, released: boolean): void {
    const p = parse(frame, this.version) as mqtt_packet.IPublishPacket;
    const payload_bytes = typeof p.payload === "string" ? Buffer.byteLength(p.payload) : p.payload.length;
    const size = Buffer.byteLength(p.topic) + payload_bytes;
    if (size > this.limits.max_message_bytes) {
      if (p.retain) this.violation("retained_too_large");
      return this.refuse("publish_too_large", 0x95);
    }
    if (p.qos === 2) return this.refuse("qos2_publish", 0x9b);
    if (!topic_valid(p.topic, this.limits)) return this.refuse("topic_invalid", 0x90);
    const now = performance.now();
    this.in_window.prune(now);
    this.in_judged.prune(now);
    const pipe_wait_ms = this.in_pipe.wait_ms(now);
    if (pipe_wait_ms >= 1) {
      // Delayed in processing: this publish and everything after it wait until the pipe has processed what came before.
      if (!released) {
        this.stats.in_delayed++;
        this.in_held_since_ms = now;
      }
      this.in_held.unshift(frame);
      this.client.pause();
      if (this.in_timer === null) this.in_timer = setTimeout(() => this.guard(() => this.release_held()), pipe_wait_ms);
      return;
    }
    if (released) this.stats.in_delay_ms_total += now - this.in_held_since_ms;
    if (this.in_judged.count + 1 > this.limits.publishes_per_s) return this.violation("inbound_publish_rate", size);
    if (this.in_window.count + 1 > this.limits.publishes_per_s) {
      this.stats.near_misses++;
      this.proxy.near_misses++;
    }
    this.in_window.add(now, size);
    this.in_judged.add(now, size);
    this.in_pipe.take(now, size);
    this.stats.in_publishes++;
    this.stats.in_bytes += size;
    this.stats.max_in_publishes_per_s = Math.max(this.stats.max_in_publishes_per_s, this.in_window.count);
    this.stats.max_in_bytes_per_s = Math.max(this.stats.max_in_bytes_per_s, this.in_window.bytes);
    this.to_broker(frame);
  }

  private client_subscribe(frame: Buffer): void {
    const p = parse(frame, this.version) as mqtt_packet.ISubscribePacket;
    if (p.subscriptions.length > this.limits.filters_per_subscribe_max) return this.refuse("subscribe_over_8", 0x97);
    if (p.subscriptions.some((s) => !topic_valid(s.topic, this.limits))) return this.refuse("topic_invalid", 0x8f);
    const refused = new Set<number>();
    const forwarded: mqtt_packet.ISubscription[] = [];
    let rewritten = false;
    p.subscriptions.forEach((s, i) => {
      if (!this.filters.has(s.topic)) {
        if (this.filters.size >= this.limits.subscriptions_max) {
          refused.add(i);
          this.violation("subscriptions_over_50");
          rewritten = true;
          return;
        }
        this.filters.add(s.topic);
      }
      if (s.qos === 2) {
        this.stats.qos2_subscriptions_downgraded++;
        rewritten = true;
        forwarded.push({ ...s, qos: 1 });
      } else forwarded.push(s);
    });
    this.stats.subscriptions = this.filters.size;
    const id = p.messageId ?? 0;
    if (forwarded.length === 0) {
      const suback = { cmd: "suback", messageId: id, granted: p.subscriptions.map(() => 0x80) } as Packet;
      this.to_client(mqtt_packet.generate(suback, { protocolVersion: this.version }));
      return;
    }
    this.pending_subs.set(id, { total: p.subscriptions.length, refused, forwarded: forwarded.map((s) => s.topic) });
    if (!rewritten) return this.to_broker(frame);
    this.to_broker(mqtt_packet.generate({ ...p, subscriptions: forwarded } as Packet, { protocolVersion: this.version }));
  }

  private from_broker(chunk: Buffer): void {
    for (const frame of this.broker_framer.push(chunk)) {
      if (this.closed) return;
      const type = frame[0] >> 4;
      if (type === PUBLISH) this.deliver(frame);
      else if (type === SUBACK) this.broker_suback(frame);
      else this.to_client(frame);
    }
  }

  private broker_suback(frame: Buffer): void {
    const p = parse(frame, this.version) as mqtt_packet.ISubackPacket;
    const pending = this.pending_subs.get(p.messageId ?? 0);
    if (pending === undefined) return this.to_client(frame);
    this.pending_subs.delete(p.messageId ?? 0);
    const from_broker = p.granted as number[];
    from_broker.forEach((code, i) => {
      if (code >= 0x80) this.filters.delete(pending.forwarded[i]);
    });
    this.stats.subscriptions = this.filters.size;
    if (pending.refused.size === 0) return this.to_client(frame);
    const granted: number[] = [];
    let next = 0;
    for (let i = 0; i < pending.total; i++) granted.push(pending.refused.has(i) ? 0x80 : (from_broker[next++] ?? 0x80));
    this.to_client(mqtt_packet.generate({ ...p, granted } as Packet, { protocolVersion: this.version }));
  }

  /** Queues a delivery to the client behind the outbound limits. */
  private deliver(frame: Buffer): void {
    const p = parse(frame, this.version) as mqtt_packet.IPublishPacket;
    const payload_bytes = typeof p.payload === "string" ? Buffer.byteLength(p.payload) : p.payload.length;
    const size = Buffer.byteLength(p.topic) + payload_bytes;
    const by_topic = (this.stats.out_by_topic[p.topic] ??= { publishes: 0, bytes: 0 });
    by_topic.publishes++;
    by_topic.bytes += size;
    this.out_queue.push({ frame, size, queued_ms: performance.now() });
    this.out_queued_bytes += frame.length;
    this.drain_out();
    this.update_broker_flow();
  }

  private drain_out(): void {
    if (this.out_timer !== null || this.closed) return;
    while (this.out_queue.length > 0) {
      const m = this.out_queue[0];
      const now = performance.now();
      this.out_window.prune(now);
      const by_count = this.out_window.count + 1 > this.limits.publishes_per_s;
      const pipe_wait_ms = this.out_pipe.wait_ms(now);
      if (by_count || pipe_wait_ms >= 1) {
        const wait = Math.max(1, by_count ? this.out_window.oldest_expires_ms() - now : 0, pipe_wait_ms);
        this.out_timer = setTimeout(() => {
          this.out_timer = null;
          this.drain_out();
          this.update_broker_flow();
        }, wait);
        return;
      }
      this.out_queue.shift();
      this.out_queued_bytes -= m.frame.length;
      if (now - m.queued_ms >= 1) {
        this.stats.delayed++;
        this.stats.delay_ms_total += now - m.queued_ms;
        this.proxy.delayed_deliveries++;
      }
      this.out_window.add(now, m.size);
      this.out_pipe.take(now, m.size);
      this.stats.out_publishes++;
      this.stats.out_bytes += m.size;
      this.stats.first_out_ms ??= now;
      this.stats.last_out_ms = now;
      this.stats.max_out_publishes_per_s = Math.max(this.stats.max_out_publishes_per_s, this.out_window.count);
      this.stats.max_out_bytes_per_s = Math.max(this.stats.max_out_bytes_per_s, this.out_window.bytes);
      this.to_client(m.frame);
    }
  }
}

export interface ClientTotals {
  connections: number;
  in_publishes: number;
  in_bytes: number;
  out_publishes: number;
  out_bytes: number;
  out_wire_bytes: number;
  delayed: number;
  max_in_publishes_per_s: number;
  max_in_bytes_per_s: number;
  max_out_publishes_per_s: number;
  max_out_bytes_per_s: number;
  violations: Violations;
}

export interface ProxySnapshot {
  violations: Violations;
  violations_total: number;
  delayed_deliveries: number;
  near_misses: number;
  connections: ConnectionStats[];
  violation_log: AwsIotProxy["violation_log"];
}

/** The connections of one client id, summed (maxima are the largest of any one connection). */
export function client_totals(connections: readonly ConnectionStats[], client_id: string): ClientTotals {
  const t: ClientTotals = {
    connections: 0,
    in_publishes: 0,
    in_bytes: 0,
    out_publishes: 0,
    out_bytes: 0,
    out_wire_bytes: 0,
    delayed: 0,
    max_in_publishes_per_s: 0,
    max_in_bytes_per_s: 0,
    max_out_publishes_per_s: 0,
    max_out_bytes_per_s: 0,
    violations: no_violations(),
  };
  for (const s of connections) {
    if (s.client_id !== client_id) continue;
    t.connections++;
    t.in_publishes += s.in_publishes;
    t.in_bytes += s.in_bytes;
    t.out_publishes += s.out_publishes;
    t.out_bytes += s.out_bytes;
    t.out_wire_bytes += s.out_wire_bytes;
    t.delayed += s.delayed;
    t.max_in_publishes_per_s = Math.max(t.max_in_publishes_per_s, s.max_in_publishes_per_s);
    t.max_in_bytes_per_s = Math.max(t.max_in_bytes_per_s, s.max_in_bytes_per_s);
    t.max_out_publishes_per_s = Math.max(t.max_out_publishes_per_s, s.max_out_publishes_per_s);
    t.max_out_bytes_per_s = Math.max(t.max_out_bytes_per_s, s.max_out_bytes_per_s);
    for (const k of violation_kinds) t.violations[k] += s.violations[k];
  }
  return t;
}

/**
 * Listens on a free 127.0.0.1 port and relays every connection to the
 * broker at `broker_port` under the AWS IoT Core limits (see the header).
 */
export class AwsIotProxy {
  /** Violations by kind, over all connections. */
  readonly violations: Violations = no_violations();
  /** Deliveries that waited for the outbound limits, over all connections. */
  delayed_deliveries = 0;
  /** Inbound publishes within the limits only thanks to inbound_jitter_ms. */
  near_misses = 0;
  /** The first 1000 violations: when (performance.now()), what, and the client's inbound 1000 ms window before it. */
  readonly violation_log: { kind: ViolationKind; client_id: string | null; at_ms: number; size: number; window_publishes: number; window_bytes: number }[] = [];
  private readonly all: Connection[] = [];
  private readonly last_connect = new Map<string, number>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly limits: AwsIotLimits,
  ) {}

  static async start(broker_port: number, limits: Partial<AwsIotLimits> = {}): Promise<AwsIotProxy> {
    let proxy: AwsIotProxy | null = null;
    const server = net.createServer((client) => proxy?.accept(client, broker_port));
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        if (typeof address === "object" && address !== null) resolve(address.port);
        else reject(new Error("the AWS IoT proxy has no port"));
      });
    });
    proxy = new AwsIotProxy(server, port, { ...aws_iot_limits, ...limits });
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Every connection so far, oldest first. */
  get connections(): ConnectionStats[] {
    return this.all.map((c) => c.stats);
  }

  get violations_total(): number {
    return Object.values(this.violations).reduce((a, b) => a + b, 0);
  }

  /** The connections of one client id, summed (maxima are the largest of any one connection). */
  client(client_id: string): ClientTotals {
    return client_totals(this.connections, client_id);
  }

  /** Everything counted so far, as plain data. */
  snapshot(): ProxySnapshot {
    return {
      violations: { ...this.violations },
      violations_total: this.violations_total,
      delayed_deliveries: this.delayed_deliveries,
      near_misses: this.near_misses,
      connections: this.connections,
      violation_log: this.violation_log,
    };
  }

  /** Whether a CONNECT with this client id is within 1 per second (and notes it); an open connection with the id is being taken over. */
  note_connect(client_id: string, from: Connection): boolean {
    const now = performance.now();
    const last = this.last_connect.get(client_id);
    this.last_connect.set(client_id, now);
    if (last !== undefined && now - last < 1000 / this.limits.connects_per_client_id_per_s) return false;
    for (const c of this.all) if (c !== from && c.stats.client_id === client_id && c.stats.closed_ms === null) c.stats.taken_over = true;
    return true;
  }

  private accept(client: net.Socket, broker_port: number): void {
    client.setNoDelay(true);
    const broker = net.connect({ host: "127.0.0.1", port: broker_port });
    broker.setNoDelay(true);
    this.all.push(new Connection(this, client, broker, this.all.length + 1, this.limits));
  }

  async close(): Promise<void> {
    for (const c of this.all) c.close("proxy");
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The proxy in a process of its own (this file run with `--serve PORT`), so
 * the arrival times it measures are the link's, not delayed by whatever
 * else runs in the test's event loop: a replica's fsyncs and appends in the
 * same process held the proxy's reads back and made packets sent a second
 * apart arrive as if closer together. Stats come back over stdin/stdout as
 * JSON lines.
 */
export class AwsIotProxyProcess {
  private readonly pending: ((line: string) => void)[] = [];
  private readonly kill_on_exit = (): void => this.child.kill("SIGKILL");

  private constructor(
    private readonly child: Bun.Subprocess<"pipe", "pipe", "inherit">,
    readonly port: number,
    lines: AsyncGenerator<string>,
  ) {
    process.on("exit", this.kill_on_exit);
    void (async () => {
      for await (const line of lines) this.pending.shift()?.(line);
    })();
  }

  static async start(broker_port: number, limits: Partial<AwsIotLimits> = {}): Promise<AwsIotProxyProcess> {
    const child = Bun.spawn([process.execPath, new URL(import.meta.url).pathname, "--serve", String(broker_port), JSON.stringify(limits)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    const lines = read_lines(child.stdout);
    const first = await Promise.race([lines.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the AWS IoT proxy process did not start")), 10_000))]);
    if (first.done) throw new Error("the AWS IoT proxy process exited at start");
    return new AwsIotProxyProcess(child, (JSON.parse(first.value) as { port: number }).port, lines);
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async snapshot(): Promise<ProxySnapshot> {
    const line = new Promise<string>((resolve) => this.pending.push(resolve));
    this.child.stdin.write("stats\n");
    this.child.stdin.flush();
    return JSON.parse(await line) as ProxySnapshot;
  }

  async close(): Promise<void> {
    process.off("exit", this.kill_on_exit);
    try {
      this.child.stdin.write("close\n");
      this.child.stdin.flush();
    } catch {}
    await Promise.race([this.child.exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
    this.child.kill("SIGKILL");
  }
}

async function* read_lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
      yield text.slice(0, nl);
      text = text.slice(nl + 1);
    }
  }
}

if (import.meta.main && process.argv[2] === "--serve") {
  const proxy = await AwsIotProxy.start(Number(process.argv[3]), JSON.parse(process.argv[4] ?? "{}") as Partial<AwsIotLimits>);
  process.stdout.write(`${JSON.stringify({ port: proxy.port })}\n`);
  let text = "";
  process.stdin.on("data", (chunk: Buffer) => {
    text += chunk.toString();
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
      const command = text.slice(0, nl).trim();
      text = text.slice(nl + 1);
      if (command === "stats") process.stdout.write(`${JSON.stringify(proxy.snapshot())}\n`);
      else if (command === "close") void proxy.close().then(() => process.exit(0));
    }
  });
  process.stdin.on("end", () => void proxy.close().then(() => process.exit(0)));
}
