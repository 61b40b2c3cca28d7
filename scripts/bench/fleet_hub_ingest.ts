import { edenGC, fullGC, heapStats } from "bun:jsc";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { type Outbound, Replicator } from "../../src/sync/replicator.ts";
import type { BenchContext } from "./context.ts";
import type { Benchmark } from "./types.ts";
import { FleetBroker } from "./fleet_broker.ts";
import { FleetFileIO } from "./fleet_file_io.ts";
import { payload_pool } from "./payloads.ts";

/**
 * The hub's side of a fleet, measured alone: what it costs the hub to take
 * in its spokes' events, and what each spoke it knows costs it in memory.
 *
 * First (not timed) every spoke is a real Log (on the in-memory FleetFileIO)
 * with a real Replicator: it connects (status, vv, entries), then appends
 * `pushes_per_spoke` times `events_per_push` events, one append a simulated
 * second apart, and publishes what its replicator sends after each (the live
 * push of its durable events, and its vv when due). The simulated broker
 * (fleet_broker.ts) keeps what the hub's subscriptions match; the spoke is
 * closed and dropped, so the heap holds only the hub and those messages.
 *
 * Then the hub, a real Log on a real directory of the disk under test
 * (sync: always, the product's segment size) with a real Replicator pulling
 * everything, gets the spokes' connect messages (not timed: "the spokes are
 * known"), and then every push round-robin over the spokes (round 1 of every
 * spoke, then round 2, ...) as fast as it takes them: on_message for each, a
 * turn of the event loop (its group commit) every `chunk` messages,
 * on_local after each chunk (its acknowledgements: vv and vv entries), tick
 * every 100 ms. The clock stops when every event is durable in the hub's log
 * and acknowledged by on_local. Wall time of that phase is the hub's work
 * only: nothing else runs in the process. The time inside on_message (decode,
 * checks, signature verification, appends) and on_local is also reported.
 *
 * Memory: after the ingest, the messages are dropped, a full GC runs, and
 * bun:jsc heapStats().heapSize (JS objects plus ArrayBuffer memory, which
 * includes the mapping of the hub's 64 MiB segment: the same in every run)
 * is taken with the hub alive. Each run is a process of its own
 * (fleet_hub_child.ts); runs of 100, 1 000 and 10 000 spokes give the bytes
 * per origin known.
 *
 * Where the hub's time went at 10 000 spokes (profile, Bun 1.4.5, x64 VM):
 * on_local ~half, nearly all of it cbor2 allocating two 4 KiB chunks per map
 * key of every vv entry (acknowledgement) message it encodes, on fresh pages
 * since the segment mapping makes the heap large; on_message the other half:
 * Segment.locate walking the interleaved frames of all spokes for every
 * spoke vv's head check (~38%), Ed25519 verification of one signature per
 * push (~22%), CBOR decoding (~19%).
 */
export interface HubIngestOptions {
  spokes: number;
  pushes_per_spoke: number;
  events_per_push: number;
  payload_bytes: number;
  /** Messages delivered between two turns of the event loop. */
  chunk: number;
}

export const hub_ingest_defaults = {
  pushes_per_spoke: 5,
  events_per_push: 1,
  payload_bytes: 256,
  chunk: 256,
} as const;

export interface HubIngestResult {
  spokes: number;
  events: number;
  messages: number;
  /** Wall time of the ingest phase, first delivery to all durable. */
  ingest_s: number;
  events_per_s: number;
  /** CPU time (user + system, all threads) of the process during the ingest: on a shared machine, the wall time's share that was the hub's. */
  ingest_cpu_s: number;
  /** Time inside the hub's on_message, on_local and tick calls. */
  on_message_s: number;
  on_local_s: number;
  tick_s: number;
  /** heapStats().heapSize after a full GC with the hub alive and the messages dropped; and before the hub was opened. */
  heap_bytes: number;
  heap_before_hub_bytes: number;
  /** The hub's peers (at most peers_max) and its log's vv size. */
  hub_peers: number;
  hub_origins: number;
  warnings: string[];
  generate_s: number;
}

const prefix = "fleet";
const spoke_segment_bytes = 64 * 1024;
const push_interval_ms = 1000;
const tick_every_ms = 100;
/** Spokes generated between two young-generation collections. */
const gen_gc_every = 10;

interface Delivery {
  topic: string;
  payload: Uint8Array;
}

const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

function settle_heap(): number {
  for (let i = 0; i < 3; i++) fullGC();
  return heapStats().heapSize;
}

/** The spokes' messages the hub's subscriptions match: their connect messages, and each round of pushes, spoke by spoke. */
interface SpokeTraffic {
  connects: Delivery[];
  rounds: Delivery[][];
}

/** Runs the spokes one after another, each a real Log and Replicator, and keeps what a broker would deliver to the hub. */
async function generate_spokes(hub_id: string, hub_subscriptions: readonly string[], options: HubIngestOptions): Promise<SpokeTraffic> {
  let sink: Delivery[] = [];
  const broker = new FleetBroker((client, topic, payload) => {
    if (client === hub_id) sink.push({ topic, payload });
  });
  broker.connect(hub_id, hub_subscriptions);
  const pool = payload_pool(options.payload_bytes);
  const traffic: SpokeTraffic = { connects: [], rounds: Array.from({ length: options.pushes_per_spoke }, () => []) };
  const t0 = 1_700_000_000_000;
  for (let i = 0; i < options.spokes; i++) {
    let now = t0;
    const log = await Log.open({
      dir: "/data",
      name: `spoke-${i + 1}`,
      io: new FleetFileIO(),
      sync: "always",
      segment_size_bytes: spoke_segment_bytes,
      clock: { now_ms: () => now },
    });
    const rep = new Replicator({ log, prefix, pull: [hub_id] });
    const send = (out: Outbound[]): void => {
      for (const m of out) broker.publish(log.id, m);
    };
    sink = traffic.connects;
    send(rep.on_connect(now));
    for (let p = 0; p < options.pushes_per_spoke; p++) {
      now = t0 + (p + 1) * push_interval_ms;
      const payloads: Uint8Array[] = [];
      for (let e = 0; e < options.events_per_push; e++) payloads.push(pool[(i + p + e) % pool.length]);
      log.append_batch(payloads);
      await log.durable();
      sink = [];
      send(rep.on_local(now));
      traffic.rounds[p].push(...sink);
    }
    await log.close();
    // A dropped spoke's buffers are reused by the next one only once collected (fresh pages cost a page fault each).
    if (i % gen_gc_every === gen_gc_every - 1) edenGC();
  }
  return traffic;
}

/** Runs the measurement in this process, the hub's log in `dir` (which it leaves behind). Use hub_ingest() for a process of its own. */
export async function run_hub_ingest(dir: string, options: HubIngestOptions): Promise<HubIngestResult> {
  const warnings = new Set<string>();
  const warn = (message: string): void => {
    warnings.add(message);
  };
  const heap_before_hub_bytes = settle_heap();
  const hub_log = await Log.open({ dir, name: "hub", sync: "always", on_warning: warn });
  const hub = new Replicator({ log: hub_log, prefix, pull: "*", on_warning: warn });
  // Nobody listens to the hub in this phase: its messages are encoded (its work) and acknowledged at once.
  const hub_out = (out: Outbound[]): void => {
    for (const m of out) m.release?.();
  };
  hub_out(hub.on_connect(Date.now()));

  const generate_started = performance.now();
  const traffic = await generate_spokes(hub_log.id, hub.subscriptions(), options);
  const generate_s = (performance.now() - generate_started) / 1000;

  // The spokes become known: their status, vv and entries (not timed).
  for (const d of traffic.connects) hub_out(hub.on_message(d.topic, d.payload, Date.now()));
  traffic.connects.length = 0;
  await turn();
  hub_out(hub.on_local(Date.now()));

  const deliveries: Delivery[] = traffic.rounds.flat();
  traffic.rounds.length = 0;
  const events = options.spokes * options.pushes_per_spoke * options.events_per_push;
  const expected = hub_log.count + events;

  let on_message_ms = 0;
  let on_local_ms = 0;
  let tick_ms = 0;
  const local = (): void => {
    const t = performance.now();
    hub_out(hub.on_local(Date.now()));
    on_local_ms += performance.now() - t;
  };
  const cpu_started = process.cpuUsage();
  const started = performance.now();
  let last_tick = started;
  for (let at = 0; at < deliveries.length; at += options.chunk) {
    const end = Math.min(deliveries.length, at + options.chunk);
    const t = performance.now();
    for (let k = at; k < end; k++) hub_out(hub.on_message(deliveries[k].topic, deliveries[k].payload, Date.now()));
    on_message_ms += performance.now() - t;
    await turn();
    local();
    if (performance.now() - last_tick >= tick_every_ms) {
      const t2 = performance.now();
      hub_out(hub.tick(Date.now()));
      last_tick = performance.now();
      tick_ms += last_tick - t2;
    }
  }
  while (hub_log.durable_count < expected) {
    if (hub_log.count < expected) throw new Error(`the hub holds ${hub_log.count} events, expected ${expected}: ${[...warnings].join("; ")}`);
    await hub_log.durable();
  }
  local();
  const ingest_s = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu_started);
  const messages = deliveries.length;
  deliveries.length = 0;

  const heap_bytes = settle_heap();
  const result: HubIngestResult = {
    spokes: options.spokes,
    events,
    messages,
    ingest_s,
    events_per_s: events / ingest_s,
    ingest_cpu_s: (cpu.user + cpu.system) / 1e6,
    on_message_s: on_message_ms / 1000,
    on_local_s: on_local_ms / 1000,
    tick_s: tick_ms / 1000,
    heap_bytes,
    heap_before_hub_bytes,
    hub_peers: hub.peer_table.size,
    hub_origins: hub_log.durable_vv().size,
    warnings: [...warnings],
    generate_s,
  };
  await hub_log.close();
  return result;
}

const child_script = path.join(import.meta.dir, "fleet_hub_child.ts");

/**
 * The measurement in a process of its own (fleet_hub_child.ts), so the heap
 * holds this hub and nothing of earlier benchmarks, and the ingest runs on a
 * heap of the hub's size. Shared by the benchmarks that read one run.
 */
export function hub_ingest(ctx: BenchContext, options: HubIngestOptions): Promise<HubIngestResult> {
  const key = `fleet_hub_${options.spokes}_${options.pushes_per_spoke}x${options.events_per_push}`;
  return ctx.shared(key, async () => {
    const dir = ctx.fresh_dir(key);
    const args = [options.spokes, options.pushes_per_spoke, options.events_per_push, options.payload_bytes, options.chunk].map(String);
    const child = Bun.spawn([process.execPath, child_script, dir, ...args], { stdout: "pipe", stderr: "pipe" });
    const kill = (): void => child.kill("SIGKILL");
    process.on("exit", kill);
    try {
      const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      if (code !== 0) throw new Error(`the fleet hub child exited with ${code}: ${err.slice(-2000)}`);
      const r = JSON.parse(out.trim().split("\n").pop() ?? "") as HubIngestResult;
      const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
      ctx.progress(
        `hub with ${r.spokes} spokes (${options.pushes_per_spoke} pushes of ${options.events_per_push} x ${options.payload_bytes} B each, made in ${r.generate_s.toFixed(1)} s): ` +
          `${r.events} events in ${r.messages} messages taken in ${r.ingest_s.toFixed(2)} s = ${Math.round(r.events_per_s)} events/s ` +
          `(${r.ingest_cpu_s.toFixed(2)} s of CPU: ${Math.round(r.events / r.ingest_cpu_s)} events per CPU second); ` +
          `inside on_message ${r.on_message_s.toFixed(2)} s, on_local ${r.on_local_s.toFixed(2)} s, tick ${r.tick_s.toFixed(2)} s; ` +
          `heap ${mb(r.heap_bytes)} MiB (${mb(r.heap_before_hub_bytes)} before the hub); ${r.hub_peers} peers, ${r.hub_origins} origins` +
          (r.warnings.length > 0 ? `; warnings: ${r.warnings.join(" | ")}` : ""),
      );
      return r;
    } finally {
      process.off("exit", kill);
      ctx.remove_dir(dir);
    }
  });
}

const large_fleet = 10_000;
const middle_fleet = 1_000;
const small_fleet = 100;
const ingest_target_events_per_s = 50_000;
/** The cost per origin from 100 to 10 000 spokes may exceed the one from 100 to 1 000 by at most this share. */
const per_origin_growth_max = 0.1;
const d = hub_ingest_defaults;
const workload = `every spoke pushes ${d.pushes_per_spoke} x ${d.events_per_push} x ${d.payload_bytes} B (one append and one signed push a simulated second, with its vv)`;

export const fleet_hub_ingest_events_per_s: Benchmark = {
  name: "fleet_hub_ingest_events_per_s",
  unit: "events/s",
  description:
    `events a hub (real Log on the disk under test, sync always, Replicator pulling all) takes in from ${large_fleet} spokes, ` +
    `wall time of its on_message, on_local, tick and group commit alone (the spokes' messages made beforehand, in a process of its own); ${workload}`,
  target: { text: `>= ${ingest_target_events_per_s}`, met: (r) => r.value >= ingest_target_events_per_s },
  async run(ctx) {
    const r = await hub_ingest(ctx, { ...hub_ingest_defaults, spokes: large_fleet });
    return { value: r.events_per_s, baseline: null, ratio: null };
  },
};

/**
 * The same with fewer, larger pushes (a spoke that flushes ten events at
 * once), from 1 000 spokes: what the hub's cost per message (decode, one
 * signature check per push, an acknowledgement per spoke) leaves of the
 * rate when every push carries ten events. Not a fleet figure; it tells
 * per-message from per-event cost.
 */
export const fleet_hub_ingest_10_per_push_events_per_s: Benchmark = {
  name: "fleet_hub_ingest_10_per_push_events_per_s",
  unit: "events/s",
  description: `as fleet_hub_ingest_events_per_s, from ${middle_fleet} spokes each pushing ${d.pushes_per_spoke} x 10 x ${d.payload_bytes} B (ten events per signed push)`,
  async run(ctx) {
    const r = await hub_ingest(ctx, { ...hub_ingest_defaults, spokes: middle_fleet, events_per_push: 10 });
    return { value: r.events_per_s, baseline: null, ratio: null };
  },
};

export const fleet_hub_bytes_per_origin: Benchmark = {
  name: "fleet_hub_bytes_per_origin",
  unit: "B/origin",
  description:
    `the hub's heap (bun:jsc heapStats after a full GC, its log's mappings included) per spoke it knows: ` +
    `(with ${large_fleet} - with ${small_fleet}) / ${large_fleet - small_fleet}, each spoke after ${workload}; baseline: the same from ${small_fleet} to ${middle_fleet} spokes`,
  target: { text: `ratio <= ${1 + per_origin_growth_max} (no growth per origin)`, met: (r) => r.ratio !== null && r.ratio <= 1 + per_origin_growth_max },
  async run(ctx) {
    const small = await hub_ingest(ctx, { ...hub_ingest_defaults, spokes: small_fleet });
    const middle = await hub_ingest(ctx, { ...hub_ingest_defaults, spokes: middle_fleet });
    const large = await hub_ingest(ctx, { ...hub_ingest_defaults, spokes: large_fleet });
    const value = (large.heap_bytes - small.heap_bytes) / (large_fleet - small_fleet);
    const baseline = (middle.heap_bytes - small.heap_bytes) / (middle_fleet - small_fleet);
    const upper = (large.heap_bytes - middle.heap_bytes) / (large_fleet - middle_fleet);
    ctx.progress(`per origin: ${Math.round(baseline)} B from ${small_fleet} to ${middle_fleet} spokes, ${Math.round(upper)} B from ${middle_fleet} to ${large_fleet}, ${Math.round(value)} B from ${small_fleet} to ${large_fleet}`);
    return { value, baseline, ratio: value / baseline };
  },
};
