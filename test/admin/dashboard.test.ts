import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { encode } from "cbor2";
import { type Browser, type Page, chromium } from "playwright-core";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { Origin } from "../support/origin.ts";
import { accept_validated } from "../support/validated_accept.ts";
import { FakeSync, admin_app, dec, enc } from "./support.ts";

/** Debian's chromium; override with INTERLOG_CHROMIUM. A missing browser fails the test: the dashboard must be checked in a real one. */
const chromium_path = process.env.INTERLOG_CHROMIUM ?? "/usr/bin/chromium";
const artifacts_dir = path.join(import.meta.dir, "..", "..", "test-artifacts");
const token = "dashboard-test-token";
const peer_cloud = "7a1c00000000c10d";

/** The sync validator of this replica (the quarantine view runs it again for the message). */
function gps_validator(payload: Uint8Array): string | null {
  const fix = JSON.parse(dec(payload)) as { lat: number };
  return Math.abs(fix.lat) <= 90 ? null : `gps-fix: lat must be a number from -90 to 90, got ${fix.lat}`;
}

let browser: Browser;
let server: AdminServer;

beforeAll(async () => {
  if (!fs.existsSync(chromium_path)) {
    throw new Error(`no Chromium at ${chromium_path}: the dashboard test needs a real browser; install it with: apt-get install -y chromium (or set INTERLOG_CHROMIUM)`);
  }
  browser = await chromium.launch({
    executablePath: chromium_path,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await server?.stop();
  await browser?.close();
});

async function text_of(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? "";
}

/** The browser's document, typed just enough for the checks below (the project's lib has no DOM types). */
interface PageDocument {
  getElementById(id: string): { textContent: string | null } | null;
}

/** Waits (Playwright's bounded default timeout) until the element with `id` shows exactly `text`. */
async function until_text(page: Page, id: string, text: string): Promise<void> {
  // A function, not a string: the page's CSP forbids eval.
  await page.waitForFunction(
    ([id, text]) => (globalThis as unknown as { document: PageDocument }).document.getElementById(id)?.textContent === text,
    [id, text] as const,
  );
}

describe("the dashboard in a real browser", () => {
  test("asks for the token once, then shows the replica and follows its numbers as events arrive", async () => {
    const sync = new FakeSync();
    const t = await admin_app({ token, sync, explain_rejection: gps_validator });
    // A depot replica whose events reach this one by sync: a real origin, with its own key.
    const depot = await Origin.open();
    const peer_depot = depot.id;
    server = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
    const post = (body: Uint8Array, type = "application/octet-stream") =>
      fetch(`${server.url}/api/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": type }, body });

    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const foreign: string[] = [];
    const errors: string[] = [];
    page.on("request", (r) => void (r.url().startsWith(server.url) || foreign.push(r.url())));
    page.on("pageerror", (e) => void errors.push(e.message));

    // Without the token: only the token form, no data.
    await page.goto(`${server.url}/?poll_ms=200`);
    await page.waitForSelector("#login:not([hidden])");
    expect(await page.isHidden("#data")).toBe(true);
    expect(await text_of(page, "body")).not.toContain(t.log.id);

    await page.fill("#token-input", "not-the-token");
    await page.press("#token-input", "Enter");
    await until_text(page, "login-error", "That token was not accepted.");
    expect(await page.isHidden("#data")).toBe(true);

    await page.fill("#token-input", token);
    await page.click("#login-form button[type=submit]");
    await until_text(page, "replica-id", t.log.id);
    expect(await text_of(page, "#replica-name")).toBe("truck-0042");
    expect(await text_of(page, "#sync-state")).toBe("broker connected");
    expect(await text_of(page, "#events-count")).toBe("0");

    // Events arrive in bursts of different sizes; the count follows each one.
    let events = 0;
    for (let burst = 1; burst <= 12; burst++) {
      const size = 5 + ((burst * 37) % 23) * 4;
      const res = await post(encode(Array.from({ length: size }, (_, i) => enc(`{"burst":${burst},"i":${i}}`))), "application/cbor");
      expect(res.status).toBe(201);
      events += size;
      await until_text(page, "events-count", events.toLocaleString("en-US"));
    }
    // Sync's view: peers with lag, and an event that failed the sync validators.
    sync.peer_list = [
      { id: peer_cloud, name: "cloud", vv: {}, lag_events: 0, oldest_unacked_age_ms: null, last_seen_ms: Date.now() - 2000 },
      { id: peer_depot, name: "depot-7", vv: {}, lag_events: 118, oldest_unacked_age_ms: 95_000, last_seen_ms: Date.now() - 300_000 },
    ];
    expect(accept_validated(t.log, depot.write('{"lat":48.1}', '{"lat":91.2}'), gps_validator)).toEqual({ appended: 2, rejected: 1 });
    await depot.close();
    await t.log.durable();
    events += 2;
    await until_text(page, "events-count", events.toLocaleString("en-US"));
    await page.waitForSelector(`#peers tr[data-peer="${peer_depot}"]`);
    await until_text(page, "rejected-total", "1");
    expect(await text_of(page, `#peers tr[data-peer="${peer_depot}"]`)).toContain("118");
    expect(await text_of(page, "#rejected")).toContain(`${peer_depot}:2`);
    expect(await text_of(page, "#rejected")).toContain("gps-fix: lat must be a number from -90 to 90, got 91.2");
    // No replica-id conflict so far: the card stays hidden until sync reports one.
    expect(await page.isHidden("#conflicts-card")).toBe(true);
    sync.conflict_list = [{ origin: peer_cloud, seq: 41, from: peer_depot, first_seen_ms: Date.now(), last_seen_ms: Date.now(), events: 3 }];
    await until_text(page, "conflicts-total", "1");
    expect(await page.isHidden("#conflicts-card")).toBe(false);
    expect(await text_of(page, "#conflicts-line")).toContain(`${peer_cloud} (seq 41, from ${peer_depot})`);
    expect(await text_of(page, "#append-rate")).not.toBe("-");
    expect(await text_of(page, "#time-to-full")).not.toBe("-");
    expect(await text_of(page, "#disk-free")).not.toBe("unknown");

    fs.mkdirSync(artifacts_dir, { recursive: true });
    await page.screenshot({ path: path.join(artifacts_dir, "dashboard.png"), fullPage: true });

    // The token was kept: a reload shows the data without asking again.
    await page.reload();
    await until_text(page, "replica-id", t.log.id);
    expect(await page.isHidden("#login")).toBe(true);

    // Forgetting it hides the data again.
    await page.click("#forget");
    await page.waitForSelector("#login:not([hidden])");
    expect(await page.isHidden("#data")).toBe(true);
    expect(await text_of(page, "#replica-id")).toBe("-");
    await page.screenshot({ path: path.join(artifacts_dir, "dashboard-login.png") });

    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });
});
