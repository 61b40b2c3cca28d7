import { Random } from "../../src/lib/random.ts";
import { verify_async as verify_async_of_key } from "../../src/log/ed25519_verify.ts";
import type { RangeCheck } from "../../src/log/key_ring.ts";
import { Log, type SyncMode } from "../../src/log/log.ts";
import type { RetentionOptions } from "../../src/log/retention.ts";
import { PeerAcks } from "../../src/sync/acks.ts";
import { decode_message, type SyncMessage } from "../../src/sync/messages.ts";
import { type Outbound, Replicator, type ReplicatorOptions } from "../../src/sync/replicator.ts";
import { Topics } from "../../src/sync/topics.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { type Delivery, SimBroker } from "../sim/sim_broker.ts";

/**
 * A small fault-free network for behaviour tests: replicas on in-memory
 * logs, a simulated broker delivering in order, and a manual clock. Tests
 * can intercept what a replica publishes (`outbox`) and inject messages.
 */
export class TestNode {
  epoch = 0;
  /** Every message this replica published, decoded, in order. */
  readonly sent: { topic: string; message: SyncMessage; bytes: number }[] = [];
  /** Drop this node's outgoing messages matching the predicate (a lossy link). */
  drop_out: ((topic: string) => boolean) | null = null;
  /** Rewrites this node's outgoing messages after `sent` recorded them (a compromised replica: what it really sends). */
  tamper_out: ((topic: string, payload: Uint8Array) => Uint8Array) | null = null;
  readonly warnings: string[] = [];
  manual_fsync: (() => void) | null = null;
  /** Verifies received signatures asynchronously (Replicator.on_message_async), as a browser tab does with WebCrypto. */
  verify_async: ((checks: readonly RangeCheck[]) => Promise<boolean[]>) | null = null;

  constructor(
    readonly net: TestNet,
    readonly log: Log,
    readonly rep: Replicator,
    /** The in-memory disk its log is on (its data directory is /data). */
    readonly io: MemFileIO,
  ) {}

  get id(): string {
    return this.log.id;
  }
}

export interface AddOptions extends Partial<Omit<ReplicatorOptions, "log">> {
  /** "manual": interval mode whose fsync runs only when the test calls node.manual_fsync(). */
  sync?: SyncMode | "manual";
  /** A disk budget: the log prunes what its upstreams hold (acks from this replicator's peers, as node.ts wires them), maintained whenever a claim rises. */
  retention?: RetentionOptions;
  /** retention.upstreams (default: every peer that pulls the origin). */
  upstreams?: readonly string[];
  /** Verify received signatures through on_message_async (node:crypto behind a promise that settles a turn later, as WebCrypto's does). */
  verify_async?: boolean;
}

export class TestNet {
  readonly rng: Random;
  readonly broker: SimBroker;
  readonly topics = new Topics("t");
  readonly nodes: TestNode[] = [];
  private readonly queue: Delivery[] = [];
  now = 1_700_000_000_000;

  constructor(seed = 1) {
    this.rng = new Random(seed);
    this.broker = new SimBroker(this.rng, (_delay, d) => this.queue.push(d));
  }

  async add(options: AddOptions = {}): Promise<TestNode> {
    const io = new MemFileIO();
    // Interval fsyncs run only when a test calls node.manual_fsync().
    const timers = new ManualTimers();
    const manual = options.sync === "manual";
    const sync: SyncMode = options.sync === "manual" || options.sync === undefined ? (manual ? "interval" : "always") : options.sync;
    const log = await Log.open({
      dir: "/data",
      io,
      sync,
      segment_size_bytes: 1024 * 1024,
      clock: { now_ms: () => this.now },
      timers,
      fill_random: (b) => this.rng.fill(b),
      retention: options.retention ?? null,
    });
    const { sync: _sync, retention, upstreams, verify_async, ...rest } = options;
    const on_claim_raised = retention === undefined ? undefined : () => void log.maintain();
    const rep = new Replicator({ prefix: "t", want_timeout_ms: 1000, retry_backoff_base_ms: 100, on_claim_raised, ...rest, log });
    if (retention !== undefined) log.set_acks(new PeerAcks(rep, upstreams ?? null));
    const node = new TestNode(this, log, rep, io);
    if (manual) node.manual_fsync = () => timers.fire_every();
    if (verify_async === true) {
      // As in the browser build, where only the async verifier exists: a synchronous check anywhere fails the test.
      log.keys.verify_now = () => {
        throw new Error("verify_now on a replica that verifies asynchronously (the browser has no synchronous Ed25519)");
      };
      node.verify_async = async (checks) => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        return await Promise.all(checks.map((c) => verify_async_of_key(c.public_key, c.message, c.signature)));
      };
    }
    this.nodes.push(node);
    return node;
  }

  connect(node: TestNode): void {
    node.epoch = this.broker.connect(node.id, node.rep.subscriptions(), node.rep.will());
    this.publish(node, node.rep.on_connect(this.now));
  }

  disconnect(node: TestNode): void {
    const epoch = this.broker.disconnect(node.id);
    node.rep.on_disconnect(this.now);
    node.epoch = 0;
    if (epoch !== null) this.broker.publish_will(node.id, epoch);
  }

  publish(node: TestNode, messages: Outbound[]): void {
    for (const m of messages) {
      const parsed = this.topics.parse(m.topic);
      if (parsed !== null) node.sent.push({ topic: m.topic, message: decode_message(m.payload, parsed), bytes: m.payload.length });
      if (node.drop_out?.(m.topic)) continue;
      const payload = node.tamper_out === null ? m.payload : node.tamper_out(m.topic, m.payload);
      this.broker.publish(node.id, node.epoch, payload === m.payload ? m : { ...m, payload });
    }
  }

  /** Publishes raw bytes as if from another client (for hostile input). */
  inject(topic: string, payload: Uint8Array): void {
    this.queue_all(topic, payload);
  }

  private queue_all(topic: string, payload: Uint8Array): void {
    const sender = `injector-${this.rng.u32()}`;
    const epoch = this.broker.connect(sender, [], null);
    this.broker.publish(sender, epoch, { topic, payload, retain: false, qos: 1 });
    this.broker.disconnect(sender);
  }

  /** Messages published to clients that are not replicas here (e.g. a test's scripted liar), in order. */
  readonly to_others: Delivery[] = [];

  /** Delivers everything queued (and what that causes) at the current time; returns how many messages. */
  private async deliver_all(): Promise<number> {
    let messages = 0;
    while (this.queue.length > 0) {
      const d = this.queue.shift() as Delivery;
      messages++;
      const node = this.nodes.find((n) => n.id === d.client);
      if (node === undefined) {
        this.to_others.push(d);
        continue;
      }
      if (node.epoch !== d.epoch || !this.broker.is_connected(node.id, d.epoch)) continue;
      const out = node.verify_async === null ? node.rep.on_message(d.topic, d.payload, this.now) : await node.rep.on_message_async(d.topic, d.payload, this.now, node.verify_async);
      this.publish(node, out);
    }
    return messages;
  }

  /** One step of time: delivers what is queued, lets fsyncs run, reports durable progress, then moves the clock by tick_ms and ticks every connected replica. */
  async step(tick_ms = 100): Promise<void> {
    await this.deliver_all();
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const node of this.nodes) if (node.epoch !== 0) this.publish(node, node.rep.on_local(this.now));
    await this.deliver_all();
    this.now += tick_ms;
    for (const node of this.nodes) if (node.epoch !== 0) this.publish(node, node.rep.tick(this.now));
  }

  /** Delivers everything queued, lets fsyncs run, reports durable progress and ticks, until quiet or `rounds` run out. */
  async run(rounds = 10_000, tick_ms = 100): Promise<number> {
    let messages = 0;
    let idle = 0;
    for (let round = 0; round < rounds; round++) {
      const delivered = await this.deliver_all();
      messages += delivered;
      const busy = delivered > 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (const node of this.nodes) {
        if (node.epoch !== 0) this.publish(node, node.rep.on_local(this.now));
      }
      if (!busy && this.queue.length === 0) {
        this.now += tick_ms;
        for (const node of this.nodes) if (node.epoch !== 0) this.publish(node, node.rep.tick(this.now));
        idle = this.queue.length === 0 && this.quiet() ? idle + 1 : 0;
        if (idle >= 5) return messages;
      }
    }
    return messages;
  }

  private quiet(): boolean {
    return this.nodes.every((n) => n.log.durable_count === n.log.count && !n.rep.status(this.now).peers.some((p) => p.want_outstanding));
  }
}

export const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
export const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
