/**
 * Where a tab's catch-up spends its time: the setup of
 * browser_catchup_events_per_s (a serve replica with 100k x 256 B events,
 * RabbitMQ, a fresh Chromium profile), with app.js built unminified, the
 * page's main thread sampled by the CDP Profiler, and IndexedDB commits,
 * WebCrypto verifies and WebSocket frames counted in the page.
 *
 *   bun scripts/bench/browser_catchup_profile.ts [--out FILE.cpuprofile] [--no-ui] [--no-profile]
 *
 * --no-ui serves an empty ui.js (the page's rendering left out, to weigh
 * it); --no-profile runs without the sampler (its overhead left out).
 * Prints the phases, the busy time of each in-page resource, and the
 * functions with the most self and inclusive time (named with the source
 * module each comes from); the profile opens in Chrome DevTools.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { browser_aliases } from "../../src/browser/platform/aliases.ts";
import { alias_plugin, build_browser } from "../browser.ts";
import { repo_root } from "../firmware/compile.ts";
import { parse_script_args } from "../script_args.ts";
import { ControlSpy, type TabCatchupArgs, catchup_events, describe_run, fill, lan_answer_rate, poll_ms, prefix, stall_timeout_ms, tab_catchup } from "./browser_catchup.ts";
import { launch_tab_browser, open_tab, start_rabbitmq, start_serve, stop_rabbitmq, stop_serve } from "./browser_harness.ts";
import { BenchContext } from "./context.ts";

const usage = "usage: bun scripts/bench/browser_catchup_profile.ts [--out FILE.cpuprofile] [--no-ui] [--no-profile]";
/** Profiler sampling interval, µs: fine enough for 10 ms turns, cheap enough not to slow them much. */
const sampling_interval_us = 200;
const timeline_step_ms = 250;

/**
 * Counts what the page does, installed before its scripts run: IndexedDB
 * readwrite transactions (count, bytes put, time open, and the time at least
 * one is open), crypto.subtle.verify calls the same way, WebSocket frames
 * received; and a timeline of them per timeline_step_ms. Plain JavaScript:
 * it runs as is in the page.
 */
const instrumentation = `(() => {
  const step = ${timeline_step_ms};
  const s = { t0: performance.now(), idb_tx: 0, idb_tx_ms: 0, idb_busy_ms: 0, idb_bytes: 0, verify: 0, verify_busy_ms: 0, ws_frames: 0, ws_bytes: 0, dom_replaced: 0, dom_nodes: 0, timeline: [] };
  globalThis.__bench_stats = s;
  globalThis.__bench_stats_reset = () => {
    for (const k of Object.keys(s)) if (typeof s[k] === "number") s[k] = 0;
    s.t0 = performance.now();
    s.timeline = [];
  };
  const slot = () => {
    const i = Math.floor((performance.now() - s.t0) / step);
    while (s.timeline.length <= i) s.timeline.push({ ws_bytes: 0, idb_done: 0, verify: 0 });
    return s.timeline[i];
  };
  const busy = (field) => {
    let open = 0, since = 0;
    return { begin() { if (open++ === 0) since = performance.now(); }, end() { if (--open === 0) s[field] += performance.now() - since; } };
  };
  const idb_busy = busy("idb_busy_ms");
  const transaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (...args) {
    const tx = transaction.apply(this, args);
    if (args[1] === "readwrite") {
      const started = performance.now();
      idb_busy.begin();
      const end = () => { s.idb_tx++; s.idb_tx_ms += performance.now() - started; slot().idb_done++; idb_busy.end(); };
      tx.addEventListener("complete", end);
      tx.addEventListener("abort", end);
    }
    return tx;
  };
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (value, ...rest) {
    if (value instanceof Uint8Array) s.idb_bytes += value.byteLength;
    return put.call(this, value, ...rest);
  };
  const verify_busy = busy("verify_busy_ms");
  const verify = crypto.subtle.verify.bind(crypto.subtle);
  crypto.subtle.verify = (...args) => {
    s.verify++;
    slot().verify++;
    verify_busy.begin();
    return verify(...args).finally(() => verify_busy.end());
  };
  // The page's renders replace lists of rows (ui.ts render_status, render_events).
  const replace = Element.prototype.replaceChildren;
  Element.prototype.replaceChildren = function (...nodes) {
    s.dom_replaced++;
    s.dom_nodes += nodes.length;
    return replace.apply(this, nodes);
  };
  const Socket = WebSocket;
  globalThis.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const n = e.data.byteLength ?? e.data.size ?? 0;
        s.ws_frames++;
        s.ws_bytes += n;
        slot().ws_bytes += n;
      });
    }
  };
})();`;

interface PageStats {
  t0: number;
  idb_tx: number;
  idb_tx_ms: number;
  idb_busy_ms: number;
  idb_bytes: number;
  verify: number;
  verify_busy_ms: number;
  ws_frames: number;
  ws_bytes: number;
  dom_replaced: number;
  dom_nodes: number;
  timeline: { ws_bytes: number; idb_done: number; verify: number }[];
}

/** app.js or ui.js again, unminified: the profile then names the project's functions. */
async function build_unminified(entry: string, name: string, out_dir: string): Promise<string> {
  const result = await Bun.build({
    entrypoints: [entry],
    outdir: out_dir,
    naming: { entry: `${name}.[ext]` },
    target: "browser",
    format: "esm",
    minify: false,
    sourcemap: "linked",
    plugins: [alias_plugin(repo_root, browser_aliases)],
    throw: false,
  });
  if (!result.success) throw new Error(`the unminified ${name}.js did not build: ${result.logs.map(String).join("; ")}`);
  return fs.readFileSync(path.join(out_dir, `${name}.js`), "utf8");
}

/** Bun's unminified bundle heads each module with a `// path` comment: the module of each line of app.js. */
function module_of_line(bundle_js: string): (line: number) => string {
  const starts: [number, string][] = [];
  bundle_js.split("\n").forEach((text, i) => {
    // Paths are relative to the working directory: keep them from src/ or node_modules/ on.
    const m = /^\/\/ (?:\S*?\/)?((?:src|node_modules)\/\S+)$/.exec(text);
    if (m !== null) starts.push([i, m[1]]);
  });
  return (line) => {
    let found = "?";
    for (const [at, name] of starts) {
      if (at > line) break;
      found = name;
    }
    return found;
  };
}

/** The part of a CDP Profiler.Profile read here (playwright-core does not export its protocol types). */
interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

interface FunctionTime {
  key: string;
  self_ms: number;
  total_ms: number;
}

/** Self and inclusive time per function (name, module and line), from a CDP profile. */
function function_times(profile: CpuProfile, modules: Record<string, (line: number) => string>): { rows: FunctionTime[]; total_ms: number } {
  const parent = new Map<number, number>();
  const by_id = new Map<number, CpuProfileNode>();
  for (const node of profile.nodes) {
    by_id.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const key_of = (node: CpuProfileNode): string => {
    const f = node.callFrame;
    const name = f.functionName === "" ? "(anonymous)" : f.functionName;
    if (f.url === "") return name;
    const file = path.basename(f.url);
    return `${name} ${modules[file]?.(f.lineNumber) ?? file} (${file}:${f.lineNumber + 1})`;
  };
  const rows = new Map<string, FunctionTime>();
  const row = (key: string): FunctionTime => {
    let r = rows.get(key);
    if (r === undefined) {
      r = { key, self_ms: 0, total_ms: 0 };
      rows.set(key, r);
    }
    return r;
  };
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total_ms = 0;
  for (let i = 0; i < samples.length; i++) {
    // A sample stands for the time until the next one.
    const ms = (deltas[i + 1] ?? 0) / 1000;
    total_ms += ms;
    const node = by_id.get(samples[i]);
    if (node === undefined) continue;
    row(key_of(node)).self_ms += ms;
    const seen = new Set<string>();
    let id: number | undefined = samples[i];
    while (id !== undefined) {
      const n = by_id.get(id);
      if (n === undefined) break;
      const key = key_of(n);
      if (!seen.has(key)) {
        seen.add(key);
        row(key).total_ms += ms;
      }
      id = parent.get(id);
    }
  }
  return { rows: [...rows.values()], total_ms };
}

function table(rows: FunctionTime[], by: "self_ms" | "total_ms", count: number, total_ms: number): string {
  return rows
    .filter((r) => by === "self_ms" || !r.key.startsWith("("))
    .sort((a, b) => b[by] - a[by])
    .slice(0, count)
    .map((r) => `  ${r[by].toFixed(0).padStart(6)} ms ${((100 * r[by]) / total_ms).toFixed(1).padStart(5)}%  ${r.key}`)
    .join("\n");
}

async function profile_tab(page: Page, args: TabCatchupArgs, sample: boolean): Promise<{ profile: CpuProfile; timing: Awaited<ReturnType<typeof tab_catchup>> }> {
  const cdp = await page.context().newCDPSession(page);
  await page.evaluate(() => (globalThis as unknown as { __bench_stats_reset: () => void }).__bench_stats_reset());
  if (sample) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: sampling_interval_us });
    await cdp.send("Profiler.start");
  }
  const timing = await page.evaluate(tab_catchup, args);
  const profile: CpuProfile = sample ? (await cdp.send("Profiler.stop")).profile : { nodes: [] };
  await cdp.detach();
  if (timing.stalled !== null) throw new Error(timing.stalled);
  return { profile, timing };
}

async function main(argv: string[]): Promise<number> {
  const values = parse_script_args<{ out?: string; "no-ui"?: boolean; "no-profile"?: boolean }>(
    argv,
    { out: { type: "string" }, "no-ui": { type: "boolean" }, "no-profile": { type: "boolean" } },
    usage,
  );
  if (typeof values === "number") return values;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-browser-profile-"));
  const remove_root = (): void => fs.rmSync(root, { recursive: true, force: true });
  // Ctrl-C: exit through the exit handlers, which kill what was started (browser_harness.ts, Playwright) and remove the files.
  process.once("SIGINT", () => process.exit(130));
  const ctx = new BenchContext(root);
  const broker = await start_rabbitmq(ctx);
  let spy: ControlSpy | null = null;
  let a: Awaited<ReturnType<typeof start_serve>> | null = null;
  try {
    const app_dir = path.join(root, "page");
    await build_browser(app_dir);
    const modules = {
      "app.js": module_of_line(await build_unminified(path.join(repo_root, "src", "browser", "main.ts"), "app", app_dir)),
      "ui.js": module_of_line(await build_unminified(path.join(repo_root, "src", "browser", "page", "ui.ts"), "ui", app_dir)),
    };
    spy = await ControlSpy.start(broker.url);
    a = await start_serve(root, "origin", { app_dir, mqtt: { url: broker.url, prefix }, replication: { answer_rate_per_requester: lan_answer_rate, answer_burst_per_requester: lan_answer_rate } });
    await fill(a);
    const browser = await launch_tab_browser(root);
    const { context } = browser;
    // After the browser's own exit handlers, so nothing writes into root any more.
    process.on("exit", remove_root);
    try {
      await context.addInitScript({ content: instrumentation });
      if (values["no-ui"] === true) await context.route("**/app/ui.js", (route) => route.fulfill({ contentType: "text/javascript", body: "export {};\n" }));
      const { page } = await open_tab(context, a);
      await spy.until_announce_allowed(a.id);
      const wants_from = spy.seen.length;
      const started_ms = Date.now();
      const args = { url: broker.ws_url, prefix, origin: a.id, events: catchup_events, poll_ms, stall_timeout_ms };
      const { profile, timing } = await profile_tab(page, args, values["no-profile"] !== true);
      const stats = (await page.evaluate(() => (globalThis as unknown as { __bench_stats: unknown }).__bench_stats)) as PageStats;
      const out = values.out ?? path.join(process.cwd(), "browser_catchup.cpuprofile");
      if (values["no-profile"] !== true) fs.writeFileSync(out, JSON.stringify(profile));

      const wants = spy.seen.slice(wants_from).filter(([, rest]) => rest.includes("/want/"));
      const { rows, total_ms } = function_times(profile, modules);
      const self = (key: string): number => rows.find((r) => r.key === key)?.self_ms ?? 0;
      const idle = self("(idle)");
      const gc = self("(garbage collector)");
      const program = self("(program)");
      const lines = [
        describe_run(`tab (${values["no-profile"] === true ? "not sampled" : "sampled"}${values["no-ui"] === true ? ", no ui.js" : ""})`, timing),
        `repair requests sent: ${wants.length}, at ${wants.map(([t]) => t - started_ms).join(", ")} ms; WebSocket frames in: ${stats.ws_frames} (${(stats.ws_bytes / 2 ** 20).toFixed(1)} MiB)`,
        `main thread over ${(total_ms / 1000).toFixed(2)} s sampled: idle ${idle.toFixed(0)} ms, JS+GC ${(total_ms - idle - program).toFixed(0)} ms (GC ${gc.toFixed(0)} ms), (program) ${program.toFixed(0)} ms`,
        `IndexedDB: ${stats.idb_tx} readwrite transactions, ${(stats.idb_bytes / 2 ** 20).toFixed(1)} MiB put, ${(stats.idb_tx_ms / Math.max(1, stats.idb_tx)).toFixed(1)} ms each on average, at least one open for ${stats.idb_busy_ms.toFixed(0)} ms`,
        `WebCrypto: ${stats.verify} crypto.subtle.verify calls, at least one pending for ${stats.verify_busy_ms.toFixed(0)} ms`,
        `page rendering: ${stats.dom_replaced} replaceChildren calls putting ${stats.dom_nodes} nodes`,
        `per ${timeline_step_ms} ms from connect() (KiB in over the WebSocket / IndexedDB commits done / verifies):`,
        `  ${stats.timeline.map((t) => `${(t.ws_bytes / 1024).toFixed(0)}/${t.idb_done}/${t.verify}`).join(" ")}`,
        "self time:",
        table(rows, "self_ms", 30, total_ms),
        "inclusive time (project functions):",
        table(rows, "total_ms", 30, total_ms),
        `profile written to ${out} (open it in Chrome DevTools, Performance panel)`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    } finally {
      await browser.close();
    }
  } finally {
    if (a !== null) await stop_serve(a);
    await spy?.stop();
    await stop_rabbitmq(broker);
    remove_root();
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
