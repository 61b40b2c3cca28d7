import path from "node:path";
import { encode } from "cbor2";
import mqtt from "mqtt";
import { frame_size_bytes } from "../../src/log/frame.ts";
import { sync_defaults } from "../../src/sync/sync_options.ts";
import type { RabbitMq } from "../../test/support/rabbitmq.ts";
import type { ServeProcess } from "../../test/support/serve_process.ts";
import { type Tab, launch_tab_browser, open_tab, page_build_dir, start_rabbitmq, start_serve, stop_rabbitmq, stop_serve, type TabGlobals } from "./browser_harness.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const payload_bytes = 256;
export const catchup_events = 100_000;
/** Events per POST /api/events (application/cbor); serve takes up to 1024 per batch. */
const post_batch_events = 1000;
export const prefix = "bench-tab";
export const poll_ms = 50;
/** A catch-up that makes no progress for this long has stalled: the benchmark fails with what the spy saw. */
export const stall_timeout_ms = 45_000;
const target_events_per_s = 20_000;
/**
 * The serving replica's per-requester answer rate (replication.answer_rate_per_requester):
 * a hub on a LAN, as in sync_catchup_100k_s. The default (4 MiB/s, sized for
 * cellular links) would cap a catch-up of 296 B frames near 14k events/s by design.
 */
export const lan_answer_rate = "256MiB";

/** Held count of the origin over time: [ms since the start, events]. */
type Samples = [number, number][];

export interface CatchupTiming {
  ms: number;
  samples: Samples;
  /** When connect() returned (tab) or the MQTT connection was logged (node), ms since the start. */
  connected_ms: number | null;
}

/** Milestones of a catch-up for the progress line: when the first event came, half, all, and the rate of the second half. */
export function describe_run(who: string, t: CatchupTiming): string {
  const first = t.samples.find(([, held]) => held > 0)?.[0] ?? t.ms;
  const half = t.samples.find(([, held]) => held >= catchup_events / 2) ?? [t.ms, catchup_events];
  const second_half_rate = (catchup_events - half[1]) / ((t.ms - half[0]) / 1000);
  const connected = t.connected_ms === null ? "" : `connected at ${t.connected_ms.toFixed(0)} ms, `;
  return (
    `${who}: ${catchup_events / 1e3}k events in ${(t.ms / 1000).toFixed(2)} s = ${(catchup_events / (t.ms / 1000)).toFixed(0)} events/s ` +
    `(${connected}first events at ${first.toFixed(0)} ms, half at ${half[0].toFixed(0)} ms, second half at ${second_half_rate.toFixed(0)} events/s)`
  );
}

/**
 * Watches the replicas' small control messages on the broker (status, vv,
 * repair requests; not the events), for two things: when the origin last
 * announced itself, and what happened when a catch-up stalls.
 */
export class ControlSpy {
  /** [Date.now(), topic below the prefix], newest last, the last 200. */
  readonly seen: [number, string][] = [];
  private readonly last_status_ms = new Map<string, number>();

  private constructor(private readonly client: mqtt.MqttClient) {
    client.on("message", (topic) => {
      const now_ms = Date.now();
      const rest = topic.slice(prefix.length + 1);
      this.seen.push([now_ms, rest]);
      if (this.seen.length > 200) this.seen.shift();
      const [from, kind] = rest.split("/");
      if (kind === "status") this.last_status_ms.set(from, now_ms);
    });
  }

  static async start(url: string): Promise<ControlSpy> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: "bench-control-spy", reconnectPeriod: 0 });
    await client.subscribeAsync([`${prefix}/+/status`, `${prefix}/+/vv`, `${prefix}/+/want/+`], { qos: 0 });
    return new ControlSpy(client);
  }

  /**
   * Waits until `origin` may announce itself again at once
   * (announce_min_interval_ms after its last status), so a newcomer learns
   * its vv within one tick instead of at a random point of that interval.
   */
  async until_announce_allowed(origin: string): Promise<void> {
    const last = this.last_status_ms.get(origin) ?? 0;
    const wait_ms = last + sync_defaults.announce_min_interval_ms + 300 - Date.now();
    if (wait_ms > 0) await Bun.sleep(wait_ms);
  }

  /** The last control messages, for an error. */
  tail(count: number): string {
    const from = this.seen.length === 0 ? 0 : this.seen[0][0];
    return this.seen
      .slice(-count)
      .map(([t, rest]) => `+${t - from}ms ${rest}`)
      .join(", ");
  }

  async stop(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Appends the backlog over the HTTP API in CBOR batches (one fsync each, sync: always). */
export async function fill(a: ServeProcess): Promise<void> {
  const pool = payload_pool(payload_bytes);
  const mask = pool.length - 1;
  for (let sent = 0; sent < catchup_events; sent += post_batch_events) {
    const batch: Uint8Array[] = [];
    for (let i = 0; i < post_batch_events; i++) batch.push(pool[(sent + i) & mask]);
    const res = await a.fetch("/api/events", { method: "POST", headers: { "content-type": "application/cbor" }, body: encode(batch) });
    if (res.status !== 201) throw new Error(`POST /api/events answered ${res.status}: ${await res.text()}`);
  }
}

export async function vv_of(p: ServeProcess): Promise<Record<string, number>> {
  const res = await p.fetch("/api/status");
  return ((await res.json()) as { vv: Record<string, number> }).vv;
}

/**
 * The node baseline: a second serve replica with a fresh data directory on
 * the same broker, timed from its "replica started" line (its transport
 * starts just before; the process's own boot is left out, as the tab's page
 * load is) until its /api/status vv holds the origin's every event, polled
 * every `poll_ms`.
 */
async function node_catchup(dir: string, broker: RabbitMq, origin: string, spy: ControlSpy): Promise<CatchupTiming> {
  const spawned_ms = Date.now();
  const b = await start_serve(dir, "node", { mqtt: { url: broker.url, prefix } });
  try {
    const line_time = (msg: string): number | null => {
      const line = b.lines.find((l) => l.msg === msg);
      return line === undefined ? null : Date.parse(String(line.time));
    };
    const started_ms = line_time("replica started") ?? spawned_ms;
    const samples: Samples = [];
    for (;;) {
      const held = (await vv_of(b))[origin] ?? 0;
      const now_ms = Date.now() - started_ms;
      if (samples.length === 0 || samples[samples.length - 1][1] !== held) samples.push([now_ms, held]);
      if (held >= catchup_events) {
        const connected = line_time("connected to the MQTT broker");
        return { ms: now_ms, samples, connected_ms: connected === null ? null : connected - started_ms };
      }
      if (now_ms - samples[samples.length - 1][0] > stall_timeout_ms) {
        throw new Error(`the node replica ${b.id} stalled at ${held} of ${catchup_events} events for ${stall_timeout_ms} ms; control messages: ${spy.tail(40)}`);
      }
      await Bun.sleep(poll_ms);
    }
  } finally {
    await stop_serve(b);
  }
}

export interface TabCatchupArgs {
  url: string;
  prefix: string;
  origin: string;
  events: number;
  poll_ms: number;
  stall_timeout_ms: number;
}

/**
 * In the page: connect to the broker and wait, polling vv() every `poll_ms`,
 * until the tab holds the origin's every event; timed with the page's clock.
 * Returns a stall (no progress for stall_timeout_ms) as `stalled`, so the
 * caller can add what the broker saw.
 */
export async function tab_catchup(args: TabCatchupArgs): Promise<CatchupTiming & { stalled: string | null }> {
  const api = (globalThis as unknown as TabGlobals).interlog;
  if (api === undefined) throw new Error("no window.interlog");
  const started = performance.now();
  await api.connect(args.url, { preset: "rabbitmq", prefix: args.prefix });
  const connected_ms = performance.now() - started;
  const samples: [number, number][] = [];
  for (;;) {
    const held = api.vv()[args.origin] ?? 0;
    const now_ms = performance.now() - started;
    if (samples.length === 0 || samples[samples.length - 1][1] !== held) samples.push([now_ms, held]);
    if (held >= args.events) return { ms: now_ms, samples, connected_ms, stalled: null };
    if (now_ms - samples[samples.length - 1][0] > args.stall_timeout_ms) {
      return { ms: now_ms, samples, connected_ms, stalled: `the tab stalled at ${held} of ${args.events} events for ${args.stall_timeout_ms} ms; its status ${JSON.stringify(api.status())}` };
    }
    await new Promise((resolve) => setTimeout(resolve, args.poll_ms));
  }
}

async function run_tab(tab: Tab, broker: RabbitMq, origin: string, spy: ControlSpy): Promise<CatchupTiming> {
  const args: TabCatchupArgs = { url: broker.ws_url, prefix, origin, events: catchup_events, poll_ms, stall_timeout_ms };
  const result = await tab.page.evaluate(tab_catchup, args);
  if (result.stalled !== null) throw new Error(`${result.stalled}; the page said: ${tab.said.slice(-20).join(" | ") || "nothing"}; control messages: ${spy.tail(40)}`);
  return result;
}

interface CatchupRates {
  tab_events_per_s: number;
  node_events_per_s: number;
}

async function measure(ctx: BenchContext): Promise<CatchupRates> {
  const app_dir = await page_build_dir(ctx);
  const dir = ctx.fresh_dir("browser-catchup");
  const broker = await start_rabbitmq(ctx);
  let spy: ControlSpy | null = null;
  let a: ServeProcess | null = null;
  try {
    spy = await ControlSpy.start(broker.url);
    const replication = { answer_rate_per_requester: lan_answer_rate, answer_burst_per_requester: lan_answer_rate };
    a = await start_serve(dir, "origin", { app_dir, mqtt: { url: broker.url, prefix }, replication });
    const origin = a.id;
    const filled = performance.now();
    await fill(a);
    const held = (await vv_of(a))[origin] ?? 0;
    if (held !== catchup_events) throw new Error(`the origin holds ${held} events, expected ${catchup_events}`);
    ctx.progress(`origin ${origin} holds ${catchup_events / 1e3}k events (${((catchup_events * frame_size_bytes(payload_bytes)) / 2 ** 20).toFixed(1)} MiB of frames), appended in ${((performance.now() - filled) / 1000).toFixed(1)} s`);
    ctx.settle();

    // The node first, then the tab: each alone with the origin (the node is stopped, and says so, before the tab connects).
    await spy.until_announce_allowed(origin);
    const node = await node_catchup(dir, broker, origin, spy);
    ctx.progress(describe_run("node", node));
    ctx.settle();

    const browser = await launch_tab_browser(path.dirname(ctx.root_dir));
    try {
      const tab = await open_tab(browser.context, a);
      await spy.until_announce_allowed(origin);
      const timing = await run_tab(tab, broker, origin, spy);
      ctx.progress(describe_run("tab", timing));
      await tab.page.evaluate(() => (globalThis as unknown as TabGlobals).interlog?.disconnect());
      return { tab_events_per_s: catchup_events / (timing.ms / 1000), node_events_per_s: catchup_events / (node.ms / 1000) };
    } finally {
      await browser.close();
    }
  } finally {
    if (a !== null) await stop_serve(a);
    await spy?.stop();
    await stop_rabbitmq(broker);
    ctx.remove_dir(dir);
  }
}

export const browser_catchup_events_per_s: Benchmark = {
  name: "browser_catchup_events_per_s",
  unit: "events/s",
  description:
    `a fresh tab (Chromium profile on the disk under test) catches up ${catchup_events / 1e3}k x ${payload_bytes} B events a serve replica holds, over RabbitMQ's MQTT over WebSocket ` +
    `(the serving replica's answer_rate_per_requester raised to ${lan_answer_rate}/s, a LAN hub), timed from connect() until vv() holds them all (polled every ${poll_ms} ms); ` +
    `baseline: a second serve replica (fresh data dir, same broker, MQTT over TCP) catching up the same events, timed from its start until its /api/status vv holds them all; ratio = tab / node. ` +
    `Each starts once the origin may announce itself again at once (announce_min_interval after its last status: RabbitMQ hands retained vvs to no wildcard subscription), so neither waits a random part of that interval`,
  target: { text: `>= ${target_events_per_s / 1e3}k events/s`, met: (r) => r.value >= target_events_per_s },
  async run(ctx) {
    const rates = await measure(ctx);
    return { value: rates.tab_events_per_s, baseline: rates.node_events_per_s, ratio: rates.tab_events_per_s / rates.node_events_per_s };
  },
};
