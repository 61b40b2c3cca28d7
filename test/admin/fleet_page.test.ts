import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { launch_chromium } from "../support/chromium.ts";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { Fleet, fleet_source } from "../../src/sync/fleet.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { Replicator, sync_defaults } from "../../src/sync/replicator.ts";
import { admin_app, open_log } from "./support.ts";

const artifacts_dir = path.join(import.meta.dir, "..", "..", "test-artifacts");
const token = "fleet-page-token";
/** Made-up trucks the hub hears from: sync's default peers_max (10 000) takes them all. */
const trucks = 10_000;
/** Row elements the page may hold at once: "only the visible rows in the DOM". */
const row_elements_max = 300;

const truck_id = (i: number): string => (0x7100_0000 + i).toString(16).padStart(16, "0");
const truck_name = (i: number): string => `truck-${String(i).padStart(5, "0")}`;
/** What truck i announces of its own events: all different (10 007 is prime), so every lag is distinct. */
const truck_claim = (i: number): number => ((i * 7919) % 10_007) + 1;

let browser: Browser;
let server: AdminServer;
let hub_id: string;

beforeAll(async () => {
  expect(sync_defaults.peers_max).toBeGreaterThanOrEqual(trucks);
  // A hub that heard the retained vv of 10 000 trucks, each announcing how many events of its own it holds (none reached the hub yet).
  const log = await open_log({ name: "hub" });
  hub_id = log.id;
  const rep = new Replicator({ log });
  const now = Date.now();
  for (let i = 0; i < trucks; i++) {
    const id = truck_id(i);
    rep.on_message(rep.topics.vv(id), encode_message({ kind: "vv", from: id, name: truck_name(i), vv: new Map([[id, truck_claim(i)]]), pull: "*" }), now - i * 1000);
  }
  expect(rep.peer_table.size).toBe(trucks);
  const t = await admin_app({ log, token, fleet: new Fleet(fleet_source(log, rep), { now_ms: () => Date.now() }) });
  server = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
  browser = await launch_chromium("fleet page");
});

afterAll(async () => {
  await server?.stop();
  await browser?.close();
});

/** The browser's document, typed just enough for the checks below (the project's lib has no DOM types). */
interface El {
  scrollTop: number;
  scrollHeight: number;
  clientHeight: number;
  children: { length: number };
  dataset: Record<string, string | undefined>;
  textContent: string | null;
}
interface PageDocument {
  getElementById(id: string): El | null;
  querySelectorAll(selector: string): ArrayLike<El>;
  querySelector(selector: string): El | null;
}
interface PageWindow {
  document: PageDocument;
  MutationObserver: new (fn: () => void) => { observe(target: El, options: { childList: boolean }): void };
  fleet_rows_max?: number;
}
const win = (): PageWindow => globalThis as unknown as PageWindow;

/** Waits (Playwright's bounded default timeout) until the row at `index` shows replica `id`. */
async function until_row(page: Page, index: number, id: string): Promise<void> {
  await page.waitForFunction(
    ([index, id]) => (globalThis as unknown as PageWindow).document.querySelector(`.frow[data-index="${index}"]`)?.dataset.id === id,
    [index, id] as const,
  );
}

async function row_elements(page: Page): Promise<number> {
  return page.evaluate(() => (globalThis as unknown as PageWindow).document.querySelectorAll(".frow").length);
}

async function scroll_to(page: Page, where: "bottom" | number): Promise<void> {
  await page.evaluate((where) => {
    const vp = (globalThis as unknown as PageWindow).document.getElementById("viewport");
    if (vp !== null) vp.scrollTop = where === "bottom" ? vp.scrollHeight : where;
  }, where);
}

describe("the fleet page in a real browser", () => {
  test("10 000 replicas: rows show, sorting reorders them, scrolling reaches the last, and only a few hundred rows are ever in the DOM", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const foreign: string[] = [];
    const errors: string[] = [];
    page.on("request", (r) => void (r.url().startsWith(server.url) || foreign.push(r.url())));
    page.on("pageerror", (e) => void errors.push(e.message));

    await page.goto(`${server.url}/fleet`);
    await page.waitForSelector("#login:not([hidden])");
    expect(await page.isHidden("#data")).toBe(true);
    // Every change of the rows is watched: the most row elements ever held is recorded.
    await page.evaluate(() => {
      const w = globalThis as unknown as PageWindow;
      const rows = w.document.getElementById("rows");
      if (rows === null) throw new Error("no #rows");
      w.fleet_rows_max = 0;
      new w.MutationObserver(() => {
        w.fleet_rows_max = Math.max(w.fleet_rows_max ?? 0, rows.children.length);
      }).observe(rows, { childList: true });
    });
    await page.fill("#token-input", token);
    await page.press("#token-input", "Enter");

    // Sorted by name: the hub first, then the trucks in order.
    await until_row(page, 0, hub_id);
    await until_row(page, 1, truck_id(0));
    await until_row(page, 2, truck_id(1));
    expect(await page.textContent("#fleet-total")).toBe("10,001");
    expect(await page.textContent(`.frow[data-index="1"]`)).toContain(truck_name(0));
    expect(await page.textContent(`.frow[data-index="1"]`)).toContain(truck_claim(0).toLocaleString("en-US"));
    expect(await page.getAttribute('[data-sort="name"]', "aria-sort")).toBe("ascending");
    const in_view = await row_elements(page);
    expect(in_view).toBeGreaterThan(20);
    expect(in_view).toBeLessThanOrEqual(row_elements_max);

    // Scrolling through the middle, then to the bottom: the last replica shows.
    for (const at of [50_000, 120_000, 200_000]) {
      await scroll_to(page, at);
      const index = Math.floor(at / 28);
      await until_row(page, index, truck_id(index - 1));
      expect(await row_elements(page)).toBeLessThanOrEqual(row_elements_max);
    }
    await scroll_to(page, "bottom");
    await until_row(page, trucks, truck_id(trucks - 1));
    expect(await page.isVisible(`.frow[data-id="${truck_id(trucks - 1)}"]`)).toBe(true);
    expect(await row_elements(page)).toBeLessThanOrEqual(row_elements_max);

    // Sorting by lag: the largest first (the hub, lagging nothing, last); again: the smallest first.
    const by_lag = Array.from({ length: trucks }, (_, i) => i).sort((a, b) => truck_claim(b) - truck_claim(a));
    await page.click('[data-sort="lag"]');
    expect(await page.getAttribute('[data-sort="lag"]', "aria-sort")).toBe("descending");
    await until_row(page, 0, truck_id(by_lag[0]));
    await until_row(page, 1, truck_id(by_lag[1]));
    expect(await page.textContent(`.frow[data-index="0"]`)).toContain((10_007).toLocaleString("en-US"));
    await scroll_to(page, "bottom");
    await until_row(page, trucks, hub_id);
    await until_row(page, trucks - 1, truck_id(by_lag[trucks - 1]));
    await page.click('[data-sort="lag"]');
    expect(await page.getAttribute('[data-sort="lag"]', "aria-sort")).toBe("ascending");
    await until_row(page, 0, hub_id);
    await until_row(page, 1, truck_id(by_lag[trucks - 1]));
    // Sorting by last seen: the most recent first (truck 0 was heard last).
    await page.click('[data-sort="last_seen"]');
    await until_row(page, 0, truck_id(0));
    await until_row(page, 1, truck_id(1));

    fs.mkdirSync(artifacts_dir, { recursive: true });
    await page.screenshot({ path: path.join(artifacts_dir, "fleet.png") });

    const most = await page.evaluate(() => (globalThis as unknown as PageWindow).fleet_rows_max ?? -1);
    console.log(`fleet page: at most ${most} row elements in the DOM for ${trucks + 1} replicas`);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(row_elements_max);
    // The dashboard links here; the token kept in the browser opens it at once.
    await page.goto(`${server.url}/`);
    await page.click("#to-fleet");
    await until_row(page, 0, hub_id);
    expect(new URL(page.url()).pathname).toBe("/fleet");

    // One page of the API over 10 001 rows (every request sorts them all).
    const started = performance.now();
    const res = await fetch(`${server.url}/api/fleet?sort=lag&order=desc&offset=0&limit=1000`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await res.json()) as { rows: { id: string }[] }).rows[0].id).toBe(truck_id(by_lag[0]));
    console.log(`fleet page: GET /api/fleet of 1000 rows sorted by lag out of ${trucks + 1} took ${(performance.now() - started).toFixed(0)} ms`);

    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });
});
