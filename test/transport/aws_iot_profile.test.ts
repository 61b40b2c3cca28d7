import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { AwsIotProxy, AwsIotProxyProcess, aws_iot_limits, client_totals } from "../support/aws_iot_proxy.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { LiveReplica, describe_vvs, wait_until } from "./live_replica.ts";

/**
 * The AWS IoT Core profile, faithfully: a proxy that enforces per connection
 * what AWS IoT Core enforces (test/support/aws_iot_proxy.ts) in front of a
 * real mosquitto. (a) the proxy's limits are real, as a raw mqtt.js client
 * that breaks each rule observes them; (b) replicas with the aws_iot preset
 * live within them while one catches up a backlog. Waits are bounded and
 * assert what was counted, never speed; the catch-up rate is printed.
 */
let broker: Mosquitto;
let proxy: AwsIotProxy;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
  proxy = await AwsIotProxy.start(broker.port);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await proxy.close();
  await broker.stop();
});

let next_id = 0;
function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${++next_id}`;
}

interface Observed {
  client: MqttClient;
  closed: boolean;
  disconnect_reason: number | null;
  messages: { topic: string; payload: Buffer; retain: boolean }[];
}

async function connect(options: IClientOptions & { clientId?: string } = {}): Promise<Observed> {
  const client = mqtt.connect(proxy.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: unique("raw"), ...options });
  clients.push(client);
  const o: Observed = { client, closed: false, disconnect_reason: null, messages: [] };
  client.on("close", () => (o.closed = true));
  client.on("disconnect", (p) => (o.disconnect_reason = p.reasonCode ?? null));
  client.on("message", (topic, payload, packet) => o.messages.push({ topic, payload, retain: packet.retain }));
  client.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });
  return o;
}

/** Subscribes at QoS 1 (or `qos`) and resolves with the granted QoS or failure code of each filter. */
function subscribe(c: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve) =>
    c.subscribe(filters, { qos }, (err, granted) => {
      // mqtt.js reports an MQTT 5 SUBACK with a failure code as an error that carries the packet.
      const packet = (err as { packet?: { granted?: number[] } } | null)?.packet;
      resolve(err ? (packet?.granted ?? []) : (granted ?? []).map((g) => g.qos));
    }),
  );
}

/** Publishes at QoS 1 and resolves with whether a PUBACK came within `wait_ms`. */
function publish_acked(c: MqttClient, topic: string, payload: Buffer, wait_ms = 2000, retain = false): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), wait_ms);
    c.publish(topic, payload, { qos: 1, retain }, (err) => {
      clearTimeout(timer);
      resolve(!err);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the AWS IoT proxy enforces AWS IoT Core's per-connection limits", () => {
  test("a message of 128 KiB (topic + payload) passes; one byte more closes the connection (MQTT 5: DISCONNECT 0x95)", async () => {
    const topic = `t/${unique("size")}`;
    const sub = await connect();
    await subscribe(sub.client, [topic]);
    const pub = await connect();
    const fits = Buffer.alloc(aws_iot_limits.max_message_bytes - Buffer.byteLength(topic), 1);
    expect(await publish_acked(pub.client, topic, fits)).toBe(true);
    await wait_until(() => sub.messages.length === 1, () => "the 128 KiB message was not delivered");
    const before = proxy.violations.publish_too_large;
    pub.client.publish(topic, Buffer.alloc(fits.length + 1, 2), { qos: 1 });
    await wait_until(() => pub.closed, () => "an over-size publish did not close the connection");
    expect(pub.disconnect_reason).toBe(0x95);
    expect(proxy.violations.publish_too_large).toBe(before + 1);
    await sleep(100);
    expect(sub.messages.length).toBe(1);
  });

  test("MQTT 3.1.1 passes through, and an over-size publish closes it too", async () => {
    const topic = `t/${unique("v4")}`;
    const sub = await connect({ protocolVersion: 4 });
    await subscribe(sub.client, [topic]);
    const pub = await connect({ protocolVersion: 4 });
    expect(await publish_acked(pub.client, topic, Buffer.from("hello"))).toBe(true);
    await wait_until(() => sub.messages.length === 1, () => "not delivered over MQTT 3.1.1");
    pub.client.publish(topic, Buffer.alloc(aws_iot_limits.max_message_bytes, 3), { qos: 1 });
    await wait_until(() => pub.closed, () => "an over-size publish did not close an MQTT 3.1.1 connection");
    expect(sub.messages.length).toBe(1);
  });

  test("a QoS 2 publish closes the connection (MQTT 5: DISCONNECT 0x9B); a QoS 2 subscription is granted as QoS 1", async () => {
    const topic = `t/${unique("qos2")}`;
    const sub = await connect();
    expect(await subscribe(sub.client, [topic], 2)).toEqual([1]);
    const pub = await connect();
    const before = proxy.violations.qos2_publish;
    pub.client.publish(topic, Buffer.from("x"), { qos: 2 });
    await wait_until(() => pub.closed, () => "a QoS 2 publish did not close the connection");
    expect(pub.disconnect_reason).toBe(0x9b);
    expect(proxy.violations.qos2_publish).toBe(before + 1);
    expect(sub.messages.length).toBe(0);
  });

  test("50 subscriptions are granted; the 51st is refused with 0x80 and the connection stays; 9 filters in one SUBSCRIBE close it", async () => {
    const c = await connect();
    const base = unique("subs");
    const filters = Array.from({ length: 50 }, (_, i) => `s/${base}/${i}`);
    for (let i = 0; i < filters.length; i += 8) {
      const granted = await subscribe(c.client, filters.slice(i, i + 8));
      expect(granted.every((g) => g === 1)).toBe(true);
    }
    // Subscribing again to a filter it holds is not a new subscription.
    expect(await subscribe(c.client, [filters[0]])).toEqual([1]);
    const before = proxy.violations.subscriptions_over_50;
    const granted = await subscribe(c.client, [`s/${base}/50`, `s/${base}/51`]);
    expect(granted).toEqual([0x80, 0x80]);
    expect(proxy.violations.subscriptions_over_50).toBe(before + 2);
    expect(c.closed).toBe(false);
    // An unsubscribe frees a place.
    await new Promise<void>((resolve) => c.client.unsubscribe(filters[0], () => resolve()));
    expect(await subscribe(c.client, [`s/${base}/52`])).toEqual([1]);

    const d = await connect();
    d.client.subscribe(Array.from({ length: 9 }, (_, i) => `n/${base}/${i}`), { qos: 1 }, () => {});
    await wait_until(() => d.closed, () => "9 filters in one SUBSCRIBE did not close the connection");
    expect(proxy.violations.subscribe_over_8).toBeGreaterThanOrEqual(1);
  });

  test("over 100 publishes in a second: the rest are discarded (no PUBACK, not delivered)", async () => {
    const topic = `t/${unique("rate")}`;
    const sub = await connect();
    await subscribe(sub.client, [topic]);
    const pub = await connect();
    const before = proxy.violations.inbound_publish_rate;
    const acks = await Promise.all(Array.from({ length: 130 }, (_, i) => publish_acked(pub.client, topic, Buffer.from(String(i)), 1500)));
    expect(acks.filter((a) => a).length).toBe(100);
    expect(acks.slice(0, 100).every((a) => a)).toBe(true);
    expect(proxy.violations.inbound_publish_rate).toBe(before + 30);
    await wait_until(() => sub.messages.length >= 100, () => `delivered ${sub.messages.length}`);
    await sleep(200);
    expect(sub.messages.length).toBe(100);
  });

  test("over 512 KiB/s: the publishes past it are delayed in processing, none lost", async () => {
    const topic = `t/${unique("bytes")}`;
    const pub = await connect();
    const sub = await connect();
    await subscribe(sub.client, [topic]);
    const big = Buffer.alloc(120 * 1024, 7);
    const started = performance.now();
    const acked_ms: number[] = [];
    const acks = await Promise.all(
      Array.from({ length: 5 }, () => publish_acked(pub.client, topic, big, 5000).then((ok) => (acked_ms.push(performance.now() - started), ok))),
    );
    expect(acks).toEqual([true, true, true, true, true]);
    await wait_until(() => sub.messages.length === 5, () => `delivered ${sub.messages.length} of 5`, 5000);
    // The pipe took each 120 KiB in 120/512 s: the fifth was processed no sooner than four of those after the first.
    expect(Math.max(...acked_ms)).toBeGreaterThanOrEqual(((4 * 120) / 512) * 1000 - 50);
    const stats = proxy.connections.find((c) => c.client_id === pub.client.options.clientId);
    expect(stats?.in_delayed).toBeGreaterThanOrEqual(4);
    expect(pub.closed).toBe(false);
  });

  test("deliveries to a client are delayed to 100 publishes and 512 KiB per second, none lost", async () => {
    const topic = `t/${unique("out")}`;
    const sub = await connect();
    await subscribe(sub.client, [topic]);
    const pubs = [await connect(), await connect(), await connect()];
    // Three publishers at 90 messages each (within their own limits) send one subscriber 270 in a burst.
    await Promise.all(pubs.map((p, k) => Promise.all(Array.from({ length: 90 }, (_, i) => publish_acked(p.client, topic, Buffer.from(`${k}:${i}`))))));
    await wait_until(() => sub.messages.length === 270, () => `delivered ${sub.messages.length}`, 10_000);
    const stats = proxy.connections.find((s) => s.client_id === sub.client.options.clientId);
    expect(stats?.max_out_publishes_per_s).toBe(100);
    expect(stats?.delayed).toBeGreaterThanOrEqual(170);
    // Within each publisher, order is kept.
    for (let k = 0; k < 3; k++) {
      const mine = sub.messages.map((m) => m.payload.toString()).filter((p) => p.startsWith(`${k}:`));
      expect(mine).toEqual(Array.from({ length: 90 }, (_, i) => `${k}:${i}`));
    }
    // 6 x 120 KiB: the byte limit holds the rest back.
    const big_topic = `t/${unique("outbig")}`;
    await subscribe(sub.client, [big_topic]);
    const before = sub.messages.length;
    const big = Buffer.alloc(120 * 1024, 9);
    await Promise.all(pubs.map(async (p) => {
      await publish_acked(p.client, big_topic, big);
      await publish_acked(p.client, big_topic, big);
    }));
    await wait_until(() => sub.messages.length === before + 6, () => `delivered ${sub.messages.length - before} of 6`, 10_000);
    const after = proxy.connections.find((s) => s.client_id === sub.client.options.clientId);
    // A pipe of 512 KiB/s: a second holds what it processed, at most the rate plus the message it began last.
    expect(after?.max_out_bytes_per_s).toBeLessThanOrEqual(aws_iot_limits.bytes_per_s + 121 * 1024);
    expect(after?.max_out_bytes_per_s).toBeGreaterThan(aws_iot_limits.bytes_per_s - 121 * 1024);
  });

  test("client-id takeover: a second connection with the same client id closes the first (MQTT 5: 0x8E); a CONNECT within a second of the last is throttled", async () => {
    const id = unique("takeover");
    const first = await connect({ clientId: id });
    await sleep(1100);
    const second = await connect({ clientId: id });
    await wait_until(() => first.closed, () => "the first connection was not taken over");
    expect(first.disconnect_reason).toBe(0x8e);
    expect(second.closed).toBe(false);
    const before = proxy.violations.connect_rate;
    await expect(connect({ clientId: id })).rejects.toThrow("closed before CONNACK");
    expect(proxy.violations.connect_rate).toBe(before + 1);
    await sleep(100);
    expect(second.closed).toBe(false);
  });

  test("retained: one message per topic, a newer one replaces it, an empty one clears it, one over 128 KiB closes the connection", async () => {
    const topic = `r/${unique("retained")}`;
    const pub = await connect();
    expect(await publish_acked(pub.client, topic, Buffer.from("one"), 2000, true)).toBe(true);
    expect(await publish_acked(pub.client, topic, Buffer.from("two"), 2000, true)).toBe(true);
    const a = await connect();
    await subscribe(a.client, [topic]);
    await wait_until(() => a.messages.length === 1, () => "no retained message");
    expect(a.messages.map((m) => [m.payload.toString(), m.retain])).toEqual([["two", true]]);
    expect(await publish_acked(pub.client, topic, Buffer.alloc(0), 2000, true)).toBe(true);
    const b = await connect();
    await subscribe(b.client, [topic]);
    await sleep(200);
    expect(b.messages.length).toBe(0);
    const before = proxy.violations.retained_too_large;
    pub.client.publish(topic, Buffer.alloc(aws_iot_limits.max_message_bytes, 1), { qos: 1, retain: true });
    await wait_until(() => pub.closed, () => "an over-size retained publish did not close the connection");
    expect(proxy.violations.retained_too_large).toBe(before + 1);
    const c = await connect();
    await subscribe(c.client, [topic]);
    await sleep(200);
    expect(c.messages.length).toBe(0);
  });
});

describe("replicas with the aws_iot preset live within AWS IoT Core's limits", () => {
  test("a replica that needs more than 50 filters is refused some: it says so and stays connected instead of reconnecting in a loop", async () => {
    const transport = { preset: "aws_iot" as const, reconnect_period_ms: 300 };
    const others = Array.from({ length: 6 }, (_, i) => `00000000000000${(0xc0 + i).toString(16)}`);
    const greedy = await LiveReplica.open(temp_dir(), proxy.url, { name: "greedy", pull: ["00000000000000bf", ...others], transport });
    try {
      expect(greedy.rep.subscriptions().length).toBeGreaterThan(aws_iot_limits.subscriptions_max);
      await wait_until(() => greedy.transport.status().connected, () => JSON.stringify(greedy.transport.status()), 10_000);
      await sleep(2000);
      expect(greedy.transport.status().connected).toBe(true);
      expect(greedy.transport.status().connects).toBe(1);
      expect(greedy.transport.status().last_error).toContain("subscribe refused");
      expect(greedy.warnings.filter((w) => w.includes("the broker refused some subscriptions"))).toHaveLength(1);
    } finally {
      await greedy.close();
    }
  });

  test("a replica that pulls a list needs more filters than one SUBSCRIBE may carry: it sends them 8 at a time and syncs", async () => {
    const transport = { preset: "aws_iot" as const, reconnect_period_ms: 1500 };
    const hub = await LiveReplica.open(temp_dir(), proxy.url, { name: "hub", transport });
    // Five pulled origins cost 42 filters (the README's arithmetic); AWS closes a connection whose SUBSCRIBE holds more than 8.
    const others = Array.from({ length: 4 }, (_, i) => `00000000000000${(0xb0 + i).toString(16)}`);
    const spoke = await LiveReplica.open(temp_dir(), proxy.url, { name: "spoke", pull: [hub.id, ...others], transport });
    try {
      expect(spoke.rep.subscriptions().length).toBeGreaterThan(8);
      const before = proxy.violations.subscribe_over_8;
      await hub.append(200);
      await wait_until(() => spoke.log.held(hub.id) === 200, () => describe_vvs([hub, spoke]), 30_000);
      expect(proxy.violations.subscribe_over_8).toBe(before);
      expect(spoke.transport.status().connects).toBe(1);
    } finally {
      await spoke.close();
      await hub.close();
    }
  });

  test("a replica offline while its peer appended catches up through the proxy: every event, identical, no violation", async () => {
    const events = 12_000;
    const size = 256;
    // The proxy in a process of its own: in this one, the replicas' fsyncs would hold its reads back and bunch arrivals up.
    // The replicas' own fsyncs (sync: always, in this process) still stall their writes mid-message now and then, so a message
    // can arrive up to ~100 ms late on a loaded box: inbound rates are judged over 900 ms, and what a strict 1000 ms window
    // would have refused is printed as near misses.
    const own = await AwsIotProxyProcess.start(broker.port, { inbound_jitter_ms: 100 });
    const transport = { preset: "aws_iot" as const };
    const opened: LiveReplica[] = [];
    try {
      const a = await LiveReplica.open(temp_dir(), own.url, { name: "a", transport });
      opened.push(a);
      await wait_until(() => a.transport.status().connected, () => describe_vvs([a]), 10_000);
      await a.append(events, size, 500);
      // a pushes its new events live (paced, to nobody); c connects after that, and after a's last second of it, so it catches up by repair alone.
      await wait_until(
        () => a.rep.counters.events_pushed === events && a.transport.status().queue.queued === 0 && a.transport.status().queue.inflight === 0,
        () => describe_vvs([a]),
        30_000,
      ).catch(async (err) => {
        throw new Error(`${err}; proxy violations ${JSON.stringify((await own.snapshot()).violation_log)}`);
      });
      await sleep(1200);
      const c = await LiveReplica.open(temp_dir(), own.url, { name: "c", transport });
      opened.push(c);
      const started = performance.now();
      await wait_until(() => c.log.held(a.id) === events, () => describe_vvs([a, c]), 120_000, 2);
      const seconds = (performance.now() - started) / 1000;
      const snapshot = await own.snapshot();
      const to_c = client_totals(snapshot.connections, c.id);
      const from_a = client_totals(snapshot.connections, a.id);
      const ratio = to_c.out_bytes / seconds / aws_iot_limits.bytes_per_s;
      console.log(
        `aws_iot catch-up of ${events} x ${size} B: ${seconds.toFixed(2)} s from c's start to all ${events} events held, ${to_c.out_bytes} message bytes (${to_c.out_wire_bytes} on the wire) ` +
          `delivered to c in ${to_c.out_publishes} publishes = ${(to_c.out_bytes / seconds / 1024).toFixed(1)} KiB/s = ${ratio.toFixed(3)}x of 512 KiB/s; ` +
          `peak 1 s windows: a sent ${from_a.max_in_publishes_per_s} publishes / ${(from_a.max_in_bytes_per_s / 1024).toFixed(1)} KiB, ` +
          `c got ${to_c.max_out_publishes_per_s} / ${(to_c.max_out_bytes_per_s / 1024).toFixed(1)} KiB, ${to_c.delayed} deliveries delayed by the proxy; ` +
          `c sent ${c.rep.counters.wants_sent} repair requests (${c.rep.counters.wants_timed_out} timed out); violations ${snapshot.violations_total} ${JSON.stringify(snapshot.violation_log.slice(0, 5))}, near misses ${snapshot.near_misses}`,
      );
      // Every event, identical to the origin's.
      for (let seq = 1; seq <= events; seq++) {
        const x = a.log.get(a.id, seq);
        const y = c.log.get(a.id, seq);
        if (x === null || y === null || Buffer.compare(x.payload, y.payload) !== 0 || x.time_ms !== y.time_ms) throw new Error(`event ${a.id}:${seq} differs`);
      }
      expect(c.log.verify().ok).toBe(true);
      // Within the limits: the proxy discarded, refused and closed nothing, and each replica kept its one connection.
      expect(snapshot.violation_log).toEqual([]);
      expect(snapshot.violations_total).toBe(0);
      expect(to_c.connections).toBe(1);
      expect(from_a.connections).toBe(1);
      expect(a.transport.status().queue.dropped).toBe(0);
      // a's pacing as the proxy saw it arrive: a second held at most the rate (and its 50 ms bank) and one message, give or take
      // the link's jitter; publish_queue.test.ts checks the pacing itself on an injected clock.
      expect(from_a.max_in_bytes_per_s).toBeLessThanOrEqual(aws_iot_limits.bytes_per_s * 1.05 + 2 * aws_iot_limits.max_message_bytes);
      // c was sent what it lacked, once: no answer to a request it had given up on.
      expect(c.rep.counters.dropped.unsolicited_answer).toBe(0);
      expect(c.rep.counters.events_duplicate).toBe(0);
    } finally {
      for (const r of opened) await r.close().catch(() => {});
      await own.close();
    }
  });
});
