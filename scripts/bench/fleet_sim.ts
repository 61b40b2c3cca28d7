import { Random } from "../../src/lib/random.ts";
import { Log } from "../../src/log/log.ts";
import { type Outbound, Replicator } from "../../src/sync/replicator.ts";
import { FleetFileIO } from "./fleet_file_io.ts";
import { EventQueue } from "../../test/sim/event_queue.ts";
import { FleetBroker, type LinkTraffic } from "./fleet_broker.ts";
import { payload_pool } from "./payloads.ts";

/**
 * A fleet in one process, in simulated time: one hub that pulls everything
 * (the cloud) and N spokes (trucks) that each pull only the hub's origin. The
 * hub appends batches (say, configuration and commands for the fleet); every
 * spoke appends its own events (telemetry) that the hub collects. Real Logs on
 * in-memory file systems, real Replicators with the product's defaults, a
 * simulated broker without faults (fleet_broker.ts). Deterministic per seed.
 */
export interface FleetOptions {
  spokes: number;
  seed: number;
  payload_bytes: number;
  /** The hub appends this many events every hub_append_every_ms. */
  hub_batch_events: number;
  hub_append_every_ms: number;
  /** Each spoke appends one event this often (random phase). */
  spoke_append_every_ms: number;
  /** How long both keep appending; traffic is counted from the first append until the fleet has converged and gone quiet. */
  append_ms: number;
  /** Where the run is, for a human (wall and CPU seconds per phase); not called when absent. */
  progress?: (message: string) => void;
}

export const fleet_defaults = {
  seed: 0xf1ee7,
  payload_bytes: 256,
  hub_batch_events: 10,
  hub_append_every_ms: 100,
  spoke_append_every_ms: 1000,
  append_ms: 4_000,
} as const;

export interface FleetResult {
  spokes: number;
  hub_events: number;
  spoke_events: number;
  /** A spoke's PUBLISH packets, both directions, per hub event: mean over spokes, and the busiest spoke. */
  spoke_messages_per_hub_event: number;
  spoke_messages_per_hub_event_max: number;
  /** A spoke's MQTT bytes (PUBLISH + PUBACK, both directions) per hub event: mean and busiest. */
  spoke_bytes_per_hub_event: number;
  spoke_bytes_per_hub_event_max: number;
  /** Mean per spoke per hub event, by message kind. */
  spoke_bytes_by_kind: Record<string, number>;
  spoke_messages_by_kind: Record<string, number>;
  hub_messages: number;
  hub_bytes: number;
  /** Mean time between the hub's vv publications while counting: how often spokes hear their acknowledgement. */
  hub_vv_interval_ms: number;
  /** Size of the hub's last vv message. */
  hub_vv_bytes: number;
  sim_ms: number;
  wall_s: number;
}

const epoch_ms = 1_700_000_000_000;
const prefix = "fleet";
const delivery_latency_ms = 2;
const tick_interval_ms = 100;
const warmup_ms = 500;
/** After convergence: long enough for the last vv (acknowledgements, rate-limited to one per 200 ms) to go out. */
const quiet_ms = 500;
const converge_max_ms = 60_000;
const hub_segment_bytes = 4 * 1024 * 1024;
const spoke_segment_bytes = 64 * 1024;

type Action =
  | { kind: "deliver"; client: string; topic: string; payload: Uint8Array }
  | { kind: "tick"; node: number }
  | { kind: "append"; node: number };

interface Node {
  index: number;
  log: Log;
  rep: Replicator;
  last_durable: number;
}

export async function run_fleet(options: FleetOptions): Promise<FleetResult> {
  const wall_started = performance.now();
  const cpu_started = process.cpuUsage();
  const report = (what: string): void => {
    if (options.progress === undefined) return;
    const cpu = process.cpuUsage(cpu_started);
    options.progress(`  ${options.spokes} spokes: ${what} at ${((performance.now() - wall_started) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`);
  };
  const rng = new Random(options.seed ^ options.spokes);
  const pool = payload_pool(options.payload_bytes);
  const queue = new EventQueue<Action>();
  let now = epoch_ms;
  const at = (delay_ms: number, action: Action): void => queue.push(now + delay_ms, action);
  const broker = new FleetBroker((client, topic, payload) => at(delivery_latency_ms, { kind: "deliver", client, topic, payload }));
  const clock = { now_ms: () => now };

  const open_log = (name: string, segment_size_bytes: number): Promise<Log> =>
    Log.open({
      dir: "/data",
      name,
      io: new FleetFileIO(),
      sync: "always",
      segment_size_bytes,
      clock,
      fill_random: (bytes) => rng.fill(bytes),
    });
  const nodes: Node[] = [];
  const by_id = new Map<string, Node>();
  const hub_log = await open_log("hub", hub_segment_bytes);
  const hub_id = hub_log.id;
  for (let i = 0; i <= options.spokes; i++) {
    const log = i === 0 ? hub_log : await open_log(`spoke-${i}`, spoke_segment_bytes);
    const rep = new Replicator({ log, prefix, pull: i === 0 ? "*" : [hub_id] });
    const node = { index: i, log, rep, last_durable: log.durable_count };
    nodes.push(node);
    by_id.set(log.id, node);
  }
  const hub = nodes[0];
  const spokes = nodes.slice(1);

  const dirty = new Set<Node>();
  let hub_vv_bytes = 0;
  /** Appends stop here; set once the warm-up is over. */
  let append_end = Number.POSITIVE_INFINITY;
  const publish = (node: Node, out: Outbound[]): void => {
    for (const m of out) {
      broker.publish(node.log.id, m);
      if (node.index === 0 && m.topic.endsWith("/vv")) hub_vv_bytes = m.payload.length;
    }
  };
  for (const node of nodes) {
    broker.connect(node.log.id, node.rep.subscriptions());
    publish(node, node.rep.on_connect(now));
    at(rng.int(1, tick_interval_ms), { kind: "tick", node: node.index });
  }

  const step = (action: Action): void => {
    switch (action.kind) {
      case "deliver": {
        const node = by_id.get(action.client);
        if (node === undefined) return;
        publish(node, node.rep.on_message(action.topic, action.payload, now));
        dirty.add(node);
        return;
      }
      case "tick": {
        const node = nodes[action.node];
        publish(node, node.rep.tick(now));
        at(tick_interval_ms, action);
        return;
      }
      case "append": {
        if (now >= append_end) return;
        const node = nodes[action.node];
        const count = node === hub ? options.hub_batch_events : 1;
        const payloads: Uint8Array[] = [];
        for (let i = 0; i < count; i++) payloads.push(pool[rng.int(0, pool.length - 1)]);
        node.log.append_batch(payloads);
        dirty.add(node);
        at(node === hub ? options.hub_append_every_ms : options.spoke_append_every_ms, action);
        return;
      }
    }
  };

  /** Runs every action up to `until_ms`; after each instant, lets the logs' group commits run and pushes what became durable. */
  const run_until = async (until_ms: number, stop?: () => boolean): Promise<void> => {
    while (queue.peek_time() <= until_ms) {
      now = queue.peek_time();
      while (queue.peek_time() === now) step((queue.pop() as { value: Action }).value);
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (const node of dirty) {
        const durable = node.log.durable_count;
        if (durable === node.last_durable) continue;
        node.last_durable = durable;
        publish(node, node.rep.on_local(now));
      }
      dirty.clear();
      if (stop?.()) return;
    }
    now = Math.max(now, until_ms);
  };

  report(`${nodes.length} logs and replicators made`);
  await run_until(epoch_ms + warmup_ms);
  report("connected (warm-up done)");
  broker.reset_traffic();
  const hub_vv_before = hub.rep.counters.messages_out.vv;
  const append_start = now;
  append_end = append_start + options.append_ms;
  at(0, { kind: "append", node: 0 });
  for (const spoke of spokes) at(rng.int(0, options.spoke_append_every_ms - 1), { kind: "append", node: spoke.index });
  for (let second = 1; append_start + second * 1000 < append_end; second++) {
    await run_until(append_start + second * 1000);
    report(`appended for ${second} s of simulated time`);
  }
  await run_until(append_end);
  report("appends done");

  const converged = (): boolean => {
    const hub_events = hub.log.held(hub_id);
    if (hub.log.durable_count !== hub.log.count) return false;
    for (const spoke of spokes) {
      if (spoke.log.held(hub_id) !== hub_events || spoke.log.durable_count !== spoke.log.count) return false;
      if (hub.log.held(spoke.log.id) !== spoke.log.held(spoke.log.id)) return false;
    }
    return true;
  };
  const converge_deadline = now + converge_max_ms;
  let check_at = now;
  await run_until(converge_deadline, () => {
    if (now < check_at) return false;
    check_at = now + tick_interval_ms;
    return converged();
  });
  if (!converged()) throw new Error(`the fleet of ${options.spokes} spokes did not converge within ${converge_max_ms} ms of simulated time after the appends stopped`);
  report("converged");
  await run_until(now + quiet_ms);

  const hub_events = hub.log.held(hub_id);
  const per_spoke = spokes.map((s) => broker.traffic_of(s.log.id));
  const mean = (f: (t: LinkTraffic) => number): number => per_spoke.reduce((sum, t) => sum + f(t), 0) / per_spoke.length / hub_events;
  const max = (f: (t: LinkTraffic) => number): number => Math.max(...per_spoke.map(f)) / hub_events;
  const kinds = new Set(per_spoke.flatMap((t) => Object.keys(t.bytes_by_kind)));
  const by_kind = (field: "bytes_by_kind" | "messages_by_kind"): Record<string, number> =>
    Object.fromEntries([...kinds].sort().map((k) => [k, mean((t) => t[field][k] ?? 0)]));
  const hub_traffic = broker.traffic_of(hub_id);
  const result: FleetResult = {
    spokes: options.spokes,
    hub_events,
    spoke_events: spokes.reduce((n, s) => n + s.log.held(s.log.id), 0),
    spoke_messages_per_hub_event: mean((t) => t.messages),
    spoke_messages_per_hub_event_max: max((t) => t.messages),
    spoke_bytes_per_hub_event: mean((t) => t.bytes),
    spoke_bytes_per_hub_event_max: max((t) => t.bytes),
    spoke_bytes_by_kind: by_kind("bytes_by_kind"),
    spoke_messages_by_kind: by_kind("messages_by_kind"),
    hub_messages: hub_traffic.messages,
    hub_bytes: hub_traffic.bytes,
    hub_vv_interval_ms: (now - append_start) / Math.max(1, hub.rep.counters.messages_out.vv - hub_vv_before),
    hub_vv_bytes,
    sim_ms: now - append_start,
    wall_s: 0,
  };
  for (const node of nodes) await node.log.close();
  result.wall_s = (performance.now() - wall_started) / 1000;
  return result;
}
