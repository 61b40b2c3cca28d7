import { Log } from "../../src/log/log.ts";
import { Replicator, type ReplicatorOptions } from "../../src/sync/replicator.ts";
import { MqttTransport, type MqttTransportOptions } from "../../src/transport/mqtt_transport.ts";

/**
 * One replica as a node would run it: a Log in a real directory, a
 * Replicator, and the MQTT transport to a real broker.
 */
export class LiveReplica {
  private constructor(
    readonly warnings: string[],
    readonly log: Log,
    readonly rep: Replicator,
    readonly transport: MqttTransport,
  ) {}

  static async open(
    dir: string,
    url: string | readonly string[],
    options: Partial<Omit<ReplicatorOptions, "log">> & { transport?: Partial<MqttTransportOptions>; name?: string } = {},
  ): Promise<LiveReplica> {
    const { transport: transport_options, name, ...rep_options } = options;
    const log = await Log.open({ dir, name: name ?? "", sync: "always", segment_size_bytes: 4 * 1024 * 1024 });
    const warnings: string[] = [];
    const rep = new Replicator({ prefix: "it", want_timeout_ms: 3000, vv_interval_ms: 50, on_warning: (m) => warnings.push(m), ...rep_options, log });
    const transport = new MqttTransport({
      replicator: rep,
      url,
      keepalive_s: 5,
      reconnect_period_ms: 200,
      tick_interval_ms: 50,
      on_warning: (m, d) => warnings.push(`${m} ${JSON.stringify(d)}`),
      ...transport_options,
    });
    const replica = new LiveReplica(warnings, log, rep, transport);
    transport.start();
    return replica;
  }

  get id(): string {
    return this.log.id;
  }

  /** Appends `count` events in batches and tells the transport once they are durable. */
  async append(count: number, size = 64, batch = 100): Promise<void> {
    for (let done = 0; done < count; done += batch) {
      const n = Math.min(batch, count - done);
      const payloads = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`${this.log.name}#${this.log.held(this.id) + i + 1}|`.padEnd(size, "~")));
      this.log.append_batch(payloads);
      await this.log.durable();
      this.transport.notify_local();
    }
  }

  async close(): Promise<void> {
    await this.transport.stop();
    await this.log.close();
  }
}

/** Polls `ok` every 20 ms until true; throws with `describe()` after timeout_ms. Bounded, not a speed assertion. */
export async function wait_until(ok: () => boolean, describe: () => string, timeout_ms = 60_000, poll_ms = 20): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting after ${timeout_ms} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, poll_ms));
  }
}

/** Whether every replica holds exactly the events of the origins it pulls (all replicas here are origins). */
export function converged(replicas: LiveReplica[], pulls: (r: LiveReplica, origin: string) => boolean = () => true): boolean {
  for (const r of replicas) {
    for (const o of replicas) {
      const want = r === o || pulls(r, o.id) ? o.log.held(o.id) : 0;
      if (r.log.held(o.id) !== want) return false;
    }
  }
  return true;
}

export function describe_vvs(replicas: LiveReplica[]): string {
  return replicas.map((r) => `${r.log.name}: ${JSON.stringify(r.log.vv())} ${JSON.stringify(r.transport.status())}`).join("\n");
}
