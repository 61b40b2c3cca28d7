import { describe, expect, test } from "bun:test";
import type { PeerStatus } from "../../src/admin/deps.ts";
import { flag_rejected } from "../../src/log/frame.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { FakeSync, admin_app, enc, eventually } from "./support.ts";

const peer_a = "00000000000000aa";
const peer_b = "00000000000000bb";

function peer(id: string, lag_events: number): PeerStatus {
  return { id, name: `cloud-${id.slice(-2)}`, vv: { [id]: 3 }, lag_events, oldest_unacked_age_ms: lag_events > 0 ? 4000 : null, last_seen_ms: 1_700_000_000_000 };
}

describe("status, peers, readiness", () => {
  test("/api/status tells id, name, counts, vv, sync and disk", async () => {
    const io = new MemFileIO();
    io.capacity_bytes = 10 * 1024 * 1024;
    const t = await admin_app({ clock: { now_ms: () => 1_700_000_000_500 } }, { dir: "/mem/data", io });
    await t.log.write([enc("a"), enc("b")]);
    const status = await (await t.call("/api/status")).json();
    expect(status).toEqual({
      id: t.log.id,
      name: "truck-0042",
      time_ms: 1_700_000_000_500,
      sync_mode: "always",
      events: 2,
      durable_events: 2,
      bytes: t.log.bytes,
      vv: { [t.log.id]: 2 },
      sync: { configured: false, connected: false, peers: [] },
      disk: { used_bytes: 64 * 1024, free_bytes: io.free_bytes() },
    });
  });

  test("with sync configured, status and /api/peers show the sync layer's peers", async () => {
    const sync = new FakeSync();
    sync.peer_list = [peer(peer_a, 5), peer(peer_b, 0)];
    const t = await admin_app({ sync });
    const status = (await (await t.call("/api/status")).json()) as { sync: unknown };
    expect(status.sync).toEqual({ configured: true, connected: true, peers: sync.peer_list });
    expect(await (await t.call("/api/peers")).json()).toEqual({ configured: true, connected: true, peers: sync.peer_list });
  });

  test("/readyz: ready with the log open; not when the broker is down, the wiring says so, or the log closed", async () => {
    const sync = new FakeSync();
    let replaying = false;
    const t = await admin_app({ sync, ready: () => (replaying ? { ok: false, reasons: ["replaying the journal"] } : { ok: true, reasons: [] }) });
    let res = await t.call("/readyz");
    expect([res.status, await res.json()]).toEqual([200, { ok: true, reasons: [] }]);
    sync.connected = false;
    replaying = true;
    res = await t.call("/readyz");
    expect([res.status, await res.json()]).toEqual([503, { ok: false, reasons: ["not connected to the MQTT broker", "replaying the journal"] }]);
    sync.connected = true;
    replaying = false;
    await t.log.close();
    res = await t.call("/readyz");
    expect([res.status, await res.json()]).toEqual([503, { ok: false, reasons: ["the log is closed"] }]);
    expect((await t.call("/healthz")).status).toBe(200);
  });

  test("an unknown route is a JSON 404", async () => {
    const t = await admin_app();
    const res = await t.call("/api/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "NOT_FOUND", message: "no such route: GET /api/nope" } });
  });

  test("a closed log answers reads with 503 LOG_CLOSED", async () => {
    const t = await admin_app();
    await t.log.write(enc("x"));
    await t.log.close();
    const res = await t.call("/api/events?from=0");
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("LOG_CLOSED");
    const post = await t.call("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: enc("y") });
    expect(post.status).toBe(503);
  });
});

describe("/api/quarantine", () => {
  test("lists the rejected placeholders sync wrote, newest first, with the validator's message", async () => {
    const t = await admin_app();
    t.log.append(enc("mine"));
    t.log.accept({ origin: peer_a, seq: 1, time_ms: 10, payload: enc("fine") });
    t.log.accept({ origin: peer_a, seq: 2, time_ms: 20, payload: enc("lat 91 out of range"), flags: flag_rejected });
    t.log.accept({ origin: peer_b, seq: 1, time_ms: 30, payload: enc("not JSON"), flags: flag_rejected });
    await t.log.durable();
    const view = await (await t.call("/api/quarantine")).json();
    expect(view).toEqual({
      events: [
        { pos: 3, id: `${peer_b}:1`, origin: peer_b, seq: 1, time: 30, message: "not JSON" },
        { pos: 2, id: `${peer_a}:2`, origin: peer_a, seq: 2, time: 20, message: "lat 91 out of range" },
      ],
      total: 2,
      scanned_to: 4,
      complete: true,
    });
  });

  test("keeps only the newest few and cuts long messages, counting them all", async () => {
    const t = await admin_app({ limits: { quarantine_events_max: 3, quarantine_message_max_bytes: 8 } });
    for (let seq = 1; seq <= 10; seq++) {
      t.log.accept({ origin: peer_a, seq, time_ms: seq, payload: enc(`rejected number ${seq}`), flags: flag_rejected });
    }
    await t.log.durable();
    const view = (await (await t.call("/api/quarantine")).json()) as { events: { seq: number; message: string }[]; total: number };
    expect(view.total).toBe(10);
    expect(view.events.map((e) => e.seq)).toEqual([10, 9, 8]);
    expect(view.events[0].message).toBe("rejected…");
  });

  test("scans a big log a bounded step per request and finishes in the background", async () => {
    const t = await admin_app({ limits: { quarantine_scan_step_max_events: 4 } });
    for (let seq = 1; seq <= 10; seq++) {
      t.log.accept({ origin: peer_a, seq, time_ms: seq, payload: enc("bad"), flags: seq % 2 === 0 ? flag_rejected : 0 });
    }
    await t.log.durable();
    type View = { total: number; scanned_to: number; complete: boolean };
    const first = (await (await t.call("/api/quarantine")).json()) as View;
    expect([first.total, first.scanned_to, first.complete]).toEqual([2, 4, false]);
    await eventually(async () => ((await (await t.call("/api/quarantine")).json()) as View).complete, "the scan to finish");
    const last = (await (await t.call("/api/quarantine")).json()) as View;
    expect([last.total, last.scanned_to, last.complete]).toEqual([5, 10, true]);
  });
});
