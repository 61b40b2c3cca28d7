import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { node_file_io } from "../../src/log/file_io.ts";
import { Log, type LogOptions } from "../../src/log/log.ts";
import type { RetentionPolicy } from "../../src/log/retention.ts";
import { counting_io } from "../support/counting_io.ts";
import { ManualAcks, acks_from } from "../support/manual_acks.ts";
import { Origin } from "../support/origin.ts";
import { append_until, payload_for, segment_firsts } from "../support/retention_fill.ts";
import { for_seeds } from "../support/seeded.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * Retention on real files (issue 13, "Budget" and "Deletion"): what each
 * policy may delete and when it refuses, what readers see of a pruned log,
 * and that a log pruned and recycled many times reopens exactly.
 */

const segment = 64 * 1024;

function open(dir: string, policy: RetentionPolicy | null, budget_segments = 4, extra: Partial<LogOptions> = {}): Promise<Log> {
  return Log.open({
    dir,
    segment_size_bytes: segment,
    sync: "always",
    retention: policy === null ? null : { max_bytes: budget_segments * segment, policy, reserve_own_bytes: 0 },
    ...extra,
  });
}

const segments_of = (dir: string) => path.join(dir, "segments");

/** Appends one at a time until LOG_FULL (bounded), running the budget's job between batches like a server; returns the error. */
async function append_until_full(log: Log, written: Map<number, Uint8Array>, max_appends = 100_000): Promise<unknown> {
  for (let i = 0; i < max_appends; i++) {
    const seq = log.held(log.id) + 1;
    const payload = payload_for(seq, 200);
    try {
      log.append(payload);
    } catch (err) {
      return err;
    }
    written.set(seq, payload);
    if (i % 16 === 15) {
      await log.durable();
      await log.maintain();
    }
  }
  throw new Error("the log never filled");
}

/** Every held own event from the first position held, in order, with the payload written for its seq. */
function expect_own_events(log: Log, written: Map<number, Uint8Array>): void {
  const events = log.read(0, 1_000_000);
  const first_seq = log.pruned_through(log.id) + 1;
  expect(events.length).toBe(log.held(log.id) - first_seq + 1);
  expect(events[0]?.pos ?? log.first_pos).toBe(log.first_pos);
  events.forEach((e, i) => {
    expect(e.seq).toBe(first_seq + i);
    expect(e.pos).toBe(log.first_pos + i);
    expect(e.payload).toEqual(written.get(e.seq) as Uint8Array);
  });
}

describe("drop-acked", () => {
  test("prunes only segments every upstream holds, oldest first, and says which upstream stops it", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-acked", 32);
    const acks = new ManualAcks(["hub"]);
    log.set_acks(acks);
    const written = new Map<number, Uint8Array>();
    await append_until(log, () => log.segment_count >= 6, written);
    const firsts = segment_firsts(segments_of(dir));
    expect(firsts.length).toBe(6);
    // Own events only: segment i holds seqs firsts[i] + 1 .. firsts[i + 1].
    const me = log.id;
    const vv_before = log.vv();

    let result = await log.prune();
    expect(result.segments).toEqual([]);
    expect(result.blocked).toBe(`upstream hub holds origin ${me} up to seq 0 of ${firsts[1]}; bring it online (or change retention.upstreams or retention.policy)`);
    expect(log.first_pos).toBe(0);

    // One event short of the oldest segment: nothing goes.
    acks.ack("hub", me, firsts[1] - 1);
    result = await log.prune();
    expect(result.segments).toEqual([]);
    expect(result.blocked).toContain(`up to seq ${firsts[1] - 1} of ${firsts[1]}`);

    acks.ack("hub", me, firsts[1]);
    const dry = await log.prune({ dry_run: true });
    expect(dry.dry_run).toBe(true);
    expect(dry.segments.map((s) => [s.first_pos, s.end_pos, s.events, s.acked])).toEqual([[0, firsts[1], firsts[1], true]]);
    expect(log.first_pos).toBe(0);
    expect(segment_firsts(segments_of(dir))).toEqual(firsts);

    result = await log.prune();
    expect(result.segments.map((s) => s.first_pos)).toEqual([0]);
    expect(result.segments[0].file).toBe(path.join(segments_of(dir), "00000000000000000000.seg"));
    expect(log.first_pos).toBe(firsts[1]);
    expect(segment_firsts(segments_of(dir))).toEqual(firsts.slice(1));

    // Acknowledged into the middle of segment 3: segments 1 and 2 go, 3 stays.
    acks.ack("hub", me, firsts[3] + 5);
    result = await log.prune();
    expect(result.segments.map((s) => s.first_pos)).toEqual([firsts[1], firsts[2]]);
    expect(result.segments.every((s) => s.acked)).toBe(true);
    expect(result.blocked).toContain(`up to seq ${firsts[3] + 5} of ${firsts[4]}`);
    expect(log.first_pos).toBe(firsts[3]);
    expect(log.pruned_through(me)).toBe(firsts[3]);

    // Everything acknowledged: every sealed segment goes, never the active one.
    acks.ack("hub", me, log.held(me));
    result = await log.prune();
    expect(result.segments.map((s) => s.first_pos)).toEqual([firsts[3], firsts[4]]);
    expect(result.blocked).toBeNull();
    expect(log.first_pos).toBe(firsts[5]);
    expect(log.segment_count).toBe(1);
    expect(segment_firsts(segments_of(dir))).toEqual([firsts[5]]);
    expect((await log.prune()).segments).toEqual([]);
    // No summary of a pruned segment is left behind.
    expect(fs.readdirSync(segments_of(dir)).filter((n) => n.endsWith(".sum"))).toEqual([]);

    expect(log.vv()).toEqual(vv_before);
    expect(log.retention_status().pruned).toMatchObject({ segments: 5, events: firsts[5], acked_events: firsts[5], unacked_events: 0, unacked_bytes: 0 });
    expect_own_events(log, written);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  test("a segment goes only when every upstream of every origin in it holds its events", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-acked", 32);
    const peer = await Origin.open();
    const other = peer.id;
    const me = log.id;
    const acks = new ManualAcks(["hub", "backup"]).pull(other, ["hub"]);
    log.set_acks(acks);
    // Own and the peer's events interleaved, until two segments are sealed.
    while (log.segment_count < 3) {
      for (let i = 0; i < 8; i++) log.append(payload_for(log.held(me) + 1, 300));
      expect(log.accept_frames(peer.write(payload_for(log.held(other) + 1, 300, 1))).appended).toBe(1);
      await log.durable();
    }
    await peer.close();
    // What segment 0 holds, read before anything goes.
    const firsts = segment_firsts(segments_of(dir));
    const seg0 = log.read(0, firsts[1]);
    const last_in_0 = (origin: string) => Math.max(...seg0.filter((e) => e.origin === origin).map((e) => e.seq));
    const own_last = last_in_0(me);
    const other_last = last_in_0(other);

    acks.ack("hub", me, own_last).ack("hub", other, other_last);
    let result = await log.prune();
    expect(result.segments).toEqual([]);
    expect(result.blocked).toContain(`upstream backup holds origin ${me} up to seq 0 of ${own_last}`);
    expect(log.segment_blocker(0)).toEqual({ origin: me, upstream: "backup", held_seq: 0, needed_seq: own_last });

    // backup holds the own events; the peer's events need only hub, which lacks the last one now.
    acks.ack("backup", me, own_last);
    const partial = new ManualAcks(["hub", "backup"]).pull(other, ["hub"]).ack("hub", me, own_last).ack("backup", me, own_last).ack("hub", other, other_last - 1);
    log.set_acks(partial);
    result = await log.prune();
    expect(result.segments).toEqual([]);
    expect(result.blocked).toContain(`upstream hub holds origin ${other} up to seq ${other_last - 1} of ${other_last}`);

    log.set_acks(acks);
    result = await log.prune();
    expect(result.segments.map((s) => s.first_pos)).toEqual([0]);
    expect(log.pruned_through(me)).toBe(own_last);
    expect(log.pruned_through(other)).toBe(other_last);

    // An origin nobody pulls is never acknowledged.
    log.set_acks(new ManualAcks(["hub"]).pull(other, []).ack("hub", me, log.held(me)));
    result = await log.prune();
    expect(result.segments).toEqual([]);
    expect(result.blocked).toContain(`no upstream pulls origin ${other}`);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  test("at the budget with nothing acknowledged, appends fail with LOG_FULL naming the upstream, delete nothing, and resume once it acknowledges", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-acked", 4);
    const acks = new ManualAcks(["hub-7"]);
    log.set_acks(acks);
    const written = new Map<number, Uint8Array>();
    const err = await append_until_full(log, written);
    expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
    const me = log.id;
    const firsts = segment_firsts(segments_of(dir));
    expect((err as Error).message).toContain(`upstream hub-7 holds origin ${me} up to seq 0 of ${firsts[1]}`);
    expect(log.retention_status().blocked).toContain("upstream hub-7");
    // Nothing was deleted, nothing half-written, and the files keep to the budget.
    const count = log.count;
    expect(() => log.append(payload_for(count + 1, 200))).toThrow(/hub-7/);
    expect(log.count).toBe(count);
    expect(log.first_pos).toBe(0);
    expect(log.used_bytes).toBeLessThanOrEqual(4 * segment);
    expect(firsts.length * segment).toBeLessThanOrEqual(4 * segment);
    expect_own_events(log, written);

    // Part of the oldest segment acknowledged: still nothing may go.
    acks.ack("hub-7", me, firsts[1] - 1);
    await log.maintain();
    expect(() => log.append(payload_for(count + 1, 200))).toThrow(/up to seq \d+ of/);
    expect(log.first_pos).toBe(0);

    // The oldest segment acknowledged: it goes, and appends resume.
    acks.ack("hub-7", me, firsts[1]);
    await log.maintain();
    expect(log.first_pos).toBe(firsts[1]);
    // The freed file takes one segment's worth; the rotation after it is blocked by segment 1.
    const err2 = await append_until_full(log, written);
    expect((err2 as Error).message).toContain(`upstream hub-7 holds origin ${me} up to seq ${firsts[1]} of ${firsts[2]}`);
    expect(log.count - count).toBeGreaterThan(200);
    expect(log.first_pos).toBe(firsts[1]);
    expect(log.used_bytes).toBeLessThanOrEqual(4 * segment);
    expect_own_events(log, written);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  test("LOG_FULL says when no upstream pulls the origin at all", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-acked", 3);
    // The default: no acknowledgement source wired.
    const err = await append_until_full(log, new Map());
    expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
    expect((err as Error).message).toContain(`no upstream pulls origin ${log.id}`);
    await log.close();
  });
});

describe("drop-oldest", () => {
  test("never refuses an append, prunes oldest first, and counts what went un-acknowledged", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-oldest", 4);
    const acks = new ManualAcks(["hub"]);
    log.set_acks(acks);
    const me = log.id;
    const written = new Map<number, Uint8Array>();
    await append_until(log, () => log.segment_count >= 3, written);
    const firsts = segment_firsts(segments_of(dir));
    // The first two segments are acknowledged, nothing after them ever is.
    acks.ack("hub", me, firsts[2]);
    let pruned_segments = 0;
    let last_first_pos = 0;
    await append_until(
      log,
      () => {
        // Prunes only move forward, one whole segment at a time.
        expect(log.first_pos).toBeGreaterThanOrEqual(last_first_pos);
        last_first_pos = log.first_pos;
        pruned_segments = log.retention_status().pruned.segments;
        return pruned_segments >= 10;
      },
      written,
      (seq) => 100 + (seq % 300),
    );
    await log.maintain();
    const status = log.retention_status();
    expect(status.used_bytes).toBeLessThanOrEqual(4 * segment);
    expect(status.pruned.events).toBe(log.first_pos);
    expect(status.pruned.acked_events).toBe(firsts[2]);
    expect(status.pruned.unacked_events).toBe(log.first_pos - firsts[2]);
    expect(status.pruned.unacked_bytes).toBeGreaterThan(0);
    expect(status.pruned.bytes).toBe(status.pruned.segments * segment);
    expect(log.pruned_through(me)).toBe(log.first_pos);
    expect(log.get(me, 1)).toBeNull();
    expect(log.is_pruned(me, log.first_pos)).toBe(true);
    expect(log.is_pruned(me, log.first_pos + 1)).toBe(false);
    expect_own_events(log, written);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });
});

describe("reject", () => {
  test("never deletes, acknowledged or not, and fails with LOG_FULL at the budget", async () => {
    const dir = temp_dir();
    const log = await open(dir, "reject", 4);
    // Everything acknowledged: reject deletes nothing all the same.
    log.set_acks(acks_from((origin) => log.durable_held(origin)));
    const written = new Map<number, Uint8Array>();
    const err = await append_until_full(log, written);
    expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
    expect((err as Error).message).toContain("retention.policy is reject");
    expect(log.first_pos).toBe(0);
    expect(log.used_bytes).toBeLessThanOrEqual(4 * segment);
    expect((await log.prune()).segments).toEqual([]);
    expect((await log.prune({ dry_run: true })).segments).toEqual([]);
    await log.maintain();
    expect(log.first_pos).toBe(0);
    expect(log.retention_status().pruned.segments).toBe(0);
    expect_own_events(log, written);
    const count = log.count;
    await log.close();

    const again = await open(dir, "reject", 4);
    again.set_acks(acks_from((origin) => again.durable_held(origin)));
    expect(again.count).toBe(count);
    await again.maintain();
    expect(() => {
      for (let i = 0; i < 2000; i++) again.append(payload_for(count + 1 + i, 200));
    }).toThrow(/reject/);
    expect(again.first_pos).toBe(0);
    await again.close();
  });
});

describe("reading a pruned log", () => {
  test("reads start at the first position held, pruned ids are gone but still counted, and all of it survives a reopen", async () => {
    const dir = temp_dir();
    const log = await open(dir, "drop-acked", 32);
    const peer = await Origin.open();
    const other = peer.id;
    const me = log.id;
    /** id -> payload of everything written. */
    const written = new Map<string, Uint8Array>();
    while (log.segment_count < 6) {
      for (let i = 0; i < 5; i++) {
        const seq = log.held(me) + 1;
        const p = payload_for(seq, 50 + ((seq * 37) % 600));
        log.append(p);
        written.set(`${me}:${seq}`, p);
      }
      const seq = log.held(other) + 1;
      const p = payload_for(seq, 400, 9);
      expect(log.accept_frames(peer.write(p)).appended).toBe(1);
      written.set(`${other}:${seq}`, p);
      await log.durable();
    }
    await peer.close();
    const firsts = segment_firsts(segments_of(dir));
    const all_before = log.read(0, 1_000_000).map((e) => ({ pos: e.pos, id: e.id }));
    const vv = log.vv();
    const durable_vv = log.durable_vv();
    // An iterator inside segment 0 when it goes.
    const reader = log.iterate(0);
    expect(reader.next().value?.pos).toBe(0);

    // Acknowledged through segment 2 only.
    const through = new Map<string, number>();
    for (const e of log.read(0, firsts[3])) through.set(e.origin, e.seq);
    log.set_acks(new ManualAcks(["hub"]).ack("hub", me, through.get(me) as number).ack("hub", other, through.get(other) as number));
    const result = await log.prune();
    expect(result.segments.map((s) => s.first_pos)).toEqual(firsts.slice(0, 3));
    const first_pos = firsts[3];

    const check = (l: Log) => {
      expect(l.first_pos).toBe(first_pos);
      expect(l.count).toBe(all_before.length);
      // Reads from below the first position held start there.
      for (const from of [0, 1, first_pos - 1, first_pos]) {
        const events = l.read(from, 1_000_000);
        expect(events.map((e) => ({ pos: e.pos, id: e.id }))).toEqual(all_before.slice(first_pos));
      }
      expect(l.read(first_pos + 3, 2).map((e) => e.pos)).toEqual([first_pos + 3, first_pos + 4]);
      expect([...l.iterate(0)].length).toBe(all_before.length - first_pos);
      for (const e of l.read(0, 1_000_000)) expect(e.payload).toEqual(written.get(e.id) as Uint8Array);
      for (const origin of [me, other]) {
        const floor = through.get(origin) as number;
        expect(l.pruned_through(origin)).toBe(floor);
        expect(l.get(origin, 1)).toBeNull();
        expect(l.get(origin, floor)).toBeNull();
        expect(l.is_pruned(origin, 1)).toBe(true);
        expect(l.is_pruned(origin, floor)).toBe(true);
        expect(l.is_pruned(origin, floor + 1)).toBe(false);
        expect(l.is_pruned(origin, 0)).toBe(false);
        expect(l.get(origin, floor + 1)?.payload).toEqual(written.get(`${origin}:${floor + 1}`) as Uint8Array);
        // Pruned events still count as held: the vv (a grow-only set) is unchanged.
        expect(l.held(origin)).toBe(vv[origin]);
        expect([...l.events_after(origin, 0)].map((e) => e.seq)[0]).toBe(floor + 1);
        expect([...l.events_after(origin, floor - 1)].length).toBe(vv[origin] - floor);
        let scanned = 0;
        l.scan_origin(origin, 0, () => ++scanned > 0);
        expect(scanned).toBe(vv[origin] - floor);
      }
      expect(l.vv()).toEqual(vv);
      expect(l.durable_vv()).toEqual(durable_vv);
      const report = l.verify();
      expect(report.ok).toBe(true);
      expect(report.events).toBe(all_before.length - first_pos);
      expect(l.retention_status().pruned).toMatchObject({ segments: 3, events: first_pos, acked_events: first_pos, unacked_events: 0 });
    };
    check(log);
    // The reader that was inside a pruned segment continues at the first position held, not in a recycled file.
    expect(reader.next().value?.pos).toBe(first_pos);
    await log.close();

    const again = await open(dir, "drop-acked", 32);
    expect(again.recovery.dropped_bytes).toBe(0);
    check(again);
    // Appends continue the seqs, pruned or not.
    const seq = again.append(payload_for(vv[me] + 1, 10));
    expect(seq).toBe(vv[me] + 1);
    await again.close();
    const read_only = await Log.open({ dir, segment_size_bytes: segment, read_only: true });
    expect(read_only.first_pos).toBe(first_pos);
    expect(read_only.pruned_through(me)).toBe(through.get(me) as number);
    expect(read_only.held(me)).toBe(vv[me] + 1);
    expect(read_only.verify().ok).toBe(true);
    await read_only.close();
  });
});

/**
 * append or append_batch; a LOG_FULL that says retention is still making room (two rotations
 * before the event loop ran the budget's job) is retried once the job ran, as a server's next request would.
 */
async function append_retrying(log: Log, payloads: readonly Uint8Array[]): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return payloads.length === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
    } catch (err) {
      // This test's upstream acknowledges what is durable: once the log is durable and the budget's job has run, room must be there.
      if (attempt > 3 || !is_interlog_error(err, "LOG_FULL")) throw err;
      await log.durable();
      await log.maintain();
    }
  }
}

describe("recycled segment files", () => {
  test("after many rotations through recycled files, reopens and verify are exact and appends continue", async () => {
    await for_seeds(4, async (rng) => {
      const dir = temp_dir();
      const peer = await Origin.open();
      const other = peer.id;
      const { io, counts } = counting_io(node_file_io);
      const reopen = () => open(dir, "drop-acked", 4, { io });
      let log = await reopen();
      const me = log.id;
      const ack_all = (l: Log) => l.set_acks(acks_from((origin) => l.durable_held(origin)));
      ack_all(log);
      const written = new Map<string, Uint8Array>();
      let saw_stale_spare = false;
      const check = (l: Log) => {
        expect(l.held(me)).toBe([...written.keys()].filter((k) => k.startsWith(`${me}:`)).length);
        const events = l.read(0, 1_000_000);
        expect(events.length).toBe(l.count - l.first_pos);
        for (const e of events) expect(e.payload).toEqual(written.get(e.id) as Uint8Array);
        const report = l.verify();
        expect(report.ok).toBe(true);
        expect(report.events).toBe(l.count - l.first_pos);
      };
      /** Files made after the budget first filled: rotations that found no spare. */
      let created_at_full = -1;
      while (log.retention_status().pruned.segments < 30) {
        const n = rng.chance(0.3) ? rng.int(2, 40) : 1;
        // Sizes that do not line up with the frames already in a recycled file; at most one big payload per batch.
        const big = rng.chance(0.05 * n) ? rng.int(0, n - 1) : -1;
        const payloads = Array.from({ length: n }, (_, i) => payload_for(log.held(me) + 1 + i, i === big ? rng.int(2000, 9000) : rng.int(0, 700), 3));
        const first = await append_retrying(log, payloads);
        payloads.forEach((p, i) => written.set(`${me}:${first + i}`, p));
        if (rng.chance(0.1)) {
          const seq = log.held(other) + 1;
          const p = payload_for(seq, rng.int(0, 2000), 4);
          expect(log.accept_frames(peer.write(p)).appended).toBe(1);
          written.set(`${other}:${seq}`, p);
        }
        if (rng.chance(0.3)) await log.durable();
        // A server yields between requests; the budget's job runs there.
        await new Promise((resolve) => setImmediate(resolve));
        if (created_at_full < 0 && log.retention_status().pruned.segments > 0) created_at_full = counts.created;
        const spare = path.join(segments_of(dir), "spare");
        if (!saw_stale_spare && log.retention_status().pruned.segments > 0 && fs.existsSync(spare)) {
          // The spare is a former segment, not zeroed: its frames are still there past the first len word.
          saw_stale_spare = fs.readFileSync(spare).subarray(8, 4096).some((b) => b !== 0);
        }
        if (rng.chance(0.01)) {
          await log.close();
          log = await reopen();
          ack_all(log);
          expect(log.recovery.dropped_bytes).toBe(0);
          check(log);
        }
      }
      await peer.close();
      await log.durable();
      expect(saw_stale_spare).toBe(true);
      // Segments went through recycled files. A file is made anew only when a rotation outran the budget's job
      // (it may then go one segment over, and the job unlinks one to get back) or a close interrupted a prune.
      expect(counts.recycled).toBeGreaterThanOrEqual(15);
      expect(counts.created - created_at_full).toBeLessThanOrEqual(counts.unlinked_segments + 1);
      check(log);
      const count = log.count;
      await log.close();

      log = await reopen();
      ack_all(log);
      expect(log.recovery).toMatchObject({ dropped_bytes: 0, dropped_segments: 0, cut_at_pos: null });
      expect(log.count).toBe(count);
      check(log);
      // Appends after the reopen continue, through more rotations into recycled files.
      for (let i = 0; i < 2000; i++) {
        const seq = log.held(me) + 1;
        const p = payload_for(seq, rng.int(0, 400), 5);
        log.append(p);
        written.set(`${me}:${seq}`, p);
        if (i % 50 === 0) await log.durable();
      }
      await log.durable();
      check(log);
      await log.close();
      const last = await reopen();
      expect(last.recovery.dropped_bytes).toBe(0);
      check(last);
      await last.close();
    });
  });

  test("epochs wrapping past 2^16 never revive stale frames in recycled files", async () => {
    const dir = temp_dir();
    let log = await open(dir, "drop-acked", 3);
    const me = log.id;
    const written = new Map<number, Uint8Array>();
    await log.close();
    // The last run's epoch just below the wrap.
    fs.writeFileSync(path.join(segments_of(dir), "epoch"), "65533\n");
    for (let run = 0; run < 8; run++) {
      log = await open(dir, "drop-acked", 3);
      log.set_acks(acks_from((origin) => log.durable_held(origin)));
      expect(log.recovery.dropped_bytes).toBe(0);
      expect(log.held(me)).toBe(written.size);
      const target = log.retention_status().pruned.segments + 2;
      await append_until(log, () => log.retention_status().pruned.segments >= target, written, (seq) => 10 + ((seq * 13) % 500));
      expect_own_events(log, written);
      expect(log.verify().ok).toBe(true);
      await log.close();
    }
    expect(fs.readFileSync(path.join(segments_of(dir), "epoch"), "utf8").trim()).toBe(String((65533 + 8) & 0xffff));
    const last = await open(dir, "drop-acked", 3);
    expect_own_events(last, written);
    expect(last.verify().ok).toBe(true);
    await last.close();
  });
});
