/**
 * What the browser benchmarks share: the page built once per run, `serve`
 * processes hosting it, a RabbitMQ with MQTT over WebSocket, and a headless
 * Chromium whose profile lives on the disk under test. Every process started
 * here is also killed by an exit handler, so an interrupted run (Ctrl-C,
 * uncaught error) leaves none behind.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Subprocess } from "bun";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import type { InterlogPage } from "../../src/browser/main.ts";
import { build_browser } from "../browser.ts";
import { chromium_path } from "../../test/support/chromium.ts";
import { RabbitMq, find_rabbitmq } from "../../test/support/rabbitmq.ts";
import { ServeProcess, write_config } from "../../test/support/serve_process.ts";
import type { BenchContext } from "./context.ts";

/** The page's global, as seen inside page.evaluate (the project compiles without the DOM library). */
export interface TabGlobals {
  interlog?: InterlogPage;
  interlog_error?: string;
}

const page_ready_timeout_ms = 30_000;

/** Processes of this run still alive; the exit handler kills them synchronously. */
const running_serves = new Set<Subprocess>();
const running_brokers = new Set<RabbitMq>();
/** RabbitMq.start calls not returned yet: their node is not in running_brokers. */
let brokers_starting = 0;
let exit_hook_installed = false;

/**
 * RabbitMq keeps its process and directory private and only stops
 * asynchronously; an exit handler needs both at once (the node runs in a
 * process group of its own, led by that process).
 */
interface RabbitMqInternals {
  process: { pid?: number } | null;
  dir: string;
}

/**
 * Stops the epmd a node started on `port`. epmd refuses -kill while a node
 * is registered, and a node just killed stays registered until epmd sees its
 * socket close: retried for up to 3 s, stopping once no epmd answers.
 */
function kill_epmd_now(port: string): void {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ERL_EPMD_PORT: port };
  for (let attempt = 0; attempt < 30; attempt++) {
    const r = spawnSync("epmd", ["-kill"], { env, timeout: 5000, encoding: "utf8" });
    if (r.status === 0 || `${r.stdout}${r.stderr}`.includes("Cannot connect")) return;
    // A synchronous sleep: this runs in an exit handler.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

function kill_broker_now(broker: RabbitMq): void {
  const internals = broker as unknown as RabbitMqInternals;
  const pid = internals.process?.pid;
  if (pid !== undefined) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  kill_epmd_now(String(broker.epmd_port));
  fs.rmSync(internals.dir, { recursive: true, force: true });
}

/**
 * The RabbitMQ nodes this process spawned whose start has not returned (a
 * boot takes 10-30 s, when a Ctrl-C is likeliest): found as our children
 * running rabbitmq-server, each killed with its process group, its epmd and
 * its directory (its working directory), as RabbitMq.stop would.
 */
function kill_starting_brokers_now(): void {
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      // The parent pid is the second field after the command name, which is in parentheses and may hold spaces.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid || !fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("rabbitmq-server")) continue;
      const dir = fs.readlinkSync(`/proc/${pid}/cwd`);
      const epmd_port = /(?:^|\0)ERL_EPMD_PORT=(\d+)/.exec(fs.readFileSync(`/proc/${pid}/environ`, "utf8"))?.[1];
      process.kill(-pid, "SIGKILL");
      if (epmd_port !== undefined) kill_epmd_now(epmd_port);
      if (path.basename(dir).startsWith("interlog-rabbitmq-")) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
}

function install_exit_hook(): void {
  if (exit_hook_installed) return;
  exit_hook_installed = true;
  // Playwright kills the browsers it launched on exit itself.
  process.on("exit", () => {
    for (const proc of running_serves) proc.kill("SIGKILL");
    for (const broker of running_brokers) kill_broker_now(broker);
    if (brokers_starting > 0) kill_starting_brokers_now();
  });
}

/** The real page (npm run browser's build), built once per run under the run's root. */
export function page_build_dir(ctx: BenchContext): Promise<string> {
  return ctx.shared("browser_page_build", async () => {
    const dir = ctx.fresh_dir("browser-page");
    const build = await build_browser(dir);
    for (const warning of build.warnings) ctx.progress(`page build warning: ${warning}`);
    return dir;
  });
}

export interface ServeOptions {
  /** Serve the page at /app/ from this build. */
  app_dir?: string;
  mqtt?: { url: string; prefix: string };
  /** `replication:` keys and their values, e.g. answer_rate_per_requester: "256MiB". */
  replication?: Record<string, string>;
}

/** `interlog serve` with its data in `dir/name`, admin on a free loopback port; the caller stops it with stop_serve. */
export async function start_serve(dir: string, name: string, options: ServeOptions): Promise<ServeProcess> {
  install_exit_hook();
  const lines = [`name: ${name}`, `data_dir: ./${name}`, "log:", "  sync: always", "admin:", "  listen: 127.0.0.1:0"];
  if (options.app_dir !== undefined) lines.push("  app: true", `  app_dir: ${options.app_dir}`);
  if (options.mqtt !== undefined) lines.push("mqtt:", `  url: ${options.mqtt.url}`, "  preset: rabbitmq", `  prefix: ${options.mqtt.prefix}`);
  if (options.replication !== undefined) {
    lines.push("replication:");
    for (const [key, value] of Object.entries(options.replication)) lines.push(`  ${key}: ${value}`);
  }
  const serve = await ServeProcess.start(write_config(dir, `${name}.yaml`, `${lines.join("\n")}\n`));
  running_serves.add(serve.proc);
  return serve;
}

export async function stop_serve(serve: ServeProcess): Promise<void> {
  const code = await serve.stop();
  running_serves.delete(serve.proc);
  if (code !== 0) throw new Error(`serve ${serve.id} exited with ${code}`);
}

/** A RabbitMQ node with Web MQTT; stop it with stop_rabbitmq. */
export async function start_rabbitmq(ctx: BenchContext): Promise<RabbitMq> {
  if (find_rabbitmq() === null) throw new Error("the browser catch-up benchmark needs RabbitMQ with its web_mqtt plugin (apt-get install rabbitmq-server)");
  install_exit_hook();
  const started = performance.now();
  brokers_starting++;
  let broker: RabbitMq;
  try {
    broker = await RabbitMq.start();
  } finally {
    brokers_starting--;
  }
  running_brokers.add(broker);
  ctx.progress(`RabbitMQ up in ${((performance.now() - started) / 1000).toFixed(1)} s (MQTT ${broker.url}, WebSocket ${broker.ws_url})`);
  return broker;
}

export async function stop_rabbitmq(broker: RabbitMq): Promise<void> {
  await broker.stop();
  running_brokers.delete(broker);
}

/** A headless Chromium and the profile directory it owns. */
export interface TabBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/**
 * A headless Chromium with a fresh profile of its own in a new directory
 * under `parent_dir` (the disk under test): a fresh IndexedDB that really
 * reaches the disk. (A browser.newContext() is an off-the-record profile,
 * whose IndexedDB lives in memory and never syncs.) The profile is not
 * under the run's root: the harness removes that on Ctrl-C while the
 * browser still writes, so the browser's files are removed only after
 * Playwright's exit handler has killed it.
 */
export async function launch_tab_browser(parent_dir: string): Promise<TabBrowser> {
  if (!fs.existsSync(chromium_path)) throw new Error(`no Chromium at ${chromium_path}: the browser benchmarks need one (apt-get install -y chromium, or set INTERLOG_CHROMIUM)`);
  const profile_dir = fs.mkdtempSync(path.join(parent_dir, "interlog-bench-chromium-"));
  const remove = (): void => fs.rmSync(profile_dir, { recursive: true, force: true });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile_dir, {
      executablePath: chromium_path,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  } catch (err) {
    remove();
    throw err;
  }
  // Added after Playwright's own exit handler (it adds one at its first launch), which kills the browser first.
  process.on("exit", remove);
  return {
    context,
    close: async () => {
      await context.close();
      process.off("exit", remove);
      remove();
    },
  };
}

/** A page of the replica, and the warnings and errors it wrote to its console (the replica's on_warning among them). */
export interface Tab {
  page: Page;
  said: string[];
}

/** Opens the page `serve` hosts at /app/ and waits for its replica (window.interlog). */
export async function open_tab(context: BrowserContext, serve: ServeProcess): Promise<Tab> {
  const page = await context.newPage();
  const said: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") said.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (err) => said.push(`uncaught: ${err.message}`));
  await page.goto(`${serve.admin_url}/app/`);
  try {
    await page.waitForFunction(
      () => {
        const g = globalThis as unknown as TabGlobals;
        return g.interlog !== undefined || g.interlog_error !== undefined;
      },
      null,
      // A timer, not animation frames: those pause in a tab the browser deems hidden.
      { timeout: page_ready_timeout_ms, polling: 50 },
    );
  } catch (err) {
    throw new Error(`the page's replica did not start within ${page_ready_timeout_ms} ms (${String(err)}); the page said: ${said.join(" | ") || "nothing"}`);
  }
  const error = await page.evaluate(() => (globalThis as unknown as TabGlobals).interlog_error ?? null);
  if (error !== null) throw new Error(`the page's replica did not start: ${error}; the page said: ${said.join(" | ") || "nothing"}`);
  return { page, said };
}
