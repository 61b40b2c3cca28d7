import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RabbitMq } from "../support/rabbitmq.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { LiveReplica, converged, describe_vvs, wait_until } from "./live_replica.ts";

/**
 * A RabbitMQ cluster on this machine (distinct node names and ports, one
 * Erlang cookie): live messages cross the nodes, retained ones stay on the
 * node that got them and reach exact-topic subscriptions only. Replicas on
 * different nodes must converge, and a replica given the nodes (mqtt.url
 * as a list) must fail over when its node dies.
 *
 * Three nodes, not two: the MQTT plugin registers client ids in a Raft
 * group, so a two-node cluster that loses a node refuses every MQTT
 * connection (measured: "client ID registration timed out") and nothing
 * can fail over to it. The README's broker table says so.
 */
let n1: RabbitMq;
let n2: RabbitMq;
let n3: RabbitMq;
const open: LiveReplica[] = [];
/** What the rabbitmq preset sets (node.ts): MQTT 3.1.1, QoS 0 subscriptions, and announcements to peers that come online. */
const on_rabbitmq = { announce_to_new_peers: true, transport: { protocol_version: 4 as const, subscribe_qos: 0 as const } };

beforeAll(async () => {
  n1 = await RabbitMq.start();
  n2 = await RabbitMq.start({ join: n1 });
  n3 = await RabbitMq.start({ join: n1 });
}, 360_000);

afterAll(async () => {
  for (const r of open) await r.close().catch(() => {});
  await n3?.stop();
  await n2?.stop();
  await n1?.stop();
});

async function replica(name: string, url: string | string[], options: Parameters<typeof LiveReplica.open>[2] = {}): Promise<LiveReplica> {
  const { transport, ...rest } = options;
  const r = await LiveReplica.open(temp_dir(), url, { name, ...on_rabbitmq, ...rest, transport: { ...on_rabbitmq.transport, ...transport } });
  open.push(r);
  return r;
}

async function close_all(): Promise<void> {
  while (open.length > 0) await open.pop()?.close();
}

describe("a three-node RabbitMQ cluster", () => {
  test("the nodes form one cluster", () => {
    const status = n1.ctl("cluster_status", "--formatter", "json");
    const running = (JSON.parse(status.slice(status.indexOf("{"))) as { running_nodes: string[] }).running_nodes;
    expect(running.sort()).toEqual([n1.node_name, n2.node_name, n3.node_name].sort());
  });

  test("replicas on different nodes converge, and one that comes late learns them although retained vvs stay on the other node", async () => {
    const a = await replica("a", n1.url);
    const b = await replica("b", n2.url);
    await Promise.all([a.append(2000, 200), b.append(2000, 200)]);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
    // c connects to n3 after a's and b's retained vvs were published (on n1 and n2 only, and to a wildcard subscription neither is handed over).
    const c = await replica("c", n3.url);
    await c.append(100);
    const rs = [a, b, c];
    await wait_until(() => converged(rs), () => describe_vvs(rs));
    for (const r of rs) expect(r.log.verify().ok).toBe(true);
    await close_all();
  });

  test("without announcements a late replica would not hear its peers' retained vvs on RabbitMQ: the preset's announce_to_new_peers is needed", async () => {
    // Both replicas republish their vv only every 60 s here, so only retained delivery or an announcement can tell the late one.
    const quiet = { vv_refresh_ms: 60_000 };
    const a = await replica("a", n1.url, { ...quiet, announce_to_new_peers: false });
    await a.append(50);
    await wait_until(() => a.transport.status().connected && a.log.durable_held(a.id) === 50, () => describe_vvs([a]));
    const deaf = await replica("deaf", n1.url, { ...quiet, announce_to_new_peers: false });
    await wait_until(() => deaf.transport.status().connected, () => describe_vvs([deaf]));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // RabbitMQ did not hand a's retained vv to deaf's `P/+/vv` subscription, and a did not announce itself.
    expect(deaf.rep.status(Date.now()).peers.find((p) => p.id === a.id)?.vv[a.id] ?? 0).toBe(0);
    expect(deaf.log.held(a.id)).toBe(0);
    await close_all();

    const b = await replica("b", n1.url, quiet);
    await b.append(50);
    await wait_until(() => b.transport.status().connected && b.log.durable_held(b.id) === 50, () => describe_vvs([b]));
    const late = await replica("late", n1.url, quiet);
    await wait_until(() => late.log.held(b.id) === 50, () => describe_vvs([b, late]), 10_000);
    await close_all();
  });

  test("a replica given the nodes fails over when its node is killed; nothing acknowledged is lost; the node's return changes nothing", async () => {
    const a = await replica("a", [n1.url, n2.url, n3.url]);
    const b = await replica("b", [n2.url, n3.url, n1.url]);
    await wait_until(() => a.transport.status().connected && b.transport.status().connected, () => describe_vvs([a, b]), 30_000);
    expect(a.transport.status().url).toBe(new URL(n1.url).toString());
    await Promise.all([a.append(3000, 200), b.append(3000, 200)]);

    await n1.kill();
    // a keeps recording while its node is gone: these are acknowledged (durable) before any broker has them.
    await a.append(1000, 200);
    await wait_until(() => a.transport.status().connected && a.transport.status().url === new URL(n2.url).toString(), () => describe_vvs([a, b]), 60_000);
    await b.append(500, 200);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]), 60_000);
    expect(b.log.held(a.id)).toBe(4000);
    expect(a.log.held(b.id)).toBe(3500);

    const connects = a.transport.status().connects;
    await n1.start();
    await a.append(200, 200);
    await b.append(200, 200);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]), 60_000);
    // a stayed on n2: no reconnect, no move back.
    expect(a.transport.status().connects).toBe(connects);
    expect(a.transport.status().url).toBe(new URL(n2.url).toString());
    for (const r of [a, b]) expect(r.log.verify().ok).toBe(true);
    await close_all();
  });
});
