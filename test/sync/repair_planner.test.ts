import { describe, expect, test } from "bun:test";
import { Log } from "../../src/log/log.ts";
import { new_counters } from "../../src/sync/counters.ts";
import { type AnswerMessage, type WantMessage, want_ranges_max } from "../../src/sync/messages.ts";
import { Peer } from "../../src/sync/peers.ts";
import { RepairPlanner } from "../../src/sync/repair_planner.ts";
import { type ReplicatorOptions, resolve_sync_options } from "../../src/sync/sync_options.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { frames_of_log, many_origins, mem_log, write_range } from "../support/forgery.ts";

/** Made-up ids, for peers and for origins that are only claimed, never stored. */
const id = (n: number): string => n.toString(16).padStart(16, "0");
/** Origins whose events get stored are real writers (signed events); x < y < z, as ids sort. */
const writers = new Map<string, Log>();
for (let i = 0; i < 3; i++) {
  const w = await mem_log({ clock: { now_ms: () => 1 } });
  writers.set(w.id, w);
}
const [origin_x, origin_y, origin_z] = [...writers.keys()].sort();

async function open_log(): Promise<Log> {
  return Log.open({ dir: "/data", io: new MemFileIO(), sync: "always", segment_size_bytes: 1024 * 1024, clock: { now_ms: () => 1 }, timers: new ManualTimers() });
}

/** A planner on a real log; `sent` is every repair request a peer would receive, in order. */
async function planner_for(options: Partial<ReplicatorOptions> = {}) {
  const log = await open_log();
  const settings = resolve_sync_options({ want_timeout_ms: 1000, retry_backoff_base_ms: 100, ...options, log });
  const counters = new_counters();
  const sent: { to: Peer; want: WantMessage }[] = [];
  const planner = new RepairPlanner(
    {
      log,
      counters,
      pulls: (origin) => origin !== log.id && (settings.pull_set === null || settings.pull_set.has(origin)),
      send_want: (_out, peer, want) => sent.push({ to: peer, want }),
      quota_open: () => true,
    },
    settings,
  );
  planner.on_connect(1_000_000);
  const peers: Peer[] = [];
  const peer = (n: number): Peer => {
    const p = new Peer(id(n));
    peers.push(p);
    return p;
  };
  /** plan() followed by the full invariant check. */
  const plan = (now_ms: number, all = true): { to: Peer; want: WantMessage }[] => {
    const before = sent.length;
    if (all) planner.mark_all();
    planner.plan([], now_ms);
    planner.assert_invariants(peers);
    return sent.slice(before);
  };
  const answer = (from: Peer, fields: Partial<AnswerMessage> = {}): AnswerMessage => {
    const want = from.want;
    if (want === null) throw new Error("no outstanding request");
    return { kind: "to", from: from.id, to: log.id, req: want.req, events: new Uint8Array(0), part: null, last: true, held: null, ...fields };
  };
  /** Stores origin's events up to seq (its writer's, signed one by one), as merging an answer would. */
  const store = async (origin: string, upto: number): Promise<void> => {
    const writer = writers.get(origin);
    if (writer === undefined) throw new Error(`no writer for ${origin}`);
    while (writer.held(origin) < upto) write_range(writer, `${origin}:${writer.held(origin) + 1}`);
    const held = log.held(origin);
    expect(log.accept_frames(frames_of_log(writer, origin, held, upto)).appended).toBe(upto - held);
    await log.durable();
  };
  return { log, planner, counters, sent, peer, peers, plan, answer, store };
}

describe("repair planning", () => {
  test("one request per peer and per origin even when many peers claim an origin", async () => {
    const t = await planner_for({ claimants_per_origin_max: 8 });
    const ps = [t.peer(5), t.peer(3), t.peer(4), t.peer(1), t.peer(2)];
    for (const p of ps) for (const origin of [origin_x, origin_y, origin_z]) t.planner.raise(p, origin, 10, 0);
    const first = t.plan(0);
    // Equal peers: the lowest id is asked for everything, once.
    expect(first.map((s) => s.to.id)).toEqual([id(1)]);
    expect(first[0].want.ranges.map((r) => [r.origin, r.after, r.upto])).toEqual([
      [origin_x, 0, 10],
      [origin_y, 0, 10],
      [origin_z, 0, 10],
    ]);
    // Asked origins are not asked again of anyone while the request is out.
    expect(t.plan(10)).toEqual([]);
    // A new origin goes to a peer without a request out.
    const origin_w = id(0x1004);
    for (const p of ps) t.planner.raise(p, origin_w, 3, 0);
    const second = t.plan(20, false);
    expect(second.map((s) => [s.to.id, s.want.ranges.map((r) => r.origin)])).toEqual([[id(2), [origin_w]]]);
    for (const origin of [origin_x, origin_y, origin_z]) expect(t.planner.requested(origin)?.id).toBe(id(1));
    expect(t.counters.wants_sent).toBe(2);
  });

  test("the peer with the most events is asked, and only for origins it holds beyond this replica", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const b = t.peer(2);
    await t.store(origin_x, 5);
    t.planner.raise(a, origin_x, 5, 0); // nothing new
    t.planner.raise(a, origin_y, 4, 0);
    t.planner.raise(b, origin_y, 9, 0);
    const sent = t.plan(0);
    expect(sent.map((s) => [s.to.id, s.want.ranges.map((r) => [r.origin, r.after, r.upto])])).toEqual([[id(2), [[origin_y, 0, 9]]]]);
  });

  test("origins this replica does not pull are never requested", async () => {
    const t = await planner_for({ pull: [origin_x] });
    const a = t.peer(1);
    t.planner.raise(a, origin_x, 2, 0);
    t.planner.raise(a, origin_y, 2, 0);
    const sent = t.plan(0);
    expect(sent.flatMap((s) => s.want.ranges.map((r) => r.origin))).toEqual([origin_x]);
  });

  test("a request carries at most want_ranges_max origins; the rest stay free and are asked next", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const many = await many_origins(want_ranges_max + 10);
    const origins = many.ids;
    for (const origin of origins) t.planner.raise(a, origin, 1, 0);
    const first = t.plan(0);
    expect(first.length).toBe(1);
    expect(first[0].want.ranges.length).toBe(want_ranges_max);
    const left = origins.filter((o) => t.planner.requested(o) === null);
    expect(left.length).toBe(10);
    for (const r of first[0].want.ranges) t.log.accept_frames(many.each[origins.indexOf(r.origin)]);
    await t.log.durable();
    t.planner.answer(a, t.answer(a), 100);
    const next = t.plan(100);
    expect(next.flatMap((s) => s.want.ranges.map((r) => r.origin)).sort()).toEqual(left.sort());
  });
});

describe("answers, timeouts and cancels", () => {
  test("an unproductive answer backs the peer off and the origin is asked of another peer", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const b = t.peer(2);
    t.planner.raise(a, origin_x, 10, 0);
    t.planner.raise(b, origin_x, 10, 0);
    expect(t.plan(0).map((s) => s.to.id)).toEqual([a.id]);
    t.planner.answer(a, t.answer(a), 50); // last, and nothing arrived
    t.planner.assert_invariants(t.peers);
    expect(t.counters.wants_unproductive).toBe(1);
    expect(a.failures).toBe(1);
    expect(a.backoff_until_ms).toBe(150);
    expect(t.planner.requested(origin_x)).toBeNull();
    expect(t.plan(60).map((s) => s.to.id)).toEqual([b.id]);
  });

  test("an answer that brings events clears the peer's failures", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    a.failures = 3;
    t.planner.raise(a, origin_x, 10, 0);
    t.plan(0);
    await t.store(origin_x, 4);
    t.planner.answer(a, t.answer(a), 50);
    expect(a.failures).toBe(0);
    expect(t.counters.wants_unproductive).toBe(0);
    // What is still missing is asked again at once.
    expect(t.plan(60).map((s) => [s.to.id, s.want.ranges[0].after])).toEqual([[a.id, 4]]);
  });

  test("answers to another request, or not the last message, leave the request out", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    t.planner.raise(a, origin_x, 10, 0);
    t.plan(0);
    const req = a.want?.req ?? -1;
    t.planner.answer(a, t.answer(a, { req: req + 1 }), 10);
    t.planner.answer(a, t.answer(a, { last: false }), 500);
    expect(a.want?.req).toBe(req);
    // An empty message does not move the deadline...
    expect(a.want?.deadline_ms).toBe(1000);
    // ...one that brought events of the ranges does.
    await t.store(origin_x, 3);
    t.planner.answer(a, t.answer(a, { last: false }), 600);
    expect(a.want?.deadline_ms).toBe(1600);
    expect(t.planner.requested(origin_x)).toBe(a);
  });

  test("a request ends at want_deadline_ms after it was sent, whatever its answer keeps sending; progress is not held against the peer", async () => {
    const t = await planner_for({ want_timeout_ms: 1000, want_deadline_ms: 5000 });
    const a = t.peer(1);
    const b = t.peer(2);
    t.planner.raise(a, origin_x, 100, 0);
    t.planner.raise(b, origin_x, 50, 0);
    t.plan(0);
    expect(t.planner.requested(origin_x)).toBe(a);
    let ended_at = 0;
    for (let now = 500, seq = 1; a.want !== null; now += 500, seq++) {
      await t.store(origin_x, seq); // a trickle: one event per message
      t.planner.answer(a, t.answer(a, { last: false }), now);
      expect(a.want.deadline_ms).toBeLessThanOrEqual(5000);
      if (now >= a.want.deadline_ms) {
        t.planner.time_out(a, now);
        ended_at = now;
      }
    }
    expect(ended_at).toBe(5000);
    expect(t.counters.wants_past_deadline).toBe(1);
    expect(a.failures).toBe(0);
    t.planner.assert_invariants(t.peers);
  });

  test("an answer's held lowers the peer's claim, and an origin it does not hold is asked of another peer", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const b = t.peer(2);
    t.planner.raise(a, origin_x, 10, 0);
    t.planner.raise(a, origin_y, 10, 0);
    t.planner.raise(b, origin_x, 8, 0);
    t.plan(0);
    t.planner.answer(a, t.answer(a, { held: new Map([[origin_x, 0], [origin_y, 6]]) }), 50);
    expect(a.claim(origin_x)).toBe(0);
    expect(a.claim(origin_y)).toBe(6);
    // a is backed off (nothing arrived); x goes to b, y has no other source.
    const sent = t.plan(60);
    expect(sent.map((s) => [s.to.id, s.want.ranges.map((r) => [r.origin, r.upto])])).toEqual([[b.id, [[origin_x, 8]]]]);
    // Once a's backoff is over, it is not asked for x again: it said it holds none.
    t.planner.cancel(b);
    b.penalize(60, 100_000, 100_000, 0);
    expect(t.plan(1000).map((s) => [s.to.id, s.want.ranges.map((r) => r.origin)])).toEqual([[a.id, [origin_y]]]);
  });

  test("a request past its deadline backs the peer off and the origin is asked of another peer", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const b = t.peer(2);
    for (const p of [a, b]) t.planner.raise(p, origin_x, 10, 0);
    t.plan(0);
    t.planner.time_out(a, 1000);
    expect(t.counters.wants_timed_out).toBe(1);
    expect(a.failures).toBe(1);
    expect(t.plan(1000).map((s) => s.to.id)).toEqual([b.id]);
  });

  test("cancel on disconnect frees the origin and is not held against the peer", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    t.planner.raise(a, origin_x, 10, 0);
    t.plan(0);
    expect(t.planner.requested(origin_x)).toBe(a);
    t.planner.cancel(a);
    t.planner.assert_invariants(t.peers);
    expect(a.want).toBeNull();
    expect(t.planner.requested(origin_x)).toBeNull();
    expect(a.failures).toBe(0);
    // The freed origin is looked at again without a full pass.
    expect(t.planner.pending).toBe(true);
    expect(t.plan(10, false).map((s) => s.to.id)).toEqual([a.id]);
    expect(t.counters.wants_sent).toBe(2);
  });

  test("request ids start from the first connection's clock and never repeat", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    t.planner.raise(a, origin_x, 10, 0);
    const reqs: number[] = [];
    for (let i = 0; i < 5; i++) {
      reqs.push(t.plan(i)[0].want.req);
      t.planner.on_connect(5_000_000); // a reconnect does not restart the ids
      t.planner.cancel(a);
    }
    expect(reqs).toEqual([1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004]);
  });

  test("the invariant check catches a request the planner does not know about", async () => {
    const t = await planner_for();
    const a = t.peer(1);
    const b = t.peer(2);
    t.planner.raise(a, origin_x, 10, 0);
    t.plan(0);
    b.want = { req: 1, ranges: [{ origin: origin_x, after: 0, upto: 10 }], sent_ms: 0, deadline_ms: 1000, held_sum: 0 };
    expect(() => t.planner.assert_invariants(t.peers)).toThrow("invariant violated");
    expect(() => t.planner.cancel(b)).toThrow("invariant violated");
  });
});
