import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { create_admin_app } from "../../src/admin/app.ts";
import { page_app_files_required, resolve_page_app_dir, style_hashes_of } from "../../src/admin/routes/page_app.ts";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { config_file_schema } from "../../src/config/schema.ts";
import { system_clock } from "../../src/lib/clock.ts";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { alias_plugin, build_browser } from "../../scripts/browser.ts";
import { admin_app, open_log } from "../admin/support.ts";
import { launch_chromium } from "../support/chromium.ts";
import { temp_dir } from "../support/temp_dir.ts";

const repo_root = path.join(import.meta.dir, "..", "..");
const real_main = path.join(repo_root, "src", "browser", "main.ts");
const own_id = "a1b2c3d4e5f60718";
const peer_cloud = "7a1c00000000c10d";
const peer_gone = "0000000000000bad";
const html_payload = `<img src=x onerror="window.__pwned=1"><b>bold</b>`;

/**
 * The page is built around a stand-in for app.js (src/browser/main.ts,
 * written separately): the page tests drive a fake window.interlog (below),
 * not the real replica.
 */
let built_dir: string;
let build_id: string;
let browser: Browser;
let server: AdminServer;

beforeAll(async () => {
  const stub_dir = temp_dir("interlog-page-stub-");
  const stub = path.join(stub_dir, "main.ts");
  fs.writeFileSync(stub, "// The real replica installs window.interlog; the tests inject a fake.\nexport {};\n");
  built_dir = temp_dir("interlog-page-");
  ({ build_id } = await build_browser(built_dir, { app_entry: stub }));
  const t = await admin_app({ page_app_dir: built_dir });
  server = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
  browser = await launch_chromium("browser replica page");
});

afterAll(async () => {
  await server?.stop();
  await browser?.close();
});

describe("scripts/browser.ts", () => {
  test("refuses to build without the replica's entry, and writes nothing", async () => {
    const out = temp_dir("interlog-page-none-");
    const missing = path.join(out, "src", "browser", "main.ts");
    await expect(build_browser(out, { app_entry: missing })).rejects.toThrow(/main\.ts is missing: it is the browser replica/);
    expect(fs.readdirSync(out)).toEqual([]);
  });

  test("builds app.js, ui.js, sw.js (with source maps) and index.html; sw.js names its cache by the build id", () => {
    for (const name of [...page_app_files_required, "app.js.map", "ui.js.map", "sw.js.map"]) expect(fs.existsSync(path.join(built_dir, name))).toBe(true);
    expect(build_id).toMatch(/^[0-9a-f]{16}$/);
    const sw = fs.readFileSync(path.join(built_dir, "sw.js"), "utf8");
    expect(sw).toContain(build_id);
    expect(sw).not.toContain("INTERLOG_BUILD_ID");
    // Classic scripts: an iife, no module syntax a service worker registered without type: "module" would refuse.
    expect(sw.startsWith("(()=>{")).toBe(true);
    const html = fs.readFileSync(path.join(built_dir, "index.html"), "utf8");
    expect(html).toContain(`<script type="module" src="./app.js"></script>`);
    expect(html).toContain(`<script type="module" src="./ui.js"></script>`);
    // No inline script: the CSP allows scripts from the server only.
    expect(html.match(/<script/g)?.length).toBe(2);
  });

  test("the build id follows the page's files", async () => {
    const stub_dir = temp_dir("interlog-page-stub2-");
    const stub = path.join(stub_dir, "main.ts");
    fs.writeFileSync(stub, "console.log('another replica build');\n");
    const other = await build_browser(temp_dir("interlog-page-other-"), { app_entry: stub });
    expect(other.build_id).not.toBe(build_id);
  });

  test("the alias plugin resolves a module to its browser twin, and a missing twin fails the build naming it", async () => {
    const root = temp_dir("interlog-alias-");
    fs.mkdirSync(path.join(root, "src", "lib"), { recursive: true });
    fs.mkdirSync(path.join(root, "src", "twin"), { recursive: true });
    fs.writeFileSync(path.join(root, "src", "main.ts"), `import { where } from "./lib/where.ts";\nconsole.log(where());\n`);
    fs.writeFileSync(path.join(root, "src", "lib", "where.ts"), `export function where(): string { return "node-only module"; }\n`);
    // The twin may use the module it replaces: that import is not redirected to itself.
    fs.writeFileSync(
      path.join(root, "src", "twin", "where.ts"),
      `import { where as original } from "../lib/where.ts";\nexport function where(): string { return "browser twin of " + original(); }\n`,
    );
    const build = (aliases: Record<string, string>) =>
      Bun.build({ entrypoints: [path.join(root, "src", "main.ts")], target: "browser", plugins: [alias_plugin(root, aliases)], throw: false });

    const twinned = await build({ "src/lib/where.ts": "src/twin/where.ts" });
    expect(twinned.success).toBe(true);
    const text = await twinned.outputs[0].text();
    expect(text).toContain("browser twin of ");
    expect(text).toContain("node-only module");

    const missing = await build({ "src/lib/where.ts": "src/twin/absent.ts" });
    expect(missing.success).toBe(false);
    expect(missing.logs.map((log) => log.message).join("\n")).toContain("src/twin/absent.ts, the browser twin of src/lib/where.ts, is missing");
  });

  test("mqtt resolves to its browser ESM build (dist/mqtt.esm.js), which the build checks", async () => {
    const dir = temp_dir("interlog-page-mqtt-");
    // node_modules found from the entry's directory, as for src/browser/main.ts.
    fs.symlinkSync(path.join(repo_root, "node_modules"), path.join(dir, "node_modules"));
    const entry = path.join(dir, "main.ts");
    fs.writeFileSync(entry, `import mqtt from "mqtt";\n(globalThis as { connect?: unknown }).connect = mqtt.connect;\n`);
    const out = temp_dir("interlog-page-mqtt-out-");
    await build_browser(out, { app_entry: entry });
    const app = fs.readFileSync(path.join(out, "app.js"), "utf8");
    // The Node build needs net and tls; the browser build opens WebSockets.
    expect(app).toContain("WebSocket");
    expect(app).not.toMatch(/require\(["'](net|tls)["']\)/);
  });

  test("refuses an app.js holding a module that has a browser twin (an import the plugin did not see), and leaves no app.js", async () => {
    const dir = temp_dir("interlog-page-bypass-");
    const entry = path.join(dir, "main.ts");
    // Without .ts: not an import the project writes, and not one the alias plugin looks at.
    const bypass = path.relative(dir, path.join(repo_root, "src", "lib", "sha256"));
    fs.writeFileSync(entry, `import { sha256 } from ${JSON.stringify(bypass)};\n(globalThis as { h?: unknown }).h = sha256;\n`);
    const out = temp_dir("interlog-page-bypass-out-");
    await expect(build_browser(out, { app_entry: entry })).rejects.toThrow(
      "app.js would not run in a browser:\n  src/lib/sha256.ts is in the bundle: an import of it was not resolved to its browser twin",
    );
    expect(fs.readdirSync(out)).toEqual([]);
  });

  test("a Node module Bun stubs for browsers (node:fs) builds with a warning naming the importer", async () => {
    const dir = temp_dir("interlog-page-node-");
    const entry = path.join(dir, "main.ts");
    fs.writeFileSync(entry, `import fs from "node:fs";\n(globalThis as { read?: unknown }).read = fs.readFileSync;\n`);
    const { warnings } = await build_browser(temp_dir("interlog-page-node-out-"), { app_entry: entry });
    expect(warnings).toEqual([`${path.relative(repo_root, entry)} imports node:fs: the browser gets an empty stub, calls into it throw`]);
  });

  test.skipIf(!fs.existsSync(real_main))("builds the real replica (src/browser/main.ts) with the Node modules swapped for their twins", async () => {
    const out = temp_dir("interlog-page-real-");
    const { files, warnings } = await build_browser(out);
    expect(files.map((file) => path.basename(file))).toEqual(expect.arrayContaining([...page_app_files_required]));
    expect(warnings).toEqual([]);
  });
});

describe("serve's /app/ (admin.app)", () => {
  test("config: admin.app is off unless asked for; app_dir overrides where the files are", () => {
    const parsed = config_file_schema.parse({ data_dir: "./data" });
    expect(parsed.admin.app).toBe(false);
    expect(parsed.admin.app_dir).toBeUndefined();
    const on = config_file_schema.parse({ data_dir: "./data", admin: { app: true, app_dir: "web" } });
    expect(on.admin).toMatchObject({ app: true, app_dir: "web" });
    expect(resolve_page_app_dir(undefined)).toBe(path.join(repo_root, "dist", "browser"));
    expect(resolve_page_app_dir("web", "/srv/interlog")).toBe("/srv/interlog/web");
    expect(resolve_page_app_dir("/opt/page", "/srv/interlog")).toBe("/opt/page");
  });

  test("serves the page, its scripts and the service worker with their types, no-cache and the CSP; /app redirects to /app/", async () => {
    const t = await admin_app({ page_app_dir: built_dir, token: "admin-token-for-the-api" });
    const get = (url: string, headers: Record<string, string> = {}) => Promise.resolve(t.app.request(url, { headers }));

    const redirect = await get("/app");
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get("location")).toBe("app/");
    expect(new URL(redirect.headers.get("location") ?? "", "http://127.0.0.1:8080/app").pathname).toBe("/app/");

    // Static and free of data: no token needed, unlike the API.
    const index = await get("/app/");
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    expect(html).toBe(fs.readFileSync(path.join(built_dir, "index.html"), "utf8"));
    const csp = index.headers.get("content-security-policy") ?? "";
    expect(csp).toStartWith("default-src 'self'; script-src 'self'; ");
    expect(csp).toContain("connect-src 'self' ws: wss:");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    // The page's one <style> is allowed by its hash.
    const [style_hash] = style_hashes_of(html);
    expect(csp).toContain(`style-src 'self' 'sha256-${style_hash}'`);
    expect((await get("/app/index.html")).status).toBe(200);

    for (const name of ["app.js", "ui.js", "sw.js"]) {
      const res = await get(`/app/${name}`);
      expect({ name, status: res.status, type: res.headers.get("content-type") }).toEqual({ name, status: 200, type: "text/javascript; charset=utf-8" });
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      expect(await res.text()).toBe(fs.readFileSync(path.join(built_dir, name), "utf8"));
    }
    expect((await get("/app/ui.js.map")).headers.get("content-type")).toBe("application/json; charset=utf-8");

    // no-cache asks again each load; an unchanged file is a 304.
    const etag = (await get("/app/ui.js")).headers.get("etag") ?? "";
    expect(etag).not.toBe("");
    const again = await get("/app/ui.js", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    // A cache merges a 304's headers into what it holds: a CSP without the page's style hash would replace the one with it.
    const index_etag = index.headers.get("etag") ?? "";
    const index_again = await get("/app/", { "if-none-match": index_etag });
    expect(index_again.status).toBe(304);
    expect([...index_again.headers.keys()].sort()).toEqual(["cache-control", "etag"]);

    for (const bad of ["/app/nope.js", "/app/.hidden", "/app/..%2Fpackage.json", "/app/a..%2F..%2Fpackage.json", "/app/sub/ui.js", "/app/index"]) {
      const res = await get(bad);
      expect({ bad, status: res.status }).toEqual({ bad, status: 404 });
    }
    // The API behind the same server still wants the token.
    expect((await get("/api/status")).status).toBe(401);
  });

  test("the host guard applies to the page too", async () => {
    const t = await admin_app({ page_app_dir: built_dir });
    const res = await t.app.request("/app/", { headers: { host: "evil.example:8080" } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("HOST_NOT_ALLOWED");
  });

  test("without admin.app nothing is served at /app/", async () => {
    const t = await admin_app();
    expect((await t.app.request("/app/")).status).toBe(404);
  });

  test("admin.app with the files missing refuses to start: CONFIG_INVALID naming npm run browser", async () => {
    const log = await open_log();
    const empty = temp_dir("interlog-page-empty-");
    fs.copyFileSync(path.join(built_dir, "index.html"), path.join(empty, "index.html"));
    let thrown: unknown;
    try {
      create_admin_app({ log, body_limit_bytes: 1024, clock: system_clock, page_app_dir: empty });
    } catch (err) {
      thrown = err;
    }
    expect(is_interlog_error(thrown, "CONFIG_INVALID")).toBe(true);
    const message = (thrown as Error).message;
    expect(message).toContain("npm run browser");
    expect(message).toContain(`${empty} lacks app.js, ui.js, sw.js`);
    expect(message).toContain("admin.app_dir");
  });
});

/**
 * A fake of window.interlog (the contract of issue 15), for the page alone.
 * `install` says when it appears: at once (before the page's scripts),
 * later with an interlog-ready event, or later without one (the page polls).
 */
function fake_interlog(install: "now" | "ready-event" | "silent", seed_events: number): string {
  return `(() => {
  const enc = new TextEncoder();
  const own = ${JSON.stringify(own_id)};
  const state = {
    events: [],
    listeners: new Set(),
    broker: { url: "wss://broker.example:8884/mqtt", connected: false, last_error: "connect ECONNREFUSED" },
    peers: [
      { id: ${JSON.stringify(peer_cloud)}, online: true, lag_events: 3 },
      { id: ${JSON.stringify(peer_gone)}, online: false, lag_events: 0 },
      { id: "00000000000000aa", online: null, lag_events: 1 },
    ],
    calls: [],
  };
  let t = 1767225600000;
  const add = (origin, payload) => {
    const seq = state.events.filter((e) => e.origin === origin).length + 1;
    const event = { id: origin + ":" + seq, origin, seq, time_ms: t++, payload };
    state.events.push(event);
    return event.id;
  };
  for (let i = 0; i < ${seed_events}; i++) add(own, enc.encode("seed " + i));
  add(${JSON.stringify(peer_cloud)}, enc.encode("first from the cloud"));
  add(own, new Uint8Array([0xff, 0xfe, 0x00, 0x41]));
  add(own, enc.encode(${JSON.stringify(html_payload)}));
  add(${JSON.stringify(peer_cloud)}, enc.encode("newest"));
  const notify = () => setTimeout(() => { for (const listener of state.listeners) listener(); }, 5);
  const api = {
    async append(data) {
      state.calls.push(["append", data]);
      const id = add(own, typeof data === "string" ? enc.encode(data) : data);
      notify();
      return id;
    },
    // At most 7 events a call, as a real store may page: the page must ask again.
    async read(from, limit) {
      state.calls.push(["read", from, limit]);
      return state.events.slice(from, from + Math.min(limit, 7)).map((e) => ({ ...e, payload: e.payload.slice() }));
    },
    count: () => state.events.length,
    vv() {
      const vv = {};
      for (const e of state.events) vv[e.origin] = Math.max(vv[e.origin] ?? 0, e.seq);
      return vv;
    },
    status: () => ({ id: own, online: state.broker !== null && state.broker.connected, writer: true, broker: state.broker, peers: state.peers, events: state.events.length }),
    async connect(url, options) {
      state.calls.push(["connect", url, options ?? null]);
      if (url.includes("refused")) throw new Error("the broker refused the connection");
      state.broker = { url, connected: true, last_error: null };
      notify();
    },
    async disconnect() {
      state.calls.push(["disconnect"]);
      if (state.broker !== null) state.broker = { ...state.broker, connected: false };
      notify();
    },
    on_change(listener) {
      state.listeners.add(listener);
      return () => state.listeners.delete(listener);
    },
  };
  window.__fake = { state, notify };
  const mode = ${JSON.stringify(install)};
  if (mode === "now") window.interlog = api;
  else setTimeout(() => {
    window.interlog = api;
    if (mode === "ready-event") window.dispatchEvent(new Event("interlog-ready"));
  }, 1500);
})();`;
}

/** The browser's globals, typed just enough for the checks below (the project's lib has no DOM types). */
interface PageGlobals {
  document: {
    title: string;
    getElementById(id: string): { textContent: string | null } | null;
    documentElement: { scrollWidth: number; clientWidth: number };
  };
  __fake: { state: { calls: unknown[][]; broker: { connected: boolean } | null } };
  __pwned?: number;
  navigator: { serviceWorker: { ready: Promise<unknown>; controller: unknown } };
  caches: { open(name: string): Promise<unknown>; keys(): Promise<string[]> };
  getComputedStyle(element: unknown): { backgroundColor: string; color: string };
}

async function text_of(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? "";
}

/** Waits until the element with `id` shows exactly `text` (a function, not a string: the page's CSP forbids eval). */
async function until_text(page: Page, id: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([id, text]) => (globalThis as unknown as PageGlobals).document.getElementById(id)?.textContent === text,
    [id, text] as const,
  );
}

async function open_page(
  context: BrowserContext,
  install: "now" | "ready-event" | "silent" = "now",
  seed_events = 0,
): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => void errors.push(e.message));
  // CSP violations are reported on the console.
  page.on("console", (m) => void (m.type() === "error" && errors.push(m.text())));
  await page.addInitScript(fake_interlog(install, seed_events));
  await page.goto(`${server.url}/app/`);
  return { page, errors };
}

describe("the page in a real browser, with a fake window.interlog", () => {
  test("shows the log newest first, payloads as text or hex (HTML as text), peers with their lag, and the broker and network state, on a phone screen", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const { page, errors } = await open_page(context);
    await until_text(page, "replica-id", own_id);
    expect(await page.title()).toBe("InterLog replica");
    expect(await page.isHidden("#starting")).toBe(true);

    await until_text(page, "event-count", "(4 events)");
    const ids = await page.$$eval("#events li .id", (nodes) => nodes.map((n) => n.textContent));
    expect(ids).toEqual([`${peer_cloud}:2`, `${own_id}:2`, `${own_id}:1`, `${peer_cloud}:1`]);
    const payloads = await page.$$eval("#events li .payload", (nodes) => nodes.map((n) => ({ text: n.textContent, class_name: n.className })));
    expect(payloads).toEqual([
      { text: "newest", class_name: "payload" },
      { text: html_payload, class_name: "payload" },
      { text: "fffe0041", class_name: "payload hex" },
      { text: "first from the cloud", class_name: "payload" },
    ]);
    // The HTML in a payload stayed text: no element was made from it, nothing ran.
    expect(await page.$$eval("#events img, #events b", (nodes) => nodes.length)).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
    expect(await text_of(page, "#events li:nth-child(4) time")).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);

    const peers = await page.$$eval("#peers li", (nodes) => nodes.map((n) => n.textContent));
    expect(peers).toEqual([`${peer_cloud}onlinelags 3 events`, `${peer_gone}offlineup to date`, "00000000000000aaunknownlags 1 event"]);
    expect(await page.isHidden("#no-peers")).toBe(true);

    expect(await text_of(page, "#broker-state")).toBe("broker: disconnected");
    expect(await text_of(page, "#broker-detail")).toBe("Not connected to wss://broker.example:8884/mqtt");
    expect(await text_of(page, "#broker-error")).toBe("connect ECONNREFUSED");
    expect(await page.inputValue("#broker-url")).toBe("wss://broker.example:8884/mqtt");
    expect(await text_of(page, "#network-state")).toBe("network: online");
    await context.setOffline(true);
    await until_text(page, "network-state", "network: offline");
    await context.setOffline(false);
    await until_text(page, "network-state", "network: online");

    // The page's <style> applied (its CSP hash matched), and nothing is wider than the phone.
    expect(await page.$eval("header", (header) => (globalThis as unknown as PageGlobals).getComputedStyle(header).backgroundColor)).toBe("rgb(29, 36, 48)");
    // The state pills' text stays readable on their red or green.
    const pill = await page.$eval("#broker-state", (node) => {
      const style = (globalThis as unknown as PageGlobals).getComputedStyle(node);
      return { color: style.color, background: style.backgroundColor };
    });
    expect(pill).toEqual({ color: "rgb(255, 255, 255)", background: "rgb(192, 57, 43)" });
    const width = await page.evaluate(() => {
      const root = (globalThis as unknown as PageGlobals).document.documentElement;
      return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth };
    });
    expect(width.scrollWidth).toBeLessThanOrEqual(width.clientWidth);
    expect(errors).toEqual([]);
    await context.close();
  });

  test("appends through the form, connects and disconnects through the broker form, and shows a refused connection", async () => {
    const context = await browser.newContext();
    const { page, errors } = await open_page(context);
    await until_text(page, "event-count", "(4 events)");

    await page.fill("#append-text", "hello <i>from</i> the form");
    await page.press("#append-text", "Enter");
    await until_text(page, "append-result", `Appended ${own_id}:3`);
    await until_text(page, "event-count", "(5 events)");
    expect(await text_of(page, "#events li:first-child .id")).toBe(`${own_id}:3`);
    expect(await text_of(page, "#events li:first-child .payload")).toBe("hello <i>from</i> the form");
    expect(await page.inputValue("#append-text")).toBe("");

    await page.fill("#broker-url", "ws://127.0.0.1:9001/mqtt");
    await page.fill("#broker-username", "a1b2c3d4e5f60718");
    await page.fill("#broker-password", "s3cret");
    await page.fill("#broker-prefix", "fleet7");
    await page.click("#connect");
    await until_text(page, "broker-state", "broker: connected");
    expect(await text_of(page, "#broker-detail")).toBe("Connected to ws://127.0.0.1:9001/mqtt");
    expect(await text_of(page, "#broker-error")).toBe("");
    await page.click("#disconnect");
    await until_text(page, "broker-state", "broker: disconnected");

    await page.fill("#broker-url", "wss://refused.example/mqtt");
    await page.fill("#broker-username", "");
    await page.fill("#broker-password", "");
    await page.fill("#broker-prefix", "");
    await page.click("#connect");
    await until_text(page, "broker-error", "Could not connect: the broker refused the connection");

    const calls = await page.evaluate(() => (globalThis as unknown as PageGlobals).__fake.state.calls.filter((c) => c[0] !== "read"));
    expect(calls).toEqual([
      ["append", "hello <i>from</i> the form"],
      ["connect", "ws://127.0.0.1:9001/mqtt", { username: "a1b2c3d4e5f60718", password: "s3cret", prefix: "fleet7" }],
      ["disconnect"],
      ["connect", "wss://refused.example/mqtt", {}],
    ]);
    expect(errors).toEqual([]);
    await context.close();
  });

  test("Export JSON lines downloads the whole log in transaction order, read in pages; non-UTF-8 payloads as hex", async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const { page, errors } = await open_page(context, "now", 250);
    // 254 events: the newest 200 are shown, the rest on asking.
    await until_text(page, "event-count", "(254 events, newest 200 shown)");
    expect(await page.$$eval("#events li", (nodes) => nodes.length)).toBe(200);
    await page.click("#more");
    await until_text(page, "event-count", "(254 events)");
    expect(await page.$$eval("#events li", (nodes) => nodes.length)).toBe(254);
    expect(await page.isHidden("#more")).toBe(true);

    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    expect(download.suggestedFilename()).toMatch(new RegExp(`^interlog-${own_id}-\\d+\\.jsonl$`));
    const file = await download.path();
    const text = fs.readFileSync(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.length).toBe(254);
    expect(lines[0]).toEqual({ id: `${own_id}:1`, origin: own_id, seq: 1, time_ms: 1767225600000, payload_text: "seed 0" });
    expect(lines.slice(250)).toEqual([
      { id: `${peer_cloud}:1`, origin: peer_cloud, seq: 1, time_ms: 1767225600250, payload_text: "first from the cloud" },
      { id: `${own_id}:251`, origin: own_id, seq: 251, time_ms: 1767225600251, payload_hex: "fffe0041" },
      { id: `${own_id}:252`, origin: own_id, seq: 252, time_ms: 1767225600252, payload_text: html_payload },
      { id: `${peer_cloud}:2`, origin: peer_cloud, seq: 2, time_ms: 1767225600253, payload_text: "newest" },
    ]);
    // Every key in the contract's order, exactly one payload field.
    expect(Object.keys(lines[251])).toEqual(["id", "origin", "seq", "time_ms", "payload_hex"]);
    await until_text(page, "export-result", "Exported 254 events.");
    expect(errors).toEqual([]);
    await context.close();
  });

  for (const install of ["ready-event", "silent"] as const) {
    test(`waits for window.interlog installed later (${install === "ready-event" ? "with an interlog-ready event" : "found by polling"})`, async () => {
      const context = await browser.newContext();
      const { page, errors } = await open_page(context, install);
      // The fake appears 1.5 s after the page's scripts ran.
      expect(await page.isVisible("#starting")).toBe(true);
      expect(await page.isHidden("#main")).toBe(true);
      await until_text(page, "replica-id", own_id);
      await until_text(page, "event-count", "(4 events)");
      expect(await page.isHidden("#starting")).toBe(true);
      expect(errors).toEqual([]);
      await context.close();
    });
  }
});

describe("the page with the real replica", () => {
  test.skipIf(!fs.existsSync(real_main))("app.js (src/browser/main.ts) runs under the page's CSP: an event appended through the form is shown, and again after a reload", async () => {
    const dir = temp_dir("interlog-page-real-app-");
    await build_browser(dir);
    const t = await admin_app({ page_app_dir: dir });
    const real_server = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => void errors.push(e.message));
      page.on("console", (m) => void (m.type() === "error" && errors.push(m.text())));
      await page.goto(`${real_server.url}/app/`);
      await page.waitForSelector("#main:not([hidden])");
      const id = await text_of(page, "#replica-id");
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      await page.fill("#append-text", "from the real replica");
      await page.press("#append-text", "Enter");
      await until_text(page, "append-result", `Appended ${id}:1`);
      await until_text(page, "event-count", "(1 event)");
      expect(await text_of(page, "#events li:first-child .payload")).toBe("from the real replica");
      await page.reload();
      await until_text(page, "replica-id", id);
      await until_text(page, "event-count", "(1 event)");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      await real_server.stop();
    }
  });
});

describe("the service worker", () => {
  test("caches the page at install and serves it cache first, updating from the network; with the server gone the page still loads", async () => {
    const dir = temp_dir("interlog-page-sw-");
    for (const name of fs.readdirSync(built_dir)) fs.copyFileSync(path.join(built_dir, name), path.join(dir, name));
    const t = await admin_app({ page_app_dir: dir });
    const own_server = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
    let stopped = false;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => void errors.push(e.message));
      // The browser's own /favicon.ico request (a 404 the server is right to give) may report late: not the page's.
      page.on("console", (m) => void (m.type() === "error" && !m.location().url.endsWith("/favicon.ico") && errors.push(m.text())));
      await page.addInitScript(fake_interlog("now", 0));

      // A cache of an older build, left on this origin: activate deletes it.
      await page.goto(`${own_server.url}/app/ui.js.map`);
      await page.evaluate(() => (globalThis as unknown as PageGlobals).caches.open("interlog-app-0000000000000000"));
      // That document asked for /favicon.ico (a 404); the page itself asks for nothing missing.
      errors.length = 0;

      await page.goto(`${own_server.url}/app/`);
      await page.evaluate(() => (globalThis as unknown as PageGlobals).navigator.serviceWorker.ready.then(() => undefined));
      // Claimed at activate; a reload makes sure either way.
      await page.reload();
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).navigator.serviceWorker.controller !== null)).toBe(true);
      await until_text(page, "offline-support", "This page loads offline once it has been loaded.");
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).caches.keys())).toEqual([`interlog-app-${build_id}`]);

      // Cache first: a changed page shows on the load after the one that fetched it in the background.
      const index_file = path.join(dir, "index.html");
      fs.writeFileSync(index_file, fs.readFileSync(index_file, "utf8").replace("<title>InterLog replica</title>", "<title>InterLog replica, updated</title>"));
      const first = await page.reload();
      expect(first?.fromServiceWorker()).toBe(true);
      expect(await page.title()).toBe("InterLog replica");
      for (let i = 0; i < 50 && (await page.title()) !== "InterLog replica, updated"; i++) {
        await Bun.sleep(100);
        await page.reload();
      }
      expect(await page.title()).toBe("InterLog replica, updated");

      await own_server.stop();
      stopped = true;
      const offline = await page.reload();
      expect(offline?.fromServiceWorker()).toBe(true);
      expect(await page.title()).toBe("InterLog replica, updated");
      await until_text(page, "replica-id", own_id);
      await until_text(page, "event-count", "(4 events)");
      // The cached page keeps the CSP that allows its <style>.
      expect(await page.$eval("header", (header) => (globalThis as unknown as PageGlobals).getComputedStyle(header).backgroundColor)).toBe("rgb(29, 36, 48)");
      // A visit with a query string is the same page.
      await page.goto(`${own_server.url}/app/?from=bookmark`);
      await until_text(page, "replica-id", own_id);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      if (!stopped) await own_server.stop();
    }
  });
});
