import { MemoryPageStore } from "../../src/browser/storage/memory_page_store.ts";
import { PagedFileIO } from "../../src/browser/storage/paged_file_io.ts";
import { Random } from "../../src/lib/random.ts";
import { import_public_key, verify_now } from "../../src/log/ed25519_verify.ts";
import type { RangeCheck } from "../../src/log/key_ring.ts";
import { Log, type SyncMode } from "../../src/log/log.ts";
import { ReplicaKey } from "../../src/log/replica_key.ts";
import type { Signer } from "../../src/log/signer.ts";
import type { SyncCounters } from "../../src/sync/counters.ts";
import { Replicator, type Outbound } from "../../src/sync/replicator.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { type Checker, type ReplicaView, WriteRecord, safety_checkers } from "./checkers.ts";
import { EventQueue } from "./event_queue.ts";
import { Hostile } from "./hostile.ts";
import { type Delivery, type NetworkFaults, SimBroker, no_faults } from "./sim_broker.ts";

/**
 * A seeded, deterministic simulation of N replicas in one process: each a
 * real Log on its own in-memory file system (so a power cut tears only its
 * own files), connected through a simulated broker that drops, duplicates,
 * delays, reorders and partitions, with process crashes and power cuts.
 * The safety invariants (checkers.ts) are checked after every step; after
 * the faults stop the replicas must converge (see check_converged).
 */

export interface SimOptions {
  replicas: number;
  fault_phase_ms: number;
  heal_max_ms: number;
  faults: NetworkFaults;
  /** Mean time between crashes of one replica during the fault phase. */
  crash_every_ms: number;
  /** Mean time between link losses of one replica during the fault phase. */
  partition_every_ms: number;
  append_every_ms: number;
  max_packet_bytes: number;
  window_bytes: number;
  hostile: boolean;
  /** Share of replicas that pull only some origins. */
  partial_share: number;
  /**
   * The first this many replicas are browser tabs: their log on PagedFileIO
   * over a MemoryPageStore (IndexedDB's contract), where every crash closes
   * the tab and keeps exactly what was committed (a store commits whole
   * transactions, so nothing is torn). Not drawn by random_options: seeds
   * without it run as they always did.
   */
  browser_replicas?: number;
}

export function random_options(rng: Random): SimOptions {
  const max_packet_bytes = rng.pick([4096, 8192, 32768, 131072]);
  return {
    replicas: rng.int(5, 6),
    fault_phase_ms: rng.int(5_000, 15_000),
    heal_max_ms: 120_000,
    faults: {
      drop: rng.pick([0, 0.02, 0.1, 0.3]),
      duplicate: rng.pick([0, 0.05, 0.2]),
      delay_min_ms: 1,
      delay_max_ms: rng.pick([5, 50, 200]),
      slow: rng.pick([0, 0.05, 0.2]),
      slow_max_ms: 3000,
    },
    crash_every_ms: rng.pick([3_000, 8_000, 1e9]),
    partition_every_ms: rng.pick([3_000, 8_000, 1e9]),
    append_every_ms: rng.pick([150, 400, 1000]),
    max_packet_bytes,
    window_bytes: max_packet_bytes * rng.int(1, 8),
    hostile: rng.chance(0.5),
    partial_share: rng.pick([0, 0.3, 0.6]),
  };
}

const epoch_start_ms = 1_700_000_000_000;
const tick_interval_ms = 100;
const check_interval_ms = 500;
const segment_size_bytes = 64 * 1024;
const rejected_first_byte = 0xff;
/** The replicas' validator: payloads it refuses are kept by peers only as rejected events. */
const rejects = (payload: Uint8Array): boolean => payload[0] === rejected_first_byte;

type Action =
  | { kind: "deliver"; delivery: Delivery }
  | { kind: "tick"; node: number; incarnation: number }
  | { kind: "log_timer"; node: number; incarnation: number; timer: number; interval_ms: number }
  | { kind: "append"; node: number }
  | { kind: "crash"; node: number }
  | { kind: "restart"; node: number }
  | { kind: "link_down"; node: number }
  | { kind: "link_up"; node: number }
  | { kind: "will"; client: string; epoch: number }
  | { kind: "hostile" }
  | { kind: "heal" }
  | { kind: "check" };

/** Sync counters of every incarnation of a replica, summed. */
function add_counters(total: SyncCounters | null, c: SyncCounters): SyncCounters {
  if (total === null) return structuredClone(c);
  const sum = (a: Record<string, number>, b: Record<string, number>) => {
    for (const k of Object.keys(b)) a[k] = (a[k] ?? 0) + b[k];
  };
  for (const [k, v] of Object.entries(c)) {
    const key = k as keyof SyncCounters;
    if (typeof v === "number") (total[key] as number) += v;
    else sum(total[key] as Record<string, number>, v as Record<string, number>);
  }
  return total;
}

class SimNode implements ReplicaView {
  readonly io = new MemFileIO();
  /** A browser replica's IndexedDB; null for a replica on a disk (io). */
  readonly store: MemoryPageStore | null;
  /** A browser replica's key, signing asynchronously as WebCrypto does (kept outside its store, as a tab keeps it). */
  signer: Signer | null = null;
  id = "";
  log: Log | null = null;
  rep: Replicator | null = null;
  incarnation = 0;
  link_up = true;
  /** Broker connection epoch while connected, else 0. */
  epoch = 0;
  pull: "*" | string[] = "*";
  watch: "*" | string[] = "*";
  sync_mode: SyncMode = "interval";
  last_durable = -1;
  /** The current incarnation's log timers; their intervals run as log_timer actions. */
  timers = new ManualTimers();
  counters: SyncCounters | null = null;
  crashes = 0;
  power_cuts = 0;
  warnings: string[] = [];

  constructor(readonly index: number, browser = false) {
    this.store = browser ? new MemoryPageStore() : null;
  }
}

export interface SimReport {
  seed: number;
  sim_ms: number;
  converged_at_ms: number;
  events: number;
  messages: number;
  crashes: number;
  power_cuts: number;
  counters: SyncCounters[];
  /** Transactions the browser replicas' stores committed. */
  store_commits: number;
}

export class Simulation {
  readonly rng: Random;
  readonly options: SimOptions;
  private readonly queue = new EventQueue<Action>();
  private readonly broker: SimBroker;
  private readonly nodes: SimNode[] = [];
  private hostile: Hostile | null = null;
  private now = epoch_start_ms;
  private healed = false;
  private converged_at = -1;
  private steps = 0;
  /** Every own event each replica appended, for the checkers. */
  private readonly writes = new WriteRecord();
  private checkers: Checker[] = [];

  constructor(readonly seed: number, options?: Partial<SimOptions>) {
    this.rng = new Random(seed);
    this.options = { ...random_options(this.rng), ...options };
    this.broker = new SimBroker(this.rng, (delay, delivery) => this.at(delay, { kind: "deliver", delivery }));
    this.broker.faults = this.options.faults;
  }

  private at(delay_ms: number, action: Action): void {
    this.queue.push(this.now + Math.max(0, delay_ms), action);
  }

  private exp(mean_ms: number): number {
    return Math.floor(-Math.log(1 - this.rng.float()) * mean_ms);
  }

  async run(): Promise<SimReport> {
    const o = this.options;
    for (let i = 0; i < o.replicas; i++) {
      const node = new SimNode(i, i < (o.browser_replicas ?? 0));
      node.sync_mode = this.rng.chance(0.7) ? "interval" : "always";
      this.nodes.push(node);
      await this.open_log(node);
      node.id = (node.log as Log).id;
    }
    const ids = this.nodes.map((n) => n.id);
    if (o.hostile) this.hostile = await Hostile.open(this.rng, this.broker, this.writes, () => this.now);
    // The hostile client is an origin too: its own signed events may be held (pulled), nothing it forged for others.
    this.checkers = safety_checkers(this.hostile === null ? ids : [...ids, this.hostile.id], this.writes, rejects);
    for (const node of this.nodes) {
      if (this.rng.chance(o.partial_share)) {
        const others = ids.filter((id) => id !== node.id);
        node.pull = others.filter(() => this.rng.chance(0.5));
        const extra = others.filter(() => this.rng.chance(0.3));
        node.watch = [...new Set([...node.pull, ...extra])];
      }
      this.start_replicator(node);
      this.at(this.rng.int(0, o.append_every_ms), { kind: "append", node: node.index });
      if (o.crash_every_ms < 1e9) this.at(this.exp(o.crash_every_ms), { kind: "crash", node: node.index });
      if (o.partition_every_ms < 1e9) this.at(this.exp(o.partition_every_ms), { kind: "link_down", node: node.index });
    }
    this.hostile?.connect(o.max_packet_bytes, ids);
    if (this.hostile !== null) this.at(this.rng.int(0, 500), { kind: "hostile" });
    this.at(o.fault_phase_ms, { kind: "heal" });
    const end = this.now + o.fault_phase_ms + o.heal_max_ms;
    while (this.converged_at < 0) {
      const next = this.queue.pop();
      if (next === undefined) throw new Error("the simulation ran out of actions");
      if (next.at_ms > end) break;
      this.now = next.at_ms;
      this.steps++;
      await this.step(next.value);
      this.check_invariants(next.value);
    }
    if (this.converged_at < 0) throw new Error(`no convergence ${o.heal_max_ms} ms after the network healed\n${this.describe()}`);
    this.verify_final();
    for (const node of this.nodes) {
      node.counters = add_counters(node.counters, (node.rep as Replicator).counters);
      await (node.log as Log).close();
    }
    return {
      seed: this.seed,
      sim_ms: this.now - epoch_start_ms,
      converged_at_ms: this.converged_at - epoch_start_ms,
      events: this.nodes.reduce((n, node) => n + (node.log as Log).held(node.id), 0),
      messages: this.broker.published,
      crashes: this.nodes.reduce((n, node) => n + node.crashes, 0),
      power_cuts: this.nodes.reduce((n, node) => n + node.power_cuts, 0),
      counters: this.nodes.map((n) => n.counters as SyncCounters),
      store_commits: this.nodes.reduce((n, node) => n + (node.store?.commits ?? 0), 0),
    };
  }

  // ---------------------------------------------------------------- actions

  private async step(action: Action): Promise<void> {
    switch (action.kind) {
      case "deliver": {
        const d = action.delivery;
        const node = this.nodes.find((n) => n.id === d.client);
        if (node === undefined) {
          this.hostile?.receive(d);
          return;
        }
        if (node.rep === null || node.epoch !== d.epoch || !this.broker.is_connected(node.id, d.epoch)) return;
        // A browser tab verifies through on_message_async (its promises settle in microtasks here: the run stays deterministic).
        const out = node.store === null ? node.rep.on_message(d.topic, d.payload, this.now) : await node.rep.on_message_async(d.topic, d.payload, this.now, verify_in_microtask);
        this.publish(node, out);
        break;
      }
      case "tick": {
        const node = this.nodes[action.node];
        if (node.rep === null || node.incarnation !== action.incarnation) return;
        this.publish(node, node.rep.tick(this.now));
        this.at(tick_interval_ms, action);
        break;
      }
      case "log_timer": {
        const node = this.nodes[action.node];
        if (node.incarnation !== action.incarnation || !node.timers.fire(action.timer)) return;
        this.at(action.interval_ms, action);
        break;
      }
      case "append": {
        if (this.healed) return;
        const node = this.nodes[action.node];
        if (node.log !== null) this.append(node);
        this.at(this.exp(this.options.append_every_ms), action);
        break;
      }
      case "crash": {
        if (this.healed) return;
        this.crash(this.nodes[action.node]);
        this.at(this.rng.int(200, 5000), { kind: "restart", node: action.node });
        break;
      }
      case "restart": {
        const node = this.nodes[action.node];
        if (node.log !== null) return;
        await this.open_log(node);
        this.start_replicator(node);
        if (!this.healed) this.at(this.exp(this.options.crash_every_ms), { kind: "crash", node: action.node });
        break;
      }
      case "link_down": {
        if (this.healed) return;
        const node = this.nodes[action.node];
        node.link_up = false;
        this.disconnect(node);
        this.at(this.rng.int(300, 8000), { kind: "link_up", node: action.node });
        break;
      }
      case "link_up": {
        const node = this.nodes[action.node];
        if (node.link_up) return;
        node.link_up = true;
        this.connect(node);
        if (!this.healed) this.at(this.exp(this.options.partition_every_ms), { kind: "link_down", node: action.node });
        break;
      }
      case "will":
        this.broker.publish_will(action.client, action.epoch);
        return;
      case "hostile":
        this.hostile?.act(this.now);
        this.at(this.rng.int(50, 700), action);
        return;
      case "heal":
        await this.heal();
        break;
      case "check":
        if (this.check_converged()) this.converged_at = this.now;
        else this.at(check_interval_ms, action);
        return;
    }
    await this.settle();
  }

  /** Lets the logs' group commits and fsyncs (setImmediate + promises) run, then reports durable progress. */
  private async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const node of this.nodes) {
      if (node.log === null || node.rep === null) continue;
      const durable = node.log.durable_count;
      if (durable === node.last_durable) continue;
      node.last_durable = durable;
      this.publish(node, node.rep.on_local(this.now));
    }
  }

  private append(node: SimNode): void {
    const log = node.log as Log;
    const count = this.rng.int(1, 5);
    const payloads: Uint8Array[] = [];
    let bytes = 0;
    for (let i = 0; i < count && bytes < 24 * 1024; i++) {
      const r = this.rng.float();
      const size = r < 0.9 ? this.rng.int(0, 200) : r < 0.98 ? this.rng.int(200, 3000) : this.rng.int(3000, 20_000);
      const p = this.rng.bytes(size);
      if (size > 0) p[0] = this.rng.chance(0.05) ? rejected_first_byte : p[0] === rejected_first_byte ? 0 : p[0];
      payloads.push(p);
      bytes += size;
    }
    const first = payloads.length === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
    this.writes.record(node.id, first, payloads, this.now);
  }

  private async open_log(node: SimNode): Promise<void> {
    node.incarnation++;
    const incarnation = node.incarnation;
    // Intervals (the interval fsync) run on the simulated clock; `soon` stays on the event loop, where settle() lets group commits run.
    const timers = new ManualTimers({
      on_every: (timer, interval_ms) => this.at(interval_ms, { kind: "log_timer", node: node.index, incarnation, timer, interval_ms }),
    });
    node.timers = timers;
    if (node.store !== null && node.signer === null) node.signer = microtask_signer(ReplicaKey.generate((bytes) => this.rng.fill(bytes)).key);
    node.log = await Log.open({
      dir: "/data",
      name: `sim-${node.index}`,
      signer: node.signer ?? undefined,
      io: node.store === null ? node.io : await PagedFileIO.open(node.store.session()),
      sync: node.sync_mode,
      sync_interval_ms: this.rng.int(5, 100),
      segment_size_bytes,
      clock: { now_ms: () => this.now },
      timers,
      fill_random: (bytes) => this.rng.fill(bytes),
      on_warning: (message) => node.warnings.push(message),
    });
    if (node.store !== null) {
      // As in the browser build, which has only WebCrypto's async Ed25519: any synchronous check fails the run.
      node.log.keys.verify_now = () => {
        throw new Error(`replica ${node.index} (a browser tab) verified a signature synchronously`);
      };
    }
    node.last_durable = -1;
  }

  private start_replicator(node: SimNode): void {
    const o = this.options;
    node.rep = new Replicator({
      log: node.log as Log,
      prefix: "sim",
      pull: node.pull,
      watch: node.watch,
      validate: (payload) => (rejects(payload) ? "first byte 0xff is not allowed" : null),
      max_packet_bytes: o.max_packet_bytes,
      window_bytes: o.window_bytes,
      want_timeout_ms: 1500,
      retry_backoff_base_ms: 200,
      retry_backoff_max_ms: 3000,
      vv_interval_ms: 100,
      vv_refresh_ms: 2000,
      gap_buffer_max_bytes: 256 * 1024,
      gap_hold_ms: 10_000,
      accept_batch_max_bytes: 16 * 1024,
      on_warning: (message) => node.warnings.push(message),
    });
    this.at(this.rng.int(0, tick_interval_ms), { kind: "tick", node: node.index, incarnation: node.incarnation });
    if (node.link_up) this.connect(node);
  }

  private connect(node: SimNode): void {
    const rep = node.rep;
    if (rep === null || node.epoch !== 0) return;
    node.epoch = this.broker.connect(node.id, rep.subscriptions(), rep.will());
    this.publish(node, rep.on_connect(this.now));
  }

  private disconnect(node: SimNode): void {
    if (node.epoch === 0) return;
    const epoch = this.broker.disconnect(node.id);
    node.epoch = 0;
    node.rep?.on_disconnect(this.now);
    if (epoch !== null) this.at(this.rng.int(100, 3000), { kind: "will", client: node.id, epoch });
  }

  private crash(node: SimNode): void {
    if (node.log === null) return;
    this.disconnect(node);
    node.counters = add_counters(node.counters, (node.rep as Replicator).counters);
    node.rep = null;
    node.log = null; // abandoned, like the memory of a killed process
    node.timers.cancel_all();
    node.crashes++;
    if (this.rng.chance(0.5)) {
      node.power_cuts++;
      if (node.store === null) node.io.power_cut(this.rng);
    } else if (node.store === null) {
      node.io.process_crash();
    }
    // A closed tab loses what its page held in memory either way.
    node.store?.crash(this.rng);
  }

  private async heal(): Promise<void> {
    this.healed = true;
    this.broker.faults = no_faults;
    for (const node of this.nodes) {
      if (node.log === null) {
        await this.settle();
        await this.open_log(node);
        this.start_replicator(node);
      }
      if (!node.link_up) {
        node.link_up = true;
        this.connect(node);
      }
    }
    this.at(check_interval_ms, { kind: "check" });
  }

  private publish(node: SimNode, messages: Outbound[]): void {
    for (const m of messages) this.broker.publish(node.id, node.epoch, m);
  }

  // ---------------------------------------------------------------- checks

  /** The safety invariants, after every step (they throw, naming the replica, the invariant and the step). */
  private check_invariants(action: Action): void {
    const context = { seed: this.seed, step: this.steps, sim_ms: this.now - epoch_start_ms, action: () => describe_action(action, this.nodes) };
    for (const checker of this.checkers) checker.check(this.nodes, context);
  }

  private pulls(node: SimNode, origin: string): boolean {
    return origin === node.id || node.pull === "*" || node.pull.includes(origin);
  }

  private check_converged(): boolean {
    for (const node of this.nodes) {
      const log = node.log as Log;
      if (log.durable_count !== log.count) return false;
      for (const origin of this.nodes) {
        const want = this.pulls(node, origin.id) ? (origin.log as Log).held(origin.id) : 0;
        if (log.held(origin.id) !== want) return false;
      }
    }
    return this.acknowledged() && this.drained();
  }

  /**
   * No replica still waits on another: no events buffered behind a gap, no
   * repair request outstanding to a replica. Requests to the hostile client
   * (it claims events nobody has), what it sent that is parked behind a gap
   * (it keeps pushing its own new events and serves none of the older ones,
   * so a replica that missed some in a partition, with no honest replica to
   * relay them, parks each new one until it expires) and half-reassembled
   * messages (a bounded cache without expiry: parts of messages dropped in
   * the fault phase stay until evicted) need not drain.
   */
  private drained(): boolean {
    const hostile = this.hostile?.id ?? null;
    for (const node of this.nodes) {
      const rep = node.rep as Replicator;
      const s = rep.status(this.now);
      if (s.gap_buffer_bytes !== (hostile === null ? 0 : rep.parked_bytes_from(hostile))) return false;
      if (s.peers.some((p) => p.want_outstanding && this.nodes.some((n) => n.id === p.id))) return false;
    }
    return true;
  }

  /**
   * Every replica knows that each peer it follows and that pulls it holds all
   * of its events (the acknowledgement: a whole vv for a replica that pulls
   * everything, a vv entry for one that pulls a list).
   */
  private acknowledged(): boolean {
    for (const node of this.nodes) {
      const own = (node.log as Log).held(node.id);
      const peers = (node.rep as Replicator).status(this.now).peers;
      for (const other of this.nodes) {
        if (other === node || !this.pulls(other, node.id) || !this.pulls(node, other.id)) continue;
        if ((peers.find((p) => p.id === other.id)?.vv[node.id] ?? 0) !== own) return false;
      }
    }
    return true;
  }

  /** Every replica holds exactly what it pulls, in seq order, with the origin's payloads; equal pull sets give equal vvs. */
  private verify_final(): void {
    const ids = new Set(this.nodes.map((n) => n.id));
    const hostile = this.hostile;
    for (const node of this.nodes) {
      const log = node.log as Log;
      const next = new Map<string, number>();
      for (const e of log.iterate(0)) {
        const where = `replica ${node.index} (${node.id}) event ${e.id} at pos ${e.pos}`;
        const from_hostile = hostile !== null && e.origin === hostile.id;
        if ((!ids.has(e.origin) && !from_hostile) || !this.pulls(node, e.origin)) throw new Error(`${where}: an origin it does not pull`);
        const expected = (next.get(e.origin) ?? 0) + 1;
        if (e.seq !== expected) throw new Error(`${where}: expected seq ${expected} (order or duplicate)`);
        next.set(e.origin, expected);
        // The hostile client's own events are real (signed by it): held as it wrote them.
        const origin_log = from_hostile ? hostile.own_log : ((this.nodes.find((n) => n.id === e.origin) as SimNode).log as Log);
        const ref = origin_log.get(e.origin, e.seq);
        if (ref === null) throw new Error(`${where}: the origin does not hold it`);
        if (ref.time_ms !== e.time_ms) throw new Error(`${where}: time differs from the origin's`);
        const must_reject = e.origin !== node.id && rejects(ref.payload);
        if (must_reject !== e.rejected) throw new Error(`${where}: rejected=${e.rejected}, expected ${must_reject}`);
        if (Buffer.compare(ref.payload, e.payload) !== 0) throw new Error(`${where}: payload differs from the origin's`);
      }
      const report = log.verify();
      if (!report.ok) throw new Error(`replica ${node.index}: verify failed: ${JSON.stringify(report.first_bad)}`);
      const counters = add_counters(structuredClone(node.counters), (node.rep as Replicator).counters);
      if (counters.conflicts !== 0) throw new Error(`replica ${node.index}: ${counters.conflicts} replica-id conflicts among honest replicas`);
    }
    const key = (n: SimNode) => (n.pull === "*" ? "*" : [...n.pull].sort().join(","));
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a === b || key(a) !== key(b)) continue;
        const va = (a.log as Log).vv();
        const vb = (b.log as Log).vv();
        for (const origin of ids) {
          if (origin === a.id || origin === b.id) continue;
          if ((va[origin] ?? 0) !== (vb[origin] ?? 0)) throw new Error(`replicas ${a.index} and ${b.index} pull the same origins but differ on ${origin}`);
        }
        // The hostile client serves no one its events, so only pushes and honest relays spread them: not compared.
        if (hostile !== null) {
          delete va[hostile.id];
          delete vb[hostile.id];
        }
        if (a.pull === "*" && JSON.stringify(Object.entries(va).sort()) !== JSON.stringify(Object.entries(vb).sort())) {
          throw new Error(`replicas ${a.index} and ${b.index} pull everything but their vvs differ`);
        }
      }
    }
  }

  private describe(): string {
    const lines = [`options ${JSON.stringify(this.options)}`, `steps ${this.steps}`];
    for (const node of this.nodes) {
      const log = node.log;
      lines.push(
        `replica ${node.index} ${node.id} pull=${JSON.stringify(node.pull)} held=${JSON.stringify(log?.vv())} count=${log?.count} durable=${log?.durable_count} crashes=${node.crashes}`,
      );
      if (node.rep !== null) {
        const s = node.rep.status(this.now);
        lines.push(`  counters ${JSON.stringify(s.counters)}`);
        lines.push(`  gap_buffer_events=${s.gap_buffer_events} reassembly_bytes=${s.reassembly_bytes}`);
        for (const p of s.peers) lines.push(`  peer ${p.id} online=${p.online} failures=${p.failures} want=${p.want_outstanding} behind=${p.behind_events}`);
      }
      if (node.warnings.length > 0) lines.push(`  warnings ${node.warnings.slice(0, 5).join(" | ")}`);
    }
    return lines.join("\n");
  }
}

/** An action in a failure message: its kind and the replica it concerns. */
function describe_action(action: Action, nodes: readonly SimNode[]): string {
  switch (action.kind) {
    case "deliver":
      return `deliver ${action.delivery.topic} to ${action.delivery.client}`;
    case "tick":
    case "log_timer":
    case "append":
    case "crash":
    case "restart":
    case "link_down":
    case "link_up":
      return `${action.kind} replica ${action.node} (${nodes[action.node].id})`;
    case "will":
      return `will of ${action.client}`;
    default:
      return action.kind;
  }
}

/** Signs as a tab's WebCrypto key does: the signature comes as a promise (settling in a microtask, so seeds replay). */
function microtask_signer(key: ReplicaKey): Signer {
  return { asynchronous: true, id: key.id, public_key: key.public_key, public_key_hex: key.public_key_hex, sign: async (message) => key.sign(message) };
}

/** Verifies as a tab's WebCrypto does, behind a promise. */
async function verify_in_microtask(checks: readonly RangeCheck[]): Promise<boolean[]> {
  return checks.map((c) => verify_now(import_public_key(c.public_key), c.message, c.signature));
}
