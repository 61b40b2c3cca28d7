import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import type { Log } from "../../src/log/log.ts";
import type { AckSource, RetentionPolicy } from "../../src/log/retention.ts";
import type { RetentionJson } from "../../src/admin/retention_view.ts";
import type { PruneReport } from "../../src/admin/prune_report.ts";
import { SseReader, admin_app, metric, type TestApp } from "./support.ts";

/**
 * What an operator sees of retention (issue 13, "Visibility"): real logs
 * with 64 KiB segments and a budget of four, pruned for real, read through
 * /metrics, /api/status, /api/events and /api/prune.
 */

const segment = 64 * 1024;
const budget = 4 * segment;
const upstream = "00000000000000cc";
const t0 = 1_800_000_000_000;

/** A clock the test moves; the log stamps events with it and the admin layer measures ages and rates with it. */
class ManualClock {
  t = t0;
  now_ms(): number {
    return this.t;
  }
}

/** One upstream pulling every origin; it holds what `holds(origin)` says (everything durable, by default). */
class Upstream implements AckSource {
  holds: (origin: string) => number;
  constructor(
    readonly log: () => Log,
    readonly ids: readonly string[] = [upstream],
  ) {
    this.holds = (origin) => this.log().durable_held(origin);
  }
  upstreams_of(): readonly string[] {
    return this.ids;
  }
  held_by(_upstream: string, origin: string): number {
    return this.holds(origin);
  }
  upstreams(): readonly string[] {
    return this.ids;
  }
}

interface Retained {
  t: TestApp;
  clock: ManualClock;
  acks: Upstream;
}

async function retained_app(policy: RetentionPolicy, options: { token?: string } = {}): Promise<Retained> {
  const clock = new ManualClock();
  const t = await admin_app(
    { clock, ...(options.token === undefined ? {} : { token: options.token }) },
    { segment_size_bytes: segment, retention: { max_bytes: budget, policy, reserve_own_bytes: 0 }, clock },
  );
  const acks = new Upstream(() => t.log);
  t.log.set_acks(acks);
  return { t, clock, acks };
}

/** Appends batches of ten 1000-byte events through the API, a second apart, until `done` (or LOG_FULL); the budget's job runs after each. */
async function append_until(r: Retained, done: () => boolean, max_batches = 200): Promise<{ batches: number; full: boolean }> {
  const batch = encode(Array.from({ length: 10 }, (_, i) => new Uint8Array(1000).fill(i)));
  for (let n = 0; n < max_batches; n++) {
    if (done()) return { batches: n, full: false };
    r.clock.t += 1000;
    const res = await r.t.call("/api/events", { method: "POST", headers: { "content-type": "application/cbor" }, body: batch });
    if (res.status === 507) return { batches: n, full: true };
    expect(res.status).toBe(201);
    await r.t.log.maintain();
  }
  throw new Error("the log never got there");
}

async function scrape(r: Retained): Promise<string> {
  const res = await r.t.call("/metrics");
  expect(res.status).toBe(200);
  return res.text();
}

async function retention_of(r: Retained): Promise<RetentionJson> {
  const status = (await (await r.t.call("/api/status")).json()) as { retention: RetentionJson };
  return status.retention;
}

describe("retention in /metrics and /api/status", () => {
  test("after a real prune under drop-acked: budget, used, pruned (acked), oldest age, fill rate and time until full", async () => {
    const r = await retained_app("drop-acked");
    const { log } = r.t;
    await append_until(r, () => log.retention_status().pruned.segments >= 2);
    await log.maintain();
    r.clock.t += 5000;
    const s = log.retention_status();
    expect(s.first_pos).toBeGreaterThan(0);
    const oldest = log.read(log.first_pos, 1)[0];

    const text = await scrape(r);
    expect(metric(text, "interlog_retention_budget_bytes")).toBe(budget);
    expect(metric(text, "interlog_retention_used_bytes")).toBe(log.used_bytes);
    expect(log.used_bytes).toBeLessThanOrEqual(budget);
    expect(metric(text, 'interlog_pruned_bytes_total{acked="true"}')).toBe(s.pruned.acked_bytes);
    expect(s.pruned.acked_bytes).toBeGreaterThan(2 * 60_000);
    expect(metric(text, 'interlog_pruned_bytes_total{acked="false"}')).toBe(0);
    // Every event before the first held position was this replica's own, and the upstream held them all.
    expect(metric(text, 'interlog_pruned_events_total{acked="true"}')).toBe(log.first_pos);
    expect(metric(text, 'interlog_pruned_events_total{acked="false"}')).toBe(0);
    expect(metric(text, "interlog_pruned_segments_total")).toBe(s.pruned.segments);
    expect(metric(text, "interlog_oldest_event_age_seconds")).toBe((r.clock.t - oldest.time_ms) / 1000);
    expect(metric(text, `interlog_unacked_bytes{upstream="${upstream}"}`)).toBe(0);
    expect(metric(text, "interlog_retention_upstreams")).toBe(1);
    expect(metric(text, "interlog_retention_blocked")).toBe(0);
    // The rate: record bytes written (held + pruned) since the admin app started, over the clock's time since.
    const written = log.bytes + s.pruned.acked_bytes;
    const rate = (written * 1000) / (r.clock.t - t0);
    expect(metric(text, "interlog_retention_fill_rate_bytes_per_second")).toBeCloseTo(rate, 6);
    expect(metric(text, "interlog_retention_full_in_seconds")).toBeCloseTo((budget - log.bytes) / rate, 6);
    expect(text).toContain("# HELP interlog_retention_full_in_seconds Seconds until the records held fill the budget");

    const ret = await retention_of(r);
    expect(ret).toMatchObject({
      configured: true,
      policy: "drop-acked",
      max_bytes: budget,
      used_bytes: log.used_bytes,
      first_pos: log.first_pos,
      pruned: s.pruned,
      oldest_held_time_ms: oldest.time_ms,
      oldest_event_age_ms: r.clock.t - oldest.time_ms,
      unacked_bytes_by_upstream: { [upstream]: 0 },
      upstreams_total: 1,
      blocked: null,
      warning: null,
    });
    expect(ret.used_ratio).toBeCloseTo(log.used_bytes / budget, 9);
    expect(ret.fill_rate_bytes_per_s).toBeCloseTo(rate, 6);
    expect(ret.full_in_s).toBeCloseTo((budget - log.bytes) / rate, 6);
    expect(ret.rate_window_ms).toBe(r.clock.t - t0);

    // Nothing written for a while: the rate falls to 0 over the window and "full in" goes away (not filling).
    r.clock.t += 11 * 60 * 1000;
    await scrape(r);
    r.clock.t += 11 * 60 * 1000;
    const idle = await scrape(r);
    expect(metric(idle, "interlog_retention_fill_rate_bytes_per_second")).toBe(0);
    expect(idle.split("\n")).toContain("interlog_retention_full_in_seconds +Inf");
    expect((await retention_of(r)).full_in_s).toBeNull();

    // The clock is set back an hour: the rate starts over from that reading instead of going negative.
    r.clock.t -= 60 * 60 * 1000;
    expect((await retention_of(r)).fill_rate_bytes_per_s).toBeNull();
    await log.write(new Uint8Array(5000));
    r.clock.t += 10_000;
    const restarted = await retention_of(r);
    expect(restarted.rate_window_ms).toBe(10_000);
    expect(restarted.fill_rate_bytes_per_s).toBeGreaterThan(500);
  });

  test("drop-oldest counts what went un-acknowledged", async () => {
    const r = await retained_app("drop-oldest");
    r.acks.holds = () => 0;
    const { log } = r.t;
    await append_until(r, () => log.retention_status().pruned.segments >= 1);
    await log.maintain();
    const s = log.retention_status();
    const text = await scrape(r);
    expect(s.pruned.unacked_events).toBe(log.first_pos);
    expect(metric(text, 'interlog_pruned_events_total{acked="false"}')).toBe(log.first_pos);
    expect(metric(text, 'interlog_pruned_bytes_total{acked="false"}')).toBe(s.pruned.unacked_bytes);
    expect(metric(text, 'interlog_pruned_events_total{acked="true"}')).toBe(0);
    // drop-oldest is never blocked by an upstream.
    expect(metric(text, "interlog_retention_blocked")).toBe(0);
    expect(metric(text, `interlog_unacked_bytes{upstream="${upstream}"}`)).toBe(log.bytes);
  });

  test("un-acknowledged data blocks pruning: blocked names the upstream, status warns, appends get 507, and it clears once the upstream catches up", async () => {
    const r = await retained_app("drop-acked");
    r.acks.holds = () => 0;
    const { log } = r.t;
    const { full } = await append_until(r, () => false);
    expect(full).toBe(true);
    await log.maintain();

    const ret = await retention_of(r);
    expect(ret.blocked).toContain(`upstream ${upstream} holds origin ${log.id} up to seq 0`);
    expect(ret.warning).toContain("Pruning is blocked");
    expect(ret.warning).toContain(upstream);
    expect(ret.warning).toContain("LOG_FULL");
    expect(ret.unacked_bytes_by_upstream).toEqual({ [upstream]: log.bytes });
    expect(ret.pruned.segments).toBe(0);
    let text = await scrape(r);
    expect(metric(text, "interlog_retention_blocked")).toBe(1);
    expect(metric(text, `interlog_unacked_bytes{upstream="${upstream}"}`)).toBe(log.bytes);

    // The upstream comes back and holds everything: the budget's job prunes, the warning goes, appends resume.
    r.acks.holds = (origin) => log.durable_held(origin);
    await log.maintain();
    const after = await retention_of(r);
    expect(after.blocked).toBeNull();
    expect(after.warning).toBeNull();
    expect(after.pruned.segments).toBeGreaterThan(0);
    text = await scrape(r);
    expect(metric(text, "interlog_retention_blocked")).toBe(0);
    const res = await r.t.call("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(10) });
    expect(res.status).toBe(201);
  });

  test("un-acknowledged bytes are listed for at most 50 upstreams, those holding back the most first", async () => {
    const r = await retained_app("drop-acked");
    const ids = Array.from({ length: 60 }, (_, i) => (0xd000 + i).toString(16).padStart(16, "0"));
    const acks = new Upstream(() => r.t.log, ids);
    acks.holds = () => 0;
    r.t.log.set_acks(acks);
    await append_until(r, () => r.t.log.count >= 20);
    const text = await scrape(r);
    expect(text.split("\n").filter((l) => l.startsWith("interlog_unacked_bytes{")).length).toBe(50);
    expect(metric(text, "interlog_retention_upstreams")).toBe(60);
    const ret = await retention_of(r);
    expect(Object.keys(ret.unacked_bytes_by_upstream).length).toBe(50);
    expect(ret.upstreams_total).toBe(60);
  });
});

describe("reads below the first held position", () => {
  test("GET /api/events?from=N starts at the first held position and says pruned_before; an unpruned log has no such field", async () => {
    const r = await retained_app("drop-acked");
    const { log } = r.t;
    let page = (await (await r.t.call("/api/events?from=0&limit=2")).json()) as Record<string, unknown>;
    expect(page).toEqual({ events: [], next: 0 });
    await append_until(r, () => log.first_pos > 0);
    const first = log.first_pos;

    page = (await (await r.t.call("/api/events?from=0&limit=5")).json()) as { events: { pos: number }[]; next: number; pruned_before: number };
    const body = page as { events: { pos: number; id: string }[]; next: number; pruned_before: number };
    expect(body.pruned_before).toBe(first);
    expect(body.events.map((e) => e.pos)).toEqual([first, first + 1, first + 2, first + 3, first + 4]);
    expect(body.events[0].id).toBe(`${log.id}:${first + 1}`);
    expect(body.next).toBe(first + 5);
    // Present whenever anything was pruned, even for a position still held.
    const later = (await (await r.t.call(`/api/events?from=${first + 5}&limit=1`)).json()) as { events: { pos: number }[]; next: number; pruned_before: number };
    expect([later.events[0].pos, later.next, later.pruned_before]).toEqual([first + 5, first + 6, first]);

    // The event stream too starts at the first held position.
    const res = await r.t.call("/api/events/stream?from=0");
    const sse = new SseReader(res);
    const message = await sse.next();
    expect([message.id, (JSON.parse(message.data) as { pos: number }).pos]).toEqual([String(first), first]);
    await sse.cancel();
  });

  test("GET /api/events/ORIGIN:SEQ: 200 for a held event, 410 EVENT_PRUNED for a pruned one, 404 for one never held, 400 for a bad id", async () => {
    const r = await retained_app("drop-acked");
    const { log } = r.t;
    await append_until(r, () => log.first_pos > 0);
    const held = log.read(log.first_pos, 1)[0];

    const ok = await r.t.call(`/api/events/${held.id}`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ pos: held.pos, id: held.id, origin: log.id, seq: held.seq, time: held.time_ms });

    const gone = await r.t.call(`/api/events/${log.id}:1`);
    expect(gone.status).toBe(410);
    const body = (await gone.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("EVENT_PRUNED");
    expect(body.error.message).toContain(`event ${log.id}:1 was pruned by retention`);
    expect(body.error.message).toContain(`up to seq ${log.pruned_through(log.id)}`);

    const never = await r.t.call(`/api/events/${log.id}:${log.held(log.id) + 1}`);
    expect(never.status).toBe(404);
    expect(((await never.json()) as { error: { code: string; message: string } }).error).toEqual({
      code: "NOT_FOUND",
      message: `this replica holds no event ${log.id}:${log.held(log.id) + 1}: it holds origin ${log.id} up to seq ${log.held(log.id)}`,
    });
    expect((await r.t.call("/api/events/00000000000000ab:3")).status).toBe(404);
    const bad = await r.t.call("/api/events/not-an-id");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("BAD_REQUEST");
  });
});

describe("POST /api/prune", () => {
  const post = (r: Retained, body: unknown, type = "application/json") =>
    r.t.call("/api/prune", { method: "POST", headers: { "content-type": type }, body: typeof body === "string" ? body : JSON.stringify(body) });

  test("a dry run lists the acknowledged segments without touching them; a real one prunes them", async () => {
    const r = await retained_app("drop-acked");
    const { log } = r.t;
    await append_until(r, () => log.retention_status().pruned.segments >= 1);
    await log.maintain();
    const first = log.first_pos;

    const dry = await post(r, { dry_run: true });
    expect(dry.status).toBe(200);
    const plan = (await dry.json()) as PruneReport;
    expect(plan.dry_run).toBe(true);
    expect(plan.policy).toBe("drop-acked");
    expect(plan.blocked).toBeNull();
    expect(plan.segments.length).toBeGreaterThan(0);
    expect(plan.segments[0]).toMatchObject({ first_pos: first, acked: true });
    expect(plan.segments[0].file).toMatch(/^\d+\.seg$/);
    expect(plan.total.events).toBe(plan.segments.reduce((n, s) => n + s.events, 0));
    expect(plan.total.unacked_events).toBe(0);
    expect(plan.first_pos).toBe(first);
    expect(log.first_pos).toBe(first);

    const real = (await (await post(r, { dry_run: false, policy: "drop-acked" })).json()) as PruneReport;
    expect(real.dry_run).toBe(false);
    expect(real.segments).toEqual(plan.segments);
    const end = plan.segments[plan.segments.length - 1].end_pos;
    expect([real.first_pos, log.first_pos]).toEqual([end, end]);
    const text = await scrape(r);
    expect(metric(text, 'interlog_pruned_events_total{acked="true"}')).toBe(end);

    // Nothing more can go: it says why.
    const again = (await (await post(r, "")).json()) as PruneReport;
    expect(again.segments).toEqual([]);
    expect(again.note).toBe("nothing was pruned: only the segment being written (or segments not yet durable) is held");
  });

  test("blocked names the upstream; bad bodies are 400; drop-oldest without a budget is 409; the token guards it", async () => {
    const r = await retained_app("drop-acked", { token: "prune-token" });
    r.acks.holds = () => 0;
    const { log } = r.t;
    await append_until(r, () => log.segment_count >= 3);
    const blocked = (await (await post(r, { dry_run: true })).json()) as PruneReport;
    expect(blocked.segments).toEqual([]);
    expect(blocked.blocked).toContain(`upstream ${upstream} holds origin ${log.id} up to seq 0`);
    expect(blocked.note).toBe(`nothing would be pruned: ${blocked.blocked}`);

    for (const [body, message] of [
      [{ dryrun: true }, 'unknown field "dryrun"'],
      [{ dry_run: "yes" }, "dry_run must be true or false"],
      [{ policy: "reject" }, 'policy must be drop-acked or drop-oldest, not "reject"'],
      ["[1]", "the body must be a JSON object"],
      ["{", "the body is not JSON"],
    ] as const) {
      const res = await post(r, body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toStartWith(message);
    }
    expect((await post(r, { dry_run: true }, "text/plain")).status).toBe(415);
    const unauthorized = await r.t.app.request("/api/prune", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(unauthorized.status).toBe(401);
    expect(log.first_pos).toBe(0);

    const plain = await admin_app();
    const res = await plain.call("/api/prune", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ policy: "drop-oldest" }) });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("RETENTION_NOT_CONFIGURED");
  });
});
