import { describe, expect, test } from "bun:test";
import type { ConflictStatus, PeerStatus } from "../../src/admin/deps.ts";
import { id_of_public_key } from "../../src/log/replica_key.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { Origin } from "../support/origin.ts";
import { accept_validated } from "../support/validated_accept.ts";
import { FakeSync, admin_app, dec, enc, eventually } from "./support.ts";

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
    const status = (await (await t.call("/api/status")).json()) as Record<string, unknown> & { public_key: string };
    // The public key the id stands for: what peers check this replica's events against.
    expect(status.public_key).toMatch(/^[0-9a-f]{64}$/);
    expect(id_of_public_key(Buffer.from(status.public_key, "hex"))).toBe(t.log.id);
    expect(status).toEqual({
      id: t.log.id,
      name: "truck-0042",
      public_key: t.log.public_key,
      time_ms: 1_700_000_000_500,
      sync_mode: "always",
      events: 2,
      durable_events: 2,
      bytes: t.log.bytes,
      vv: { [t.log.id]: 2 },
      sync: { configured: false, connected: false, broker: null, peers: [] },
      disk: { used_bytes: 64 * 1024, free_bytes: io.free_bytes() },
      conflicts: [],
      unavailable: [],
      // Without a budget: nothing pruned, no "full in", no warning.
      retention: {
        configured: false,
        policy: null,
        max_bytes: null,
        used_bytes: t.log.used_bytes,
        used_ratio: null,
        reserve_own_bytes: 0,
        first_pos: 0,
        pruned: { segments: 0, events: 0, bytes: 0, acked_events: 0, acked_bytes: 0, unacked_events: 0, unacked_bytes: 0 },
        oldest_held_time_ms: t.log.read(0)[0].time_ms,
        oldest_event_age_ms: Math.max(0, 1_700_000_000_500 - t.log.read(0)[0].time_ms),
        unacked_bytes_by_upstream: {},
        upstreams_total: 0,
        fill_rate_bytes_per_s: null,
        rate_window_ms: 0,
        full_in_s: null,
        blocked: null,
        warning: null,
      },
    });
  });

  test("with sync configured, status and /api/peers show the sync layer's peers and replica-id conflicts", async () => {
    const sync = new FakeSync();
    sync.peer_list = [peer(peer_a, 5), peer(peer_b, 0)];
    const t = await admin_app({ sync });
    let status = (await (await t.call("/api/status")).json()) as { sync: unknown; conflicts: ConflictStatus[] };
    expect(status.sync).toEqual({ configured: true, connected: true, broker: null, peers: sync.peer_list });
    expect(status.conflicts).toEqual([]);
    sync.conflict_list = [{ origin: peer_b, seq: 17, from: peer_a, first_seen_ms: 1_000, last_seen_ms: 2_000, events: 3 }];
    status = (await (await t.call("/api/status")).json()) as { sync: unknown; conflicts: ConflictStatus[] };
    expect(status.conflicts).toEqual(sync.conflict_list);
    expect(await (await t.call("/api/peers")).json()).toEqual({ configured: true, connected: true, peers: sync.peer_list });
    // Ranges every holder pruned are shown, so a technician sees why an origin stopped advancing.
    sync.unavailable_list = [{ origin: peer_b, from: 1, to: 40, pruned_by: [peer_a], since_ms: 1_500 }];
    const with_gap = (await (await t.call("/api/status")).json()) as { unavailable: unknown };
    expect(with_gap.unavailable).toEqual(sync.unavailable_list);
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

/** The sync validators of these tests: the quarantine view runs them again for the message. */
function validator(payload: Uint8Array): string | null {
  const text = dec(payload);
  if (text.startsWith("lat 91")) return "lat must be a number from -90 to 90, got 91";
  if (text.startsWith("{")) return "not JSON";
  if (text.startsWith("bad")) return `${text} is bad`;
  return null;
}

describe("/api/quarantine", () => {
  test("lists the events sync rejected, newest first, with the validators' message and the payload the origin wrote", async () => {
    const t = await admin_app({ explain_rejection: validator });
    let now = 0;
    const a = await Origin.open({ clock: { now_ms: () => now } });
    const b = await Origin.open({ clock: { now_ms: () => now } });
    t.log.append(enc("mine"));
    now = 10;
    const fine = a.write("fine");
    now = 20;
    const lat = a.write("lat 91.2");
    expect(accept_validated(t.log, new Uint8Array(Buffer.concat([fine, lat])), validator)).toEqual({ appended: 2, rejected: 1 });
    now = 30;
    expect(accept_validated(t.log, b.write("{oops"), validator)).toEqual({ appended: 1, rejected: 1 });
    await t.log.durable();
    // The log keeps the origin's bytes, marked: the payload reads back as written.
    expect(dec(t.log.get(a.id, 2)!.payload)).toBe("lat 91.2");
    expect(t.log.get(a.id, 2)!.rejected).toBe(true);
    expect(t.log.get(a.id, 1)!.rejected).toBe(false);
    const view = await (await t.call("/api/quarantine")).json();
    expect(view).toEqual({
      events: [
        { pos: 3, id: `${b.id}:1`, origin: b.id, seq: 1, time: 30, message: "not JSON", payload_base64: Buffer.from("{oops").toString("base64"), payload_bytes: 5 },
        {
          pos: 2,
          id: `${a.id}:2`,
          origin: a.id,
          seq: 2,
          time: 20,
          message: "lat must be a number from -90 to 90, got 91",
          payload_base64: Buffer.from("lat 91.2").toString("base64"),
          payload_bytes: 8,
        },
      ],
      total: 2,
      scanned_to: 4,
      complete: true,
    });
    // A rejected event is kept whole and signed: the log still verifies, proofs included.
    expect(t.log.verify()).toMatchObject({ ok: true, events: 4 });
    await a.close();
    await b.close();
  });

  test("keeps only the newest few and cuts long messages and payloads, counting them all", async () => {
    const t = await admin_app({ explain_rejection: validator, limits: { quarantine_events_max: 3, quarantine_message_max_bytes: 8, quarantine_payload_max_bytes: 5 } });
    const a = await Origin.open();
    const frames = a.write(...Array.from({ length: 10 }, (_, i) => `bad number ${i + 1}`));
    expect(accept_validated(t.log, frames, validator)).toEqual({ appended: 10, rejected: 10 });
    await t.log.durable();
    const view = (await (await t.call("/api/quarantine")).json()) as { events: { seq: number; message: string; payload_base64: string; payload_bytes: number }[]; total: number };
    expect(view.total).toBe(10);
    expect(view.events.map((e) => e.seq)).toEqual([10, 9, 8]);
    expect(view.events[0].message).toBe("bad numb…");
    expect(view.events[0].payload_base64).toBe(Buffer.from("bad n").toString("base64"));
    expect(view.events[0].payload_bytes).toBe("bad number 10".length);
    await a.close();
  });

  test("the message says when no validators are given, when they pass the event now, and when they throw", async () => {
    const a = await Origin.open();
    const frames = a.write("bad one", "bad two");
    const messages = async (explain?: (payload: Uint8Array) => string | null): Promise<string[]> => {
      const t = await admin_app(explain === undefined ? {} : { explain_rejection: explain });
      accept_validated(t.log, frames, validator);
      await t.log.durable();
      return ((await (await t.call("/api/quarantine")).json()) as { events: { message: string }[] }).events.map((e) => e.message);
    };
    expect(await messages()).toEqual(["rejected by a sync validator", "rejected by a sync validator"]);
    expect(await messages(() => null)).toEqual([
      "rejected by a sync validator when it arrived; alone it passes them now (a validator that compares with earlier events, or a changed configuration)",
      "rejected by a sync validator when it arrived; alone it passes them now (a validator that compares with earlier events, or a changed configuration)",
    ]);
    expect(
      await messages(() => {
        throw new Error("boom");
      }),
    ).toEqual(["validator failed: Error: boom", "validator failed: Error: boom"]);
    await a.close();
  });

  test("scans a big log a bounded step per request and finishes in the background", async () => {
    const t = await admin_app({ explain_rejection: validator, limits: { quarantine_scan_step_max_events: 4 } });
    const a = await Origin.open();
    const frames = a.write(...Array.from({ length: 10 }, (_, i) => (i % 2 === 1 ? "bad" : "good")));
    expect(accept_validated(t.log, frames, validator)).toEqual({ appended: 10, rejected: 5 });
    await t.log.durable();
    type View = { total: number; scanned_to: number; complete: boolean };
    const first = (await (await t.call("/api/quarantine")).json()) as View;
    expect([first.total, first.scanned_to, first.complete]).toEqual([2, 4, false]);
    await eventually(async () => ((await (await t.call("/api/quarantine")).json()) as View).complete, "the scan to finish");
    const last = (await (await t.call("/api/quarantine")).json()) as View;
    expect([last.total, last.scanned_to, last.complete]).toEqual([5, 10, true]);
    await a.close();
  });
});
