import { Log } from "../../src/log/log.ts";
import { Replicator } from "../../src/sync/replicator.ts";
import { MqttTransport } from "../../src/transport/mqtt_transport.ts";
import { AwsIotProxyProcess, aws_iot_limits, client_totals } from "../../test/support/aws_iot_proxy.ts";
import { next_turn, wait_for_spare_segment } from "./appender.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import { BenchBroker } from "./sync_broker.ts";
import { bench_prefix, until } from "./sync_replica.ts";
import type { Benchmark } from "./types.ts";

/** A week offline: 600 000 events of 256 B (about one a second for a week). */
export const week_events = 600_000;
const payload_bytes = 256;
const batch_events = 1000;
/** 155 MB at 512 KiB/s takes about 5 minutes; this is the give-up point. */
const catchup_timeout_ms = 20 * 60_000;
const min_ratio = 0.9;
/** As in test/transport/aws_iot_profile.test.ts: the replicas' fsyncs in this process stall their writes now and then. */
const inbound_jitter_ms = 100;

interface AwsReplica {
  log: Log;
  rep: Replicator;
  transport: MqttTransport;
  warnings: string[];
}

/** A replica as `interlog serve` assembles it with `mqtt.preset: aws-iot` (src/node.ts); the link starts with transport.start(). */
async function open_replica(dir: string, url: string, name: string): Promise<AwsReplica> {
  const warnings: string[] = [];
  const warn = (message: string, details: Record<string, unknown> = {}): void => {
    if (warnings.length < 20) warnings.push(`${message} ${JSON.stringify(details)}`);
  };
  const log = await Log.open({ dir, name, sync: "always", on_warning: warn });
  await wait_for_spare_segment(dir);
  const rep = new Replicator({ log, prefix: bench_prefix, pull: "*", on_warning: warn });
  const transport = new MqttTransport({ replicator: rep, url, preset: "aws_iot", reconnect_period_ms: 1000, on_warning: warn });
  log.on_durable(() => transport.notify_local());
  return { log, rep, transport, warnings };
}

/**
 * `aws_iot_catchup_week`: a replica (C) that was offline for a week fetches
 * the 600 000 events of 256 B its peer (A) appended meanwhile, both with the
 * aws_iot preset, through test/support/aws_iot_proxy.ts (AWS IoT Core's
 * per-connection limits, in a process of its own) in front of a local
 * mosquitto. A appends while its link is down (no live push), then
 * connects; C starts a second later. Timed from C's transport start until C
 * holds every event durably; the figure is the message bytes (topic +
 * payload) the proxy delivered to C per second, against the 512 KiB/s a
 * connection is allowed. About 5 minutes at the limit, so it runs only when
 * named: `bun run bench -- --only aws_iot_catchup_week`.
 */
export const aws_iot_catchup_week: Benchmark = {
  name: "aws_iot_catchup_week",
  unit: "B/s",
  description:
    `a replica offline for a week catches up ${week_events / 1e3}k x ${payload_bytes} B events from its peer through a proxy enforcing AWS IoT Core's per-connection limits (both replicas on the aws_iot preset), ` +
    "start to all durable; value: message bytes the proxy delivered to it per second; baseline: the 512 KiB/s a connection is allowed; ratio = value / baseline",
  target: { text: `ratio >= ${min_ratio}, no violation`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    return await aws_iot_catchup(ctx, week_events);
  },
};

export async function aws_iot_catchup(ctx: BenchContext, events: number): Promise<{ value: number; baseline: number; ratio: number }> {
  const dir_a = ctx.fresh_dir("aws-catchup-a");
  const dir_c = ctx.fresh_dir("aws-catchup-c");
  const broker = await BenchBroker.start();
  const proxy = await AwsIotProxyProcess.start(broker.port, { inbound_jitter_ms });
  const opened: AwsReplica[] = [];
  try {
    const a = await open_replica(dir_a, proxy.url, "a");
    opened.push(a);
    const pool = payload_pool(payload_bytes);
    const mask = pool.length - 1;
    const batch: Uint8Array[] = [];
    for (let sent = 0; sent < events; sent += batch_events) {
      batch.length = 0;
      for (let i = 0; i < Math.min(batch_events, events - sent); i++) batch.push(pool[(sent + i) & mask]);
      a.log.append_batch(batch);
      await next_turn();
    }
    await a.log.durable();
    a.transport.start();
    await until(() => a.transport.status().connected, () => `A did not connect: ${a.warnings.join("; ")}`, 10_000);
    // A's first second on the link (status, vv) is behind it when C arrives.
    await Bun.sleep(1200);
    const c = await open_replica(dir_c, proxy.url, "c");
    opened.push(c);
    ctx.settle();

    const started = performance.now();
    c.transport.start();
    let next_report = started + 30_000;
    while (c.log.durable_count < events) {
      const now = performance.now();
      if (now - started > catchup_timeout_ms) throw new Error(`gave up after ${catchup_timeout_ms} ms: C holds ${c.log.durable_count} of ${events}; C ${JSON.stringify(c.rep.counters)}; ${c.warnings.join("; ")}`);
      if (now >= next_report) {
        next_report += 30_000;
        const s = await proxy.snapshot();
        const to_c = client_totals(s.connections, c.rep.id);
        ctx.progress(
          `${((now - started) / 1000).toFixed(0)} s: C holds ${c.log.durable_count} of ${events}; ${(to_c.out_bytes / 1e6).toFixed(1)} MB delivered to it = ` +
            `${(to_c.out_bytes / ((now - started) / 1000) / aws_iot_limits.bytes_per_s).toFixed(3)}x of 512 KiB/s; violations ${s.violations_total}, near misses ${s.near_misses}`,
        );
      }
      await Bun.sleep(5);
    }
    const seconds = (performance.now() - started) / 1000;
    const s = await proxy.snapshot();
    const to_c = client_totals(s.connections, c.rep.id);
    const from_a = client_totals(s.connections, a.rep.id);
    const rate = to_c.out_bytes / seconds;
    const cc = c.rep.counters;
    ctx.progress(
      `catch-up: ${events} events in ${seconds.toFixed(1)} s; ${to_c.out_bytes} message bytes (${to_c.out_wire_bytes} on the wire) in ${to_c.out_publishes} publishes delivered to C = ` +
        `${(rate / 1024).toFixed(1)} KiB/s = ${(rate / aws_iot_limits.bytes_per_s).toFixed(3)}x of 512 KiB/s; ` +
        `peak 1 s windows: A sent ${from_a.max_in_publishes_per_s} publishes / ${(from_a.max_in_bytes_per_s / 1024).toFixed(1)} KiB, C got ${to_c.max_out_publishes_per_s} / ${(to_c.max_out_bytes_per_s / 1024).toFixed(1)} KiB; ` +
        `proxy: violations ${JSON.stringify(s.violation_log.slice(0, 5))} (${s.violations_total}), near misses ${s.near_misses}, deliveries delayed ${s.delayed_deliveries}; ` +
        `connections A ${from_a.connections}, C ${to_c.connections}; C sent ${cc.wants_sent} repair requests (${cc.wants_timed_out} timed out), ${cc.events_duplicate} duplicates, ${cc.dropped.unsolicited_answer} unsolicited answers`,
    );
    if (s.violations_total > 0) throw new Error(`the proxy recorded ${s.violations_total} violations: ${JSON.stringify(s.violation_log.slice(0, 10))}`);
    return { value: rate, baseline: aws_iot_limits.bytes_per_s, ratio: rate / aws_iot_limits.bytes_per_s };
  } finally {
    for (const r of opened) {
      await r.transport.stop(2000).catch(() => {});
      await r.log.close().catch(() => {});
    }
    await proxy.close();
    await broker.stop();
    ctx.remove_dir(dir_a);
    ctx.remove_dir(dir_c);
  }
}
