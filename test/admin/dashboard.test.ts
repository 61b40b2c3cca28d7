import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { encode } from "cbor2";
import type { Browser, Page } from "playwright-core";
import { launch_chromium } from "../support/chromium.ts";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { Origin } from "../support/origin.ts";
import { accept_validated } from "../support/validated_accept.ts";
import type { AckSource } from "../../src/log/retention.ts";
import { FakeSync, admin_app, dec, enc } from "./support.ts";

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
  browser = await launch_chromium("dashboard");
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
    // No retention budget: the card says the log only grows, and warns of nothing.
    expect(await text_of(page, "#ret-policy")).toBe("(no budget)");
    expect(await text_of(page, "#ret-used")).toEndWith(", the log only grows");
    expect(await text_of(page, "#ret-full-in")).toBe("no budget");
    expect(await page.isHidden("#retention-warning-card")).toBe(true);

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

  test("the retention card shows the budget used, what was pruned, the oldest event, time until full, and warns while an upstream blocks pruning", async () => {
    const segment = 64 * 1024;
    const upstream = "00000000000000cc";
    let acking = true;
    const t = await admin_app({ token }, { segment_size_bytes: segment, retention: { max_bytes: 4 * segment, policy: "drop-acked", reserve_own_bytes: 0 } });
    const acks: AckSource = {
      upstreams_of: () => [upstream],
      held_by: (_u, origin) => (acking ? t.log.durable_held(origin) : 0),
      upstreams: () => [upstream],
    };
    t.log.set_acks(acks);
    const retained = start_admin_server({ app: t.app, listen: "127.0.0.1:0" });
    const fill = async (until: () => boolean) => {
      for (let i = 0; i < 200 && !until(); i++) {
        try {
          await t.log.write(Array.from({ length: 10 }, () => new Uint8Array(1000)));
        } catch {
          // LOG_FULL while blocked: what the warning is about.
        }
        await t.log.maintain();
      }
    };
    await fill(() => t.log.retention_status().pruned.segments >= 2);
    const pruned = t.log.retention_status().pruned;

    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => void errors.push(e.message));
    await page.goto(`${retained.url}/?poll_ms=200`);
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#token-input", token);
    await page.press("#token-input", "Enter");
    await until_text(page, "replica-id", t.log.id);
    expect(await text_of(page, "#ret-policy")).toBe("(drop-acked)");
    const used = t.log.used_bytes;
    await until_text(page, "ret-used", `${(used / 1024).toFixed(1)} KiB of 256.0 KiB`);
    expect(await text_of(page, "#ret-share")).toBe(`${((100 * used) / (4 * segment)).toFixed(1)} %`);
    expect(await text_of(page, "#ret-pruned-acked")).toBe(`${pruned.acked_events.toLocaleString("en-US")} events, ${(pruned.acked_bytes / 1024).toFixed(1)} KiB`);
    expect(await text_of(page, "#ret-pruned-unacked")).toBe("0 events, 0 B");
    expect(await text_of(page, "#ret-oldest")).toMatch(/^\d+ s old$/);
    expect(await text_of(page, "#ret-unacked")).toBe("0 B");
    expect(await text_of(page, "#ret-unacked-by")).toBe(`by upstream ${upstream}`);
    // The rate is measured between the app's start and the page's polls: "full in" becomes a duration.
    await page.waitForFunction(
      () => /^\d+ (s|min|h|days)$|^full; pruning makes room$/.test((globalThis as unknown as { document: PageDocument }).document.getElementById("ret-full-in")?.textContent ?? ""),
    );
    expect(await page.isHidden("#retention-warning-card")).toBe(true);

    // The upstream stops acknowledging: the budget fills, pruning is blocked, the page warns and names it.
    acking = false;
    await fill(() => t.log.retention_status().blocked !== null);
    await page.waitForSelector("#retention-warning-card:not([hidden])");
    const warning = await text_of(page, "#retention-warning");
    expect(warning).toContain("Pruning is blocked");
    expect(warning).toContain(`upstream ${upstream}`);
    expect(warning).toContain("LOG_FULL");
    expect(await text_of(page, "#ret-unacked")).toBe(`${(t.log.bytes / 1024).toFixed(1)} KiB`);
    fs.mkdirSync(artifacts_dir, { recursive: true });
    await page.screenshot({ path: path.join(artifacts_dir, "dashboard-retention.png"), fullPage: true });

    // It catches up: the warning goes.
    acking = true;
    await t.log.maintain();
    await page.waitForSelector("#retention-warning-card", { state: "hidden" });
    expect(errors).toEqual([]);
    await page.close();
    await retained.stop();
  });
});
