import { heapStats } from "bun:jsc";
import { describe, expect, test } from "bun:test";
import {
  Fleet,
  type FleetPeer,
  type FleetRow,
  type FleetSource,
  fleet_array_bytes_per_origin,
  fleet_bytes_per_origin,
  fleet_rate_min_span_ms,
  fleet_sample_spacing_ms,
  fleet_samples_max,
  fleet_snapshot_max_age_ms,
  sort_fleet,
} from "../../src/sync/fleet.ts";

const hour = 60 * 60 * 1000;
const day = 24 * hour;
const hub = "00000000000000ff";
const truck = (n: number): string => n.toString(16).padStart(16, "0");

/** A hub's state as the fleet reads it, set by hand: its vv, the peers sync knows, conflicts, event times. */
class World implements FleetSource {
  readonly id = hub;
  readonly name = "hub";
  held = new Map<string, number>();
  peer_list: FleetPeer[] = [];
  conflict_list: { origin: string; events: number }[] = [];
  /** origin -> time_ms of its event seq is 1000 * seq, unless pruned. */
  pruned = new Set<string>();
  lookups = 0;
  now = 1_800_000_000_000;
  readonly clock = { now_ms: () => this.now };

  vv(): Record<string, number> {
    return Object.fromEntries(this.held);
  }
  event_time_ms(origin: string, seq: number): number | null {
    this.lookups++;
    if (this.pruned.has(origin) || seq > (this.held.get(origin) ?? 0)) return null;
    return 1000 * seq;
  }
  peers(): Iterable<FleetPeer> {
    return this.peer_list;
  }
  conflicts(): Iterable<{ origin: string; events: number }> {
    return this.conflict_list;
  }
  peer(id: string, name: string, own_claim: number, last_seen_ms = this.now): FleetPeer {
    const p = { id, name, online: true, last_seen_ms, claims: new Map([[id, own_claim]]), acked: new Map<string, number>() };
    this.peer_list.push(p);
    return p;
  }
}

function by_id(rows: FleetRow[]): Map<string, FleetRow> {
  return new Map(rows.map((r) => [r.id, r]));
}

describe("the fleet model", () => {
  test("a hub lists its peers and every origin it holds, itself included, with last seen, lag, last event time and conflicts", () => {
    const w = new World();
    w.held.set(hub, 7);
    w.held.set(truck(1), 40);
    w.held.set(truck(3), 5); // only relayed: never heard from directly
    w.peer(truck(1), "truck-1", 55, w.now - 3000);
    w.peer(truck(2), "truck-2", 0); // heard from, claims nothing of its own yet
    w.conflict_list = [{ origin: truck(3), events: 2 }];
    const fleet = new Fleet(w, w.clock);
    const rows = by_id(fleet.rows());
    expect([...rows.keys()].sort()).toEqual([truck(1), truck(2), truck(3), hub].sort());
    expect(rows.get(truck(1))).toEqual({
      id: truck(1),
      name: "truck-1",
      self: false,
      peer: true,
      online: true,
      last_seen_ms: w.now - 3000,
      held_seq: 40,
      claimed_seq: 55,
      lag_events: 15,
      events_per_day: null,
      rate_window_ms: 0,
      last_event_time_ms: 40_000,
      conflicts: 0,
    });
    expect(rows.get(truck(2))).toMatchObject({ peer: true, held_seq: 0, claimed_seq: null, lag_events: null, last_event_time_ms: null });
    expect(rows.get(truck(3))).toMatchObject({ name: "", peer: false, last_seen_ms: null, lag_events: null, held_seq: 5, conflicts: 2 });
    expect(rows.get(hub)).toMatchObject({ name: "hub", self: true, lag_events: 0, last_seen_ms: null, last_event_time_ms: 7000 });
  });

  test("lag falls back to the peer's acknowledged vv when sync forgot its claim, and never goes below 0", () => {
    const w = new World();
    w.held.set(truck(1), 10);
    w.held.set(truck(2), 10);
    const p = w.peer(truck(1), "a", 0);
    (p.claims as Map<string, number>).clear();
    (p.acked as Map<string, number>).set(truck(1), 12);
    w.peer(truck(2), "b", 8); // it claims less than the hub holds (its vv is older than what it pushed)
    const rows = by_id(new Fleet(w, w.clock).rows());
    expect(rows.get(truck(1))?.lag_events).toBe(2);
    expect(rows.get(truck(2))?.lag_events).toBe(0);
  });

  test("events per day: seq growth over a sliding window of up to 24 h, from hourly readings", () => {
    const w = new World();
    w.held.set(truck(1), 100);
    const fleet = new Fleet(w, w.clock); // first reading
    const rate = () => by_id(fleet.rows()).get(truck(1));
    expect(rate()?.events_per_day).toBeNull();
    // Too soon for a rate.
    w.now += fleet_rate_min_span_ms - 1;
    w.held.set(truck(1), 101);
    expect(rate()?.events_per_day).toBeNull();
    // 10 minutes in, 240 more events: 34 560 a day.
    w.now += 10 * 60 * 1000 - (fleet_rate_min_span_ms - 1);
    w.held.set(truck(1), 340);
    expect(rate()?.events_per_day).toBeCloseTo(240 * 144, 6);
    expect(rate()?.rate_window_ms).toBe(10 * 60 * 1000);
    // Two days at 1000 events an hour, sampled by the host every few minutes: the window is then 23-24 h of it.
    for (let step = 0; step < 2 * 24 * 12; step++) {
      w.now += 5 * 60 * 1000;
      w.held.set(truck(1), (w.held.get(truck(1)) ?? 0) + 1000 / 12);
      fleet.sample();
    }
    const r = rate();
    expect(r?.rate_window_ms).toBeGreaterThanOrEqual(day - fleet_sample_spacing_ms);
    expect(r?.rate_window_ms).toBeLessThanOrEqual(day);
    expect(r?.events_per_day).toBeCloseTo(24_000, 6);
    // It goes quiet: the rate falls as the busy hours leave the window, and is 0 a day later.
    for (let h = 0; h < 12; h++) {
      w.now += hour;
      fleet.sample();
    }
    expect(rate()?.events_per_day).toBeGreaterThan(9_000);
    expect(rate()?.events_per_day).toBeLessThan(13_000);
    for (let h = 0; h < 13; h++) {
      w.now += hour;
      fleet.sample();
    }
    expect(rate()?.events_per_day).toBe(0);
  });

  test("an origin first seen later has a rate from its first sighting; a reading is taken at most once per spacing", () => {
    const w = new World();
    const fleet = new Fleet(w, w.clock);
    expect(fleet.sample()).toBe(false);
    w.now += 20 * 60 * 1000;
    w.held.set(truck(9), 50);
    w.peer(truck(9), "late", 50);
    expect(by_id(fleet.rows()).get(truck(9))?.events_per_day).toBeNull();
    w.now += 30 * 60 * 1000;
    w.held.set(truck(9), 80);
    expect(by_id(fleet.rows()).get(truck(9))?.events_per_day).toBeCloseTo(30 * 48, 6);
    expect(fleet.sample()).toBe(false);
    w.now += 10 * 60 * 1000;
    expect(fleet.sample()).toBe(true);
    // The clock went back (NTP step): a reading is taken, and none in the future is used.
    w.now -= 2 * hour;
    expect(fleet.sample()).toBe(true);
    expect(by_id(fleet.rows()).get(truck(9))?.events_per_day ?? null).toBeNull();
  });

  test("the newest event's time is looked up once per new seq, and is null once pruned", () => {
    const w = new World();
    w.held.set(truck(1), 3);
    const fleet = new Fleet(w, w.clock);
    for (let i = 0; i < 5; i++) expect(by_id(fleet.rows()).get(truck(1))?.last_event_time_ms).toBe(3000);
    expect(w.lookups).toBe(1);
    w.held.set(truck(1), 4);
    w.pruned.add(truck(1));
    expect(by_id(fleet.rows()).get(truck(1))?.last_event_time_ms).toBeNull();
    expect(w.lookups).toBe(2);
  });

  test("at most origins_max origins are tracked; the others still show, without a rate", () => {
    const w = new World();
    for (let i = 1; i <= 50; i++) w.held.set(truck(i), i);
    const fleet = new Fleet(w, w.clock, 20);
    w.now += hour;
    const rows = fleet.rows();
    expect(rows.length).toBe(51);
    expect(fleet.tracked).toBe(20);
    expect(fleet.untracked).toBe(31);
    expect(rows.filter((r) => r.events_per_day !== null).length).toBe(20);
    expect(rows.every((r) => r.held_seq === 0 || r.last_event_time_ms === r.held_seq * 1000)).toBe(true);
    expect(fleet.array_bytes).toBeLessThanOrEqual(20 * fleet_array_bytes_per_origin + fleet_samples_max * 8);
  });

  test("sorting: each column both ways, rows without a value last, ties by id; paging slices the sorted rows", () => {
    const w = new World();
    for (let i = 1; i <= 30; i++) {
      w.held.set(truck(i), i % 7);
      if (i % 3 !== 0) w.peer(truck(i), i % 5 === 0 ? "" : `t-${String(100 - i).padStart(3, "0")}`, (i % 7) + (i % 4), w.now - i * 1000);
    }
    w.conflict_list = [{ origin: truck(4), events: 9 }, { origin: truck(8), events: 1 }];
    const fleet = new Fleet(w, w.clock);
    const all = fleet.rows();
    expect(all.length).toBe(31);
    for (const key of ["id", "name", "last_seen", "events_per_day", "lag", "last_event", "conflicts"] as const) {
      for (const order of ["asc", "desc"] as const) {
        const sorted = sort_fleet([...all], key, order);
        const field = { id: "id", name: "name", last_seen: "last_seen_ms", events_per_day: "events_per_day", lag: "lag_events", last_event: "last_event_time_ms", conflicts: "conflicts" }[key] as keyof FleetRow;
        const values = sorted.map((r) => (key === "name" && r.name === "" ? null : r[field]) as string | number | null);
        const first_null = values.indexOf(null);
        if (first_null >= 0) expect(values.slice(first_null).every((v) => v === null)).toBe(true);
        for (let i = 1; i < sorted.length; i++) {
          const a = values[i - 1];
          const b = values[i];
          if (a === null || b === null) continue;
          if (a === b) expect(sorted[i - 1].id < sorted[i].id).toBe(true);
          else expect(order === "asc" ? a < b : a > b).toBe(true);
        }
      }
    }
    const lag_desc = sort_fleet([...all], "lag", "desc");
    const page = fleet.page({ sort: "lag", order: "desc", offset: 10, limit: 7 });
    expect(page.total).toBe(31);
    expect(page.rows.map((r) => r.id)).toEqual(lag_desc.slice(10, 17).map((r) => r.id));
    expect(page.time_ms).toBe(w.now);
    expect(fleet.page({ sort: "id", order: "asc", offset: 30, limit: 100 }).rows.map((r) => r.id)).toEqual([hub]);
    expect(fleet.page({ sort: "id", order: "asc", offset: 31, limit: 100 }).rows).toEqual([]);
    expect(sort_fleet([...all], "conflicts", "desc")[0].id).toBe(truck(4));
  });

  test("a page of the same sort within fleet_snapshot_max_age_ms is cut from the same sorted rows; another sort or a later one is fresh", () => {
    const w = new World();
    w.peer(truck(1), "a", 5);
    const fleet = new Fleet(w, w.clock);
    const q = { sort: "lag", order: "desc", offset: 0, limit: 10 } as const;
    expect(fleet.page(q).total).toBe(2);
    w.peer(truck(2), "b", 9);
    w.now += fleet_snapshot_max_age_ms - 1;
    expect(fleet.page(q).total).toBe(2);
    expect(fleet.page({ ...q, order: "asc" }).total).toBe(3);
    w.now += fleet_snapshot_max_age_ms;
    expect(fleet.page(q).rows.map((r) => r.id)).toEqual([truck(2), truck(1), hub]);
  });

  test(`memory: about ${fleet_bytes_per_origin} B per tracked origin`, () => {
    const n = 100_000;
    const w = new World();
    // The ids exist anyway (the log's vv, the peer table): made before measuring.
    for (let i = 1; i <= n; i++) w.held.set(truck(i), i);
    const heap = () => {
      Bun.gc(true);
      Bun.gc(true);
      // heapSize already counts typed arrays' storage (extraMemorySize counts it again).
      return heapStats().heapSize;
    };
    const before = heap();
    const fleet = new Fleet(w, w.clock, n);
    w.now += hour;
    fleet.sample();
    const per_origin = (heap() - before) / n;
    console.log(`fleet: ${per_origin.toFixed(0)} B per tracked origin (${n} origins, arrays ${fleet.array_bytes} B)`);
    expect(fleet.tracked).toBe(n);
    expect(per_origin).toBeLessThanOrEqual(fleet_bytes_per_origin * 1.5);
  });
});
