import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { load_config } from "../../src/config/load.ts";
import type { Log } from "../../src/log/log.ts";
import { ReplicaNode } from "../../src/node.ts";
import { Fleet, type FleetPage, type FleetRow, fleet_source, sort_fleet } from "../../src/sync/fleet.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { Replicator } from "../../src/sync/replicator.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { Origin } from "../support/origin.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { admin_app, open_log } from "./support.ts";

const token = "fleet-api-token";
const made_up = (n: number): string => `00000000000f${n.toString(16).padStart(4, "0")}`;
const minute = 60 * 1000;
const origins: Origin[] = [];

afterAll(async () => {
  for (const o of origins) await o.close();
});

/** A hub: a real log and a replicator fed the messages its peers would publish, on a clock the test moves. */
async function hub() {
  const clock = { now: 1_800_000_000_000, now_ms: () => clock.now };
  const log = await open_log({ name: "hub" });
  const rep = new Replicator({ log, prefix: "t" });
  const deliver = (topic: string, payload: Uint8Array) => rep.on_message(topic, payload, clock.now);
  const vv = (from: string, name: string, own: number, head?: { seq: number; crc: number }) =>
    deliver(rep.topics.vv(from), encode_message({ kind: "vv", from, name, vv: new Map([[from, own]]), pull: "*", head }));
  const push = (o: Origin, frames: Uint8Array) => deliver(rep.topics.events(o.id), encode_message({ kind: "events", from: o.id, events: encode_frames(frames), part: null }));
  return { clock, log, rep, vv, push };
}

async function origin(): Promise<Origin> {
  const o = await Origin.open();
  origins.push(o);
  return o;
}

function crc_of(log: Log, origin: string, seq: number): number {
  const e = log.get(origin, seq);
  if (e === null) throw new Error(`${origin}:${seq} not held`);
  return e.crc;
}

describe("GET /api/fleet", () => {
  test("lists every replica the hub knows: peers heard from, origins it holds, itself", async () => {
    const h = await hub();
    const t0 = h.clock.now;
    const a = await origin(); // a truck that pushes its events and announces more than it pushed
    const b = await origin(); // a truck only heard of: it announces 10 events, none arrived yet
    const c = await origin(); // a truck whose events came through another replica
    h.push(a, a.write("a1", "a2", "a3"));
    a.write("a4", "a5");
    h.vv(a.id, "truck-a", 5);
    h.clock.now += 2000;
    h.vv(b.id, "truck-b", 10);
    expect(h.log.accept_frames(c.write("c1")).appended).toBe(1);
    // a's vv names its newest event with another crc than the one held: a copied data directory (heads are compared once durable here).
    await h.log.durable();
    h.vv(a.id, "truck-a", 5, { seq: 3, crc: (crc_of(h.log, a.id, 3) ^ 1) >>> 0 });
    const fleet = new Fleet(fleet_source(h.log, h.rep), h.clock);
    const t = await admin_app({ log: h.log, fleet, clock: h.clock, token });

    const res = await t.call("/api/fleet");
    expect(res.status).toBe(200);
    const page = (await res.json()) as FleetPage;
    expect(page).toMatchObject({ time_ms: h.clock.now, total: 4, offset: 0, limit: 100, sort: "name", order: "asc", untracked: 0 });
    const rows = new Map(page.rows.map((r) => [r.id, r]));
    expect(rows.get(a.id)).toEqual({
      id: a.id,
      name: "truck-a",
      self: false,
      peer: true,
      online: null,
      last_seen_ms: t0 + 2000,
      held_seq: 3,
      claimed_seq: 5,
      lag_events: 2,
      events_per_day: null,
      rate_window_ms: 0,
      last_event_time_ms: a.log.get(a.id, 3)?.time_ms ?? -1,
      conflicts: 1,
    });
    expect(rows.get(b.id)).toMatchObject({ name: "truck-b", peer: true, last_seen_ms: t0 + 2000, held_seq: 0, claimed_seq: 10, lag_events: 10, last_event_time_ms: null, conflicts: 0 });
    expect(rows.get(c.id)).toMatchObject({ name: "", peer: false, last_seen_ms: null, held_seq: 1, lag_events: null, last_event_time_ms: c.log.get(c.id, 1)?.time_ms ?? -1 });
    expect(rows.get(h.log.id)).toMatchObject({ name: "hub", self: true, lag_events: 0 });
    // Sorted by name, unnamed last.
    expect(page.rows.map((r) => r.name)).toEqual(["hub", "truck-a", "truck-b", ""]);

    // Half an hour later a pushes two more: 2 events in 30 min since the hub first saw it, 96 a day.
    h.clock.now += 30 * minute;
    h.push(a, a.frames(3));
    const later = (await (await t.call("/api/fleet?sort=events_per_day&order=desc")).json()) as FleetPage;
    expect(later.rows[0]).toMatchObject({ id: a.id, held_seq: 5, lag_events: 0, events_per_day: 96, rate_window_ms: 30 * minute });
  });

  test("sorts by every column and pages through the sorted rows", async () => {
    const h = await hub();
    for (let n = 1; n <= 40; n++) {
      h.clock.now += 1000;
      h.vv(made_up(n), n % 9 === 0 ? "" : `truck-${String((n * 37) % 100).padStart(2, "0")}`, (n * 13) % 17 + 1);
    }
    const fleet = new Fleet(fleet_source(h.log, h.rep), h.clock);
    const t = await admin_app({ log: h.log, fleet, clock: h.clock, token });
    const all = ((await (await t.call("/api/fleet?limit=1000")).json()) as FleetPage).rows;
    expect(all.length).toBe(41);
    for (const sort of ["id", "name", "last_seen", "events_per_day", "lag", "last_event", "conflicts"] as const) {
      for (const order of ["asc", "desc"] as const) {
        const expected = sort_fleet([...all], sort, order).map((r) => r.id);
        const paged: FleetRow[] = [];
        for (let offset = 0; offset < 41; offset += 7) {
          const res = await t.call(`/api/fleet?sort=${sort}&order=${order}&offset=${offset}&limit=7`);
          expect(res.status).toBe(200);
          const page = (await res.json()) as FleetPage;
          expect(page).toMatchObject({ total: 41, offset, limit: 7, sort, order });
          paged.push(...page.rows);
        }
        expect(paged.map((r) => r.id)).toEqual(expected);
      }
    }
    const by_lag = ((await (await t.call("/api/fleet?sort=lag&order=desc&offset=0&limit=5")).json()) as FleetPage).rows;
    expect(by_lag.map((r) => r.lag_events)).toEqual([17, 17, 16, 16, 15]);
    expect(by_lag[0].id < by_lag[1].id).toBe(true); // ties by id
    const last_seen = ((await (await t.call("/api/fleet?sort=last_seen&order=desc&limit=2")).json()) as FleetPage).rows;
    expect(last_seen.map((r) => r.id)).toEqual([made_up(40), made_up(39)]);
    // Past the end: an empty page, the total still said.
    expect(await (await t.call("/api/fleet?offset=41")).json()).toMatchObject({ total: 41, rows: [] });
  });

  test("bad parameters get 400 BAD_REQUEST naming what is accepted", async () => {
    const h = await hub();
    const t = await admin_app({ log: h.log, fleet: new Fleet(fleet_source(h.log, h.rep), h.clock), clock: h.clock, token });
    const bad = [
      ["sort=bogus", "sort must be one of id, name, last_seen, events_per_day, lag, last_event, conflicts"],
      ["sort=", "sort must be one of"],
      ["order=up", "order must be asc or desc"],
      ["offset=-1", "offset must be a non-negative integer"],
      ["offset=abc", "offset must be a non-negative integer"],
      ["limit=0", "limit must be an integer from 1 to 1000"],
      ["limit=1001", "limit must be an integer from 1 to 1000"],
      ["limit=1.5", "limit must be an integer from 1 to 1000"],
      ["limit=99999999999999999999", "limit must be an integer from 1 to 1000"],
    ];
    for (const [query, message] of bad) {
      const res = await t.call(`/api/fleet?${query}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("BAD_REQUEST");
      expect(body.error.message).toContain(message);
    }
    expect((await t.call("/api/fleet?limit=1000&offset=0&sort=conflicts&order=desc")).status).toBe(200);
  });

  test("needs the token and a host this replica answers to, like every /api route; the page itself is public", async () => {
    const h = await hub();
    const t = await admin_app({ log: h.log, fleet: new Fleet(fleet_source(h.log, h.rep), h.clock), clock: h.clock, token });
    const anonymous = await t.app.request("/api/fleet");
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe("UNAUTHORIZED");
    expect((await t.app.request("/api/fleet", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await t.call("/api/fleet")).status).toBe(200);
    const rebound = await t.call("/api/fleet", { headers: { host: "evil.example:8080" } });
    expect(rebound.status).toBe(403);
    expect(((await rebound.json()) as { error: { code: string } }).error.code).toBe("HOST_NOT_ALLOWED");
    const page = await t.app.request("/fleet");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(await page.text()).not.toContain(h.log.id);
  });

  test("an offline replica (no sync) lists the origins its log holds, itself first", async () => {
    const t = await admin_app({ token });
    const o = await origin();
    t.log.append(new TextEncoder().encode("own"));
    expect(t.log.accept_frames(o.write("x", "y")).appended).toBe(2);
    const page = (await (await t.call("/api/fleet?sort=id")).json()) as FleetPage;
    expect(page.total).toBe(2);
    expect(new Map(page.rows.map((r) => [r.id, r.held_seq]))).toEqual(new Map([[t.log.id, 1], [o.id, 2]]));
    expect(page.rows.find((r) => r.self)).toMatchObject({ name: "truck-0042", lag_events: 0, peer: false });
  });
});

describe("the fleet of a running replica (node.ts)", () => {
  test("a hub syncing through mosquitto lists the device it hears from, with what it holds of it", async () => {
    const broker = await Mosquitto.start();
    const nodes: ReplicaNode[] = [];
    try {
      const dir = temp_dir("fleet-e2e-");
      const start = async (name: string): Promise<ReplicaNode> => {
        const file = path.join(dir, `${name}.yaml`);
        fs.writeFileSync(file, `name: ${name}\ndata_dir: ${path.join(dir, name)}\nmqtt:\n  url: ${broker.url}\n  prefix: fleet-e2e\nadmin:\n  listen: 127.0.0.1:0\n`);
        const node = await ReplicaNode.start(load_config(file, {}), () => {});
        nodes.push(node);
        return node;
      };
      const hub_node = await start("hub");
      const device = await start("device-7");
      await device.log.write([new TextEncoder().encode("door open"), new TextEncoder().encode("door closed")]);
      const row = async (): Promise<FleetRow | undefined> =>
        ((await (await fetch(`${hub_node.admin.url}/api/fleet?sort=id`)).json()) as FleetPage).rows.find((r) => r.id === device.log.id);
      const deadline = Date.now() + 30_000;
      let seen: FleetRow | undefined;
      while (Date.now() < deadline) {
        seen = await row();
        if (seen?.held_seq === 2 && seen.lag_events === 0) break;
        await Bun.sleep(50);
      }
      expect(seen).toMatchObject({ name: "device-7", peer: true, online: true, held_seq: 2, claimed_seq: 2, lag_events: 0, conflicts: 0 });
      expect(seen?.last_seen_ms).toBeGreaterThan(Date.now() - 30_000);
      expect(seen?.last_event_time_ms).toBe(device.log.get(device.log.id, 2)?.time_ms ?? -1);
    } finally {
      for (const node of nodes) await node.stop();
      await broker.stop();
    }
  });
});
