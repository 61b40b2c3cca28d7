import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import path from "node:path";
import mqtt from "mqtt";
import type { Browser, Page } from "playwright-core";
import { build_browser } from "../../scripts/browser.ts";
import type { InterlogPage } from "../../src/browser/main.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { chromium } from "playwright-core";
import { chromium_path, launch_chromium } from "../support/chromium.ts";
import { forge_payload, frames_of_log, mem_log } from "../support/forgery.ts";
import { RabbitMq } from "../support/rabbitmq.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { wait_for } from "../support/wait_for.ts";

/**
 * The browser replica end to end: the real page (npm run browser's build,
 * hosted by `serve` at /app/) in headless Chromium, on IndexedDB, syncing
 * over RabbitMQ's MQTT-over-WebSocket with `serve` replicas on MQTT.
 */
const prefix = "tab";
const octets = { "content-type": "application/octet-stream" };
let build_dir: string;
let broker: RabbitMq;
let browser: Browser;

beforeAll(async () => {
  build_dir = temp_dir("interlog-browser-build-");
  await build_browser(build_dir);
  broker = await RabbitMq.start();
  browser = await launch_chromium("browser replica");
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await broker?.stop();
});

interface StatusBody {
  id: string;
  vv: Record<string, number>;
}

interface TabEvent {
  id: string;
  origin: string;
  seq: number;
  payload: number[];
}

function serve_yaml(name: string, app: boolean): string {
  const lines = [`name: ${name}`, `data_dir: ./${name}`, "log:", "  sync: always", "mqtt:", `  url: ${broker.url}`, "  preset: rabbitmq", `  prefix: ${prefix}`, "admin:", "  listen: 127.0.0.1:0"];
  if (app) lines.push("  app: true", `  app_dir: ${build_dir}`);
  return `${lines.join("\n")}\n`;
}

async function status(p: ServeProcess): Promise<StatusBody> {
  return (await (await p.fetch("/api/status")).json()) as StatusBody;
}

/** The page's globals, as the functions run in the page see them (types only: they run in Chromium). */
type Tab = typeof globalThis & { interlog: InterlogPage; interlog_error?: string };

/** Opens the page served by `p` and waits for its replica. */
async function open_tab(page: Page, p: ServeProcess): Promise<void> {
  await page.goto(`${p.admin_url}/app/`);
  await wait_ready(page);
}

async function wait_ready(page: Page): Promise<void> {
  await page.waitForFunction(() => "interlog" in globalThis || "interlog_error" in globalThis, null, { timeout: 30_000 });
  const error = await page.evaluate(() => (globalThis as Tab).interlog_error ?? null);
  expect(error).toBeNull();
}

const tab_vv = (page: Page) => page.evaluate(() => (globalThis as Tab).interlog.vv());
const tab_status = (page: Page) => page.evaluate(() => (globalThis as Tab).interlog.status());
const tab_read = (page: Page, from: number, limit: number) =>
  page.evaluate(async ([f, l]) => (await (globalThis as Tab).interlog.read(f, l)).map((e: { id: string; origin: string; seq: number; payload: Uint8Array }) => ({ id: e.id, origin: e.origin, seq: e.seq, payload: [...e.payload] })), [from, limit] as const) as Promise<TabEvent[]>;


describe("a browser replica in a tab", () => {
  test("1000 events appended with the broker down survive a reload; then the tab and a serve replica converge both ways, and a second serve replica gets the tab's events through the first, verified", async () => {
    const dir = temp_dir("interlog-browser-e2e-");
    const a = await ServeProcess.start(write_config(dir, "a.yaml", serve_yaml("depot", true)));
    let b: ServeProcess | null = null;
    const context = await browser.newContext();
    try {
      for (let i = 0; i < 50; i++) expect((await a.fetch("/api/events", { method: "POST", headers: octets, body: `from depot ${i}` })).status).toBe(201);
      const page = await context.newPage();
      await open_tab(page, a);
      // The broker goes down; the tab is told where it is and keeps trying while it records.
      await broker.kill();
      await page.evaluate((url) => (globalThis as Tab).interlog.connect(url, { preset: "rabbitmq", prefix: "tab" }), broker.ws_url);
      const ids = await page.evaluate(async () => {
        const out: string[] = [];
        for (let batch = 0; batch < 10; batch++) {
          const appends = Array.from({ length: 100 }, (_, i) => (globalThis as Tab).interlog.append(`tab event ${batch * 100 + i}`));
          out.push(...(await Promise.all(appends)));
        }
        return out;
      });
      const tab_id = (await tab_status(page)).id;
      expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => `${tab_id}:${i + 1}`));
      expect((await tab_status(page)).online).toBe(false);

      await page.reload();
      await wait_ready(page);
      const after_reload = await tab_read(page, 0, 2000);
      expect(after_reload.map((e) => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
      expect(after_reload.every((e) => e.origin === tab_id)).toBe(true);
      expect(new TextDecoder().decode(new Uint8Array(after_reload[999].payload))).toBe("tab event 999");
      // It remembers its broker: the reload reconnects on its own once the broker is back.
      expect((await tab_status(page)).broker?.url).toContain(`:${broker.ws_port}`);

      await broker.start();
      await wait_for("the tab and the depot to hold each other's events", async () => {
        const [vv, sa] = [await tab_vv(page), await status(a)];
        return vv[a.id] === 50 && sa.vv[tab_id] === 1000 ? true : null;
      }, 60_000);
      const from_depot = (await tab_read(page, 0, 2000)).filter((e) => e.origin === a.id);
      expect(from_depot.map((e) => new TextDecoder().decode(new Uint8Array(e.payload)))).toEqual(Array.from({ length: 50 }, (_, i) => `from depot ${i}`));
      const event_999 = (await (await a.fetch(`/api/events/${tab_id}:1000`)).json()) as { payload: string };
      expect(Buffer.from(event_999.payload, "base64").toString()).toBe("tab event 999");

      // The tab leaves; a second serve replica that never met it gets its events from the depot, and checks them.
      await page.evaluate(() => (globalThis as Tab).interlog.disconnect());
      const late = await ServeProcess.start(write_config(dir, "b.yaml", serve_yaml("office", false)));
      b = late;
      await wait_for("the office to get the tab's events through the depot", async () => ((await status(late)).vv[tab_id] === 1000 ? true : null), 60_000);
      expect(await late.stop()).toBe(0);
      b = null;
      const verify = Bun.spawnSync([process.execPath, path.join(import.meta.dir, "..", "..", "src", "cli.ts"), "verify", "--data-dir", path.join(dir, "office")]);
      expect(verify.exitCode).toBe(0);
    } finally {
      await context.close();
      if (b !== null) await b.stop();
      expect(await a.stop()).toBe(0);
    }
  }, 240_000);

  test("two tabs of one origin: one writes, the other follows through it; no seq is lost or issued twice, and the follower takes over when the writer closes", async () => {
    const dir = temp_dir("interlog-browser-tabs-");
    const a = await ServeProcess.start(write_config(dir, "a.yaml", serve_yaml("depot", true)));
    const context = await browser.newContext();
    try {
      const first = await context.newPage();
      await open_tab(first, a);
      const second = await context.newPage();
      await open_tab(second, a);
      expect((await tab_status(first)).writer).toBe(true);
      expect((await tab_status(second)).writer).toBe(false);
      const append_200 = (page: Page, tag: string) =>
        page.evaluate(async (t) => Promise.all(Array.from({ length: 200 }, (_, i) => (globalThis as Tab).interlog.append(`${t} ${i}`))), tag);
      const [ids_first, ids_second] = await Promise.all([append_200(first, "first"), append_200(second, "second")]);
      const all = [...ids_first, ...ids_second];
      expect(new Set(all).size).toBe(400);
      const seqs = all.map((id) => Number(id.split(":")[1])).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
      // The follower reads the same log.
      expect((await tab_read(second, 0, 1000)).length).toBe(400);

      await first.close();
      await wait_for("the second tab to take over writing", async () => ((await tab_status(second)).writer ? true : null), 30_000);
      const next = await second.evaluate(() => (globalThis as Tab).interlog.append("after the writer left"));
      expect(next.endsWith(":401")).toBe(true);
      const events = await tab_read(second, 0, 1000);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 401 }, (_, i) => i + 1));
    } finally {
      await context.close();
      expect(await a.stop()).toBe(0);
    }
  }, 120_000);

  test("the tab's key is a WebCrypto Ed25519 pair kept in IndexedDB whose private half cannot be exported; the replica id is its public key's hash", async () => {
    const dir = temp_dir("interlog-browser-key-");
    const a = await ServeProcess.start(write_config(dir, "a.yaml", serve_yaml("depot", true)));
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await open_tab(page, a);
      const key = await page.evaluate(async () => {
        type Idb = { open(name: string): { result: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null } };
        const g = globalThis as unknown as { indexedDB: Idb };
        const open = g.indexedDB.open("interlog-key");
        const db = await new Promise<{ transaction(s: string): { objectStore(s: string): { get(k: string): { result: unknown; onsuccess: (() => void) | null } } } }>((resolve, reject) => {
          open.onsuccess = () => resolve(open.result as never);
          open.onerror = () => reject(new Error("no key database"));
        });
        const get = db.transaction("keys").objectStore("keys").get("replica");
        const pair = await new Promise<CryptoKeyPair>((resolve) => {
          get.onsuccess = () => resolve(get.result as CryptoKeyPair);
        });
        const exported = await crypto.subtle.exportKey("pkcs8", pair.privateKey).then(
          () => "exported",
          (err: Error) => err.name,
        );
        const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
        const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
        return {
          algorithm: pair.privateKey.algorithm.name,
          extractable: pair.privateKey.extractable,
          exported,
          id_from_key: [...hash.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(""),
          id: (globalThis as Tab).interlog.status().id,
        };
      });
      expect(key.algorithm).toBe("Ed25519");
      expect(key.extractable).toBe(false);
      expect(key.exported).toBe("InvalidAccessError");
      expect(key.id).toBe(key.id_from_key);
      // The same key after a reload: the same replica.
      await page.reload();
      await wait_ready(page);
      expect((await tab_status(page)).id).toBe(key.id);
    } finally {
      await context.close();
      expect(await a.stop()).toBe(0);
    }
  }, 60_000);

  test("a tab that follows one truck (a pull list) takes that truck's events and not another's, and its own reach both", async () => {
    const dir = temp_dir("interlog-browser-pull-");
    const a = await ServeProcess.start(write_config(dir, "a.yaml", serve_yaml("truck-a", true)));
    const b = await ServeProcess.start(write_config(dir, "b.yaml", serve_yaml("truck-b", false)));
    const context = await browser.newContext();
    try {
      for (let i = 0; i < 20; i++) expect((await a.fetch("/api/events", { method: "POST", headers: octets, body: `a ${i}` })).status).toBe(201);
      for (let i = 0; i < 20; i++) expect((await b.fetch("/api/events", { method: "POST", headers: octets, body: `b ${i}` })).status).toBe(201);
      await wait_for("the trucks to hold each other's events", async () => ((await status(a)).vv[b.id] === 20 && (await status(b)).vv[a.id] === 20 ? true : null), 60_000);
      const page = await context.newPage();
      await open_tab(page, a);
      await page.evaluate(([url, follow]) => (globalThis as Tab).interlog.connect(url, { preset: "rabbitmq", prefix: "tab", pull: [follow] }), [broker.ws_url, a.id] as const);
      const tab_id = await page.evaluate(() => (globalThis as Tab).interlog.append("from the phone").then((id) => id.split(":")[0]));
      await wait_for("the phone to hold truck a's events and both trucks the phone's", async () => {
        const vv = await tab_vv(page);
        return vv[a.id] === 20 && (await status(a)).vv[tab_id] === 1 && (await status(b)).vv[tab_id] === 1 ? true : null;
      }, 60_000);
      // Truck b's events were there all along, from b and from a: the phone never subscribed to them.
      await Bun.sleep(1000);
      expect((await tab_vv(page))[b.id]).toBeUndefined();
      expect((await tab_read(page, 0, 100)).every((e) => e.origin !== b.id)).toBe(true);
    } finally {
      await context.close();
      expect(await b.stop()).toBe(0);
      expect(await a.stop()).toBe(0);
    }
  }, 120_000);

  test("served over plain http under a device's name (not a secure context), the page says it needs https and starts nothing", async () => {
    const dir = temp_dir("interlog-browser-insecure-");
    const yaml = `${serve_yaml("depot", true)}  allowed_hosts: [depot.test]\n`;
    const a = await ServeProcess.start(write_config(dir, "a.yaml", yaml));
    // depot.test resolves to 127.0.0.1 for this browser only: the page comes over the loopback but from a name that is not localhost.
    const insecure = await chromium.launch({ executablePath: chromium_path, args: ["--headless", "--no-sandbox", "--disable-gpu", `--host-resolver-rules=MAP depot.test 127.0.0.1`] });
    try {
      const page = await insecure.newPage();
      await page.goto(`${a.admin_url.replace("127.0.0.1", "depot.test")}/app/`);
      await page.waitForFunction(() => "interlog_error" in globalThis, null, { timeout: 30_000 });
      expect(await page.evaluate(() => (globalThis as Tab).interlog_error)).toContain("https://");
      expect(await page.evaluate(() => "interlog" in globalThis)).toBe(false);
      expect(await page.textContent("#starting-text")).toContain("must be loaded over https://");
    } finally {
      await insecure.close();
      expect(await a.stop()).toBe(0);
    }
  }, 60_000);

  test("a crc-valid forgery pushed on an origin's topic is refused by the tab; the origin's real events are taken", async () => {
    const dir = temp_dir("interlog-browser-forgery-");
    const a = await ServeProcess.start(write_config(dir, "a.yaml", serve_yaml("depot", true)));
    const context = await browser.newContext();
    const origin = await mem_log();
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: "forger" });
    try {
      const page = await context.newPage();
      await open_tab(page, a);
      await page.evaluate((url) => (globalThis as Tab).interlog.connect(url, { preset: "rabbitmq", prefix: "tab" }), broker.ws_url);
      await wait_for("the tab to be online", async () => ((await tab_status(page)).online ? true : null), 30_000);
      const enc = new TextEncoder();
      origin.append_batch([enc.encode("truck 1: 4.0 C"), enc.encode("truck 2: 4.1 C")]);
      await origin.durable();
      const real = frames_of_log(origin, origin.id, 0, 2);
      // The payload changed, the crc made right: every frame check passes, only the signature tells.
      const forged = forge_payload(real);
      const push = (frames: Uint8Array) => client.publishAsync(`${prefix}/${origin.id}/events`, Buffer.from(encode_message({ kind: "events", from: origin.id, events: encode_frames(frames), part: null })), { qos: 1 });
      await push(forged);
      await push(real);
      await wait_for("the tab to take the origin's real events", async () => ((await tab_vv(page))[origin.id] === 2 ? true : null), 30_000);
      const taken = (await tab_read(page, 0, 100)).filter((e) => e.origin === origin.id);
      expect(taken.map((e) => new TextDecoder().decode(new Uint8Array(e.payload)))).toEqual(["truck 1: 4.0 C", "truck 2: 4.1 C"]);
    } finally {
      await client.endAsync();
      await origin.close();
      await context.close();
      expect(await a.stop()).toBe(0);
    }
  }, 120_000);
});
