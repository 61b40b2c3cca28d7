import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { encode_message } from "../../src/sync/messages.ts";
import type { TopicKind } from "../../src/sync/topics.ts";
import { forge, make_events, overflow_events } from "../sim/hostile.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { type BrokerKind, type TestBroker, broker_kinds, start_broker } from "../support/test_broker.ts";
import { LiveReplica, converged, describe_vvs, wait_until } from "./live_replica.ts";

/**
 * Replicas syncing through real brokers started here on free ports: the
 * same tests against mosquitto and against RabbitMQ's MQTT plugin (the
 * broker matrix; each broker comes from apt in .ci/run, and a missing one
 * fails the tests). Waits are bounded (wait_until) and assert outcomes,
 * never speed.
 */
for (const kind of broker_kinds) sync_tests(kind);

function sync_tests(kind: BrokerKind): void {
  let broker: TestBroker;
  const open: LiveReplica[] = [];

  beforeAll(async () => {
    broker = await start_broker(kind);
  });

  afterAll(async () => {
    for (const r of open) await r.close().catch(() => {});
    await broker.stop();
  });

  /** A replica with what this broker needs, under the test's own options. */
  async function replica(name: string, options: Parameters<typeof LiveReplica.open>[2] = {}, dir = temp_dir()): Promise<LiveReplica> {
    const { transport, ...rest } = options;
    const r = await LiveReplica.open(dir, broker.url, { name, ...broker.options.replicator, ...rest, transport: { ...broker.options.transport, ...transport } });
    open.push(r);
    return r;
  }

  async function close(r: LiveReplica): Promise<void> {
    await r.close();
    open.splice(open.indexOf(r), 1);
  }

  function payloads_equal(a: LiveReplica, b: LiveReplica, origin: string): boolean {
    const x = [...a.log.events_after(origin, 0)];
    const y = [...b.log.events_after(origin, 0)];
    return x.length === y.length && x.every((e, i) => Buffer.compare(e.payload, y[i].payload) === 0 && e.time_ms === y[i].time_ms);
  }

  describe(`sync through a real ${kind}`, () => {
    test("three replicas converge", async () => {
      const rs = [await replica("a"), await replica("b"), await replica("c")];
      await wait_until(() => rs.every((r) => r.transport.status().connected), () => describe_vvs(rs), 10_000);
      await Promise.all(rs.map((r) => r.append(300)));
      await wait_until(() => converged(rs), () => describe_vvs(rs));
      for (const r of rs) for (const o of rs) expect(payloads_equal(r, o, o.id)).toBe(true);
      for (const r of rs) await close(r);
    });

    test("a replica offline while the others append 10 000 events catches up", async () => {
      const a = await replica("a");
      const b = await replica("b");
      const c_dir = temp_dir();
      const c = await replica("c", {}, c_dir);
      await c.append(10);
      await wait_until(() => converged([a, b, c]), () => describe_vvs([a, b, c]));
      await close(c);
      await Promise.all([a.append(5000, 200), b.append(5000, 200)]);
      const c2 = await replica("c", {}, c_dir);
      const rs = [a, b, c2];
      await wait_until(() => converged(rs), () => describe_vvs(rs), 120_000);
      expect(c2.log.held(a.id)).toBe(5000);
      expect(payloads_equal(c2, a, a.id) && payloads_equal(c2, b, b.id)).toBe(true);
      for (const r of rs) await close(r);
    });

    test("the broker killed and restarted mid-sync (mosquitto forgets everything, RabbitMQ keeps its disk): replicas reconnect and converge with no loss", async () => {
      const a = await replica("a");
      await a.append(20_000, 200, 500);
      // A small window makes b's catch-up take many round trips, so the kill lands in the middle of it.
      const b = await replica("b", { window_bytes: 64 * 1024 });
      await wait_until(() => b.log.held(a.id) > 0, () => describe_vvs([a, b]), 60_000, 2);
      await broker.kill();
      const during = b.log.held(a.id);
      await a.append(2000, 200);
      await broker.start();
      await wait_until(() => converged([a, b]), () => describe_vvs([a, b]), 120_000);
      expect(during).toBeLessThan(20_000);
      expect(b.transport.status().connects).toBeGreaterThanOrEqual(2);
      expect(b.log.held(a.id)).toBe(22_000);
      expect(payloads_equal(a, b, a.id)).toBe(true);
      await close(a);
      await close(b);
    });

    test("with the AWS IoT preset (paced to 100 publishes/s and 512 KiB/s) a backlog still converges", async () => {
      const transport = { preset: "aws_iot" as const };
      const a = await replica("a", { transport });
      await a.append(3000, 300);
      const b = await replica("b", { transport });
      await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
      expect(payloads_equal(a, b, a.id)).toBe(true);
      await close(a);
      await close(b);
    });

    test("on a rate-limited link own events are pushed only as the queue has room, so none are dropped", async () => {
      // 256 KiB/s and a 512 KiB queue: 1.5 MB of fresh events would overflow it if pushed as they became durable.
      const transport = { bytes_per_s: 256 * 1024, queue_max_bytes: 512 * 1024 };
      const a = await replica("a", { transport });
      const b = await replica("b");
      await wait_until(() => a.rep.status(Date.now()).peers.some((p) => p.id === b.id), () => describe_vvs([a, b]));
      await a.append(5000, 300, 500);
      await wait_until(() => converged([a, b]), () => describe_vvs([a, b]), 60_000);
      expect(payloads_equal(a, b, a.id)).toBe(true);
      expect(a.transport.status().queue.dropped).toBe(0);
      expect(a.rep.counters.events_pushed).toBe(5000);
      await close(a);
      await close(b);
    });

    test("with the AWS IoT preset a replica warns when it needs more subscriptions than a connection allows", async () => {
      const transport = { preset: "aws_iot" as const };
      const origins = (n: number) => Array.from({ length: n }, (_, i) => `00000000000000${(0xa0 + i).toString(16)}`);
      const few = await replica("few", { transport, pull: origins(5) });
      const many = await replica("many", { transport, pull: origins(6) });
      await wait_until(() => few.transport.status().connected && many.transport.status().connected, () => "not connected");
      expect(few.rep.subscriptions().length).toBe(42);
      expect(few.warnings.filter((w) => w.includes("subscriptions"))).toEqual([]);
      expect(many.warnings.filter((w) => w.includes("needs 56 subscriptions") && w.includes("allows 50"))).toHaveLength(1);
      await close(few);
      await close(many);
    });

    test("peers see a replica offline after a clean stop (status) and after its link dies (last will)", async () => {
      const a = await replica("a");
      const b = await replica("b");
      const c = await replica("c");
      const online = (who: LiveReplica) => a.rep.status(Date.now()).peers.find((p) => p.id === who.id)?.online;
      await wait_until(() => online(b) === true && online(c) === true, () => describe_vvs([a, b, c]));
      await close(b);
      await wait_until(() => online(b) === false, () => describe_vvs([a, c]));
      // c's link dies without a DISCONNECT: the broker publishes its will.
      c.transport.abort();
      expect(online(c)).toBe(true);
      await wait_until(() => online(c) === false, () => describe_vvs([a]), 30_000);
      await close(a);
      open.splice(open.indexOf(c), 1);
      await c.log.close();
    });

    test("partial replication: a spoke holds only the origins it pulls", async () => {
      const hub = await replica("hub");
      const other = await replica("other");
      const spoke = await replica("spoke", { pull: [hub.id] });
      await Promise.all([hub.append(500), other.append(500), spoke.append(50)]);
      const rs = [hub, other, spoke];
      const pulls = (r: LiveReplica, o: string) => r !== spoke || o === hub.id;
      await wait_until(() => converged(rs, pulls), () => describe_vvs(rs));
      expect(Object.keys(spoke.log.vv()).sort()).toEqual([hub.id, spoke.id].sort());
      expect(hub.log.held(spoke.id)).toBe(50);
      for (const r of rs) await close(r);
    });

    test("a replica restarted with the same data directory resumes without downloading again", async () => {
      const a = await replica("a");
      const b_dir = temp_dir();
      const b = await replica("b", {}, b_dir);
      await a.append(5000, 256);
      await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
      const first_bytes = b.rep.counters.bytes_in;
      await close(b);
      const b2 = await replica("b", {}, b_dir);
      await a.append(10, 256);
      await wait_until(() => converged([a, b2]), () => describe_vvs([a, b2]));
      // Let a few vv refreshes pass, then count what the restart cost.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(b2.rep.counters.events_appended).toBe(10);
      expect(b2.rep.counters.bytes_in).toBeLessThan(first_bytes / 20);
      await close(a);
      await close(b2);
    });

    test("hostile bytes on every topic a replica listens on: it stays up, its data intact, the counters say why", async () => {
      const a = await replica("a");
      const b = await replica("b");
      await a.append(100);
      await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
      const evil = "00000000000000ee";
      const attacker = mqtt.connect(broker.url, { clientId: evil, protocolVersion: broker.protocol_version, reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => {
        attacker.once("connect", () => resolve());
        attacker.once("error", reject);
      });
      const publish = (topic: string, payload: Uint8Array) =>
        new Promise<void>((resolve) => attacker.publish(topic, Buffer.from(payload), { qos: 1 }, () => resolve()));
      const topics = b.rep.subscriptions().map((f) => f.replace("+", evil));
      const base = { from: evil };
      for (const topic of topics) {
        const kind = topic.split("/")[2] as TopicKind;
        await publish(topic, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
        await publish(topic, encode_message({ kind: "status", from: evil, online: true, session: 1 }).subarray(0, 5));
        await publish(topic, forge(kind, base, null, 7));
        await publish(topic, forge(kind, { from: a.id }));
      }
      const bad_crc = make_events(evil, 1, new TextEncoder().encode("forged"));
      bad_crc[bad_crc.length - 2] ^= 1;
      await publish(`it/${evil}/events`, forge("events", base, bad_crc));
      await publish(`it/${evil}/events`, forge("events", base, overflow_events(evil, new Uint8Array(4))));
      // Answers b never asked evil for, whatever they hold.
      await publish(`it/${evil}/to/${b.id}`, forge("to", { ...base, to: b.id, req: 1, last: true }, make_events(a.id, 101, new Uint8Array(4))));
      await publish(`it/${evil}/events`, forge("events", base, make_events(a.id, 101, new Uint8Array(4))));
      await publish(`it/${evil}/vv`, encode_message({ kind: "vv", from: evil, name: "liar", vv: new Map([[a.id, 1e12]]), pull: "*" }));
      await a.append(100);
      await wait_until(() => b.log.held(a.id) === 200, () => describe_vvs([a, b]));
      const d = b.rep.counters.dropped;
      expect(d.bad_cbor).toBeGreaterThanOrEqual(topics.length * 2);
      expect(d.unknown_version).toBeGreaterThanOrEqual(topics.length);
      expect(d.impersonation).toBeGreaterThanOrEqual(1);
      expect(d.bad_frame).toBeGreaterThanOrEqual(1);
      expect(d.seq_overflow).toBeGreaterThanOrEqual(1);
      expect(d.wrong_origin).toBeGreaterThanOrEqual(1);
      expect(d.unsolicited_answer).toBeGreaterThanOrEqual(1);
      expect(payloads_equal(a, b, a.id)).toBe(true);
      expect(b.log.verify().ok).toBe(true);
      await new Promise<void>((resolve) => attacker.end(true, {}, () => resolve()));
      await close(a);
      await close(b);
    });
  });
}
