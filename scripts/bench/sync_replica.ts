import { Log, type SyncMode } from "../../src/log/log.ts";
import { Replicator } from "../../src/sync/replicator.ts";
import { MqttTransport } from "../../src/transport/mqtt_transport.ts";
import { wait_for_spare_segment } from "./appender.ts";

/** Topic prefix of every sync benchmark, so a stray subscriber on the bench broker is easy to tell apart. */
export const bench_prefix = "bench";

/**
 * One replica as `interlog serve` assembles it (src/node.ts), with the
 * product's defaults: a Log with sync=always and 64 MiB segments, a
 * Replicator and the MQTT transport with their default limits (128 KiB
 * packets, 4 MiB repair window, 64 publishes in flight, 100 ms tick), and
 * like the node it pushes new events as soon as the log says they are durable.
 */
export class BenchReplica {
  private started = false;
  private constructor(
    readonly log: Log,
    readonly rep: Replicator,
    readonly transport: MqttTransport,
    readonly warnings: string[],
  ) {}

  /** Opens the log and waits for its spare segment; the link starts with `start()`. */
  static async open(
    dir: string,
    url: string,
    name: string,
    options: { pull?: "*" | string[]; sync?: SyncMode; answer_rate_per_requester_bytes_per_s?: number; answer_burst_per_requester_bytes?: number } = {},
  ): Promise<BenchReplica> {
    const warnings: string[] = [];
    const warn = (message: string, details: Record<string, unknown> = {}): void => {
      if (warnings.length < 20) warnings.push(`${message} ${JSON.stringify(details)}`);
    };
    const log = await Log.open({ dir, name, sync: options.sync ?? "always", on_warning: warn });
    await wait_for_spare_segment(dir);
    const rep = new Replicator({
      log,
      prefix: bench_prefix,
      pull: options.pull ?? "*",
      answer_rate_per_requester_bytes_per_s: options.answer_rate_per_requester_bytes_per_s,
      answer_burst_per_requester_bytes: options.answer_burst_per_requester_bytes,
      on_warning: warn,
    });
    const transport = new MqttTransport({ replicator: rep, url, reconnect_period_ms: 200, on_warning: warn });
    log.on_durable(() => transport.notify_local());
    return new BenchReplica(log, rep, transport, warnings);
  }

  get id(): string {
    return this.log.id;
  }

  start(): void {
    this.started = true;
    this.transport.start();
  }

  /** Connected, subscribed, and it has heard from every replica in `peers` (their retained vv or status). */
  sees(peers: readonly BenchReplica[]): boolean {
    if (!this.transport.status().connected) return false;
    const known = new Set(this.rep.status(Date.now()).peers.map((p) => p.id));
    return peers.every((p) => p === this || known.has(p.id));
  }

  /** Appends one atomic batch; it is pushed once durable (Log.on_durable), without waiting for that here. */
  append_batch(payloads: readonly Uint8Array[]): void {
    this.log.append_batch(payloads);
  }

  async close(): Promise<void> {
    if (this.started) await this.transport.stop(2000);
    await this.log.close();
  }
}

/** Polls `ok` every millisecond until true; throws with `describe()` after timeout_ms, so a stuck run fails instead of hanging. */
export async function until(ok: () => boolean, describe: () => string, timeout_ms = 60_000): Promise<void> {
  const deadline = performance.now() + timeout_ms;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`gave up after ${timeout_ms} ms: ${describe()}`);
    await Bun.sleep(1);
  }
}
