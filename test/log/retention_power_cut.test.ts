import { describe, expect, test } from "bun:test";
import { Random } from "../../src/lib/random.ts";
import { Log, type SyncMode } from "../../src/log/log.ts";
import type { RetentionOptions } from "../../src/log/retention.ts";
import { type CutWhen, CutIO } from "../support/cut_io.ts";
import { ManualAcks, acks_from } from "../support/manual_acks.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { Origin } from "../support/origin.ts";
import { payload_for, segment_firsts } from "../support/retention_fill.ts";
import { for_seeds } from "../support/seeded.ts";

/**
 * Power cuts and retention (issue 13, "Deletion" and "No byte written twice"),
 * through the injected file system: a cut keeps, loses or tears every page
 * and directory entry not yet fsynced (seeded). Recycled segment files hold
 * an earlier use's frames, so a torn batch in one must end the log exactly
 * where the durable data ends; and a cut at any step of a prune must leave a
 * log that opens with every event that was not pruned, nothing corrupt, and
 * no segment below the first position held.
 */

const dir = "/mem/data";
const segments_dir = `${dir}/segments`;
const segment = 64 * 1024;

function retention(policy: RetentionOptions["policy"], segments: number): RetentionOptions {
  return { max_bytes: segments * segment, policy, reserve_own_bytes: 0 };
}

describe("recycled segments and power cuts", () => {
  test("a torn batch in a recycled segment file ends the log at exactly the durable prefix", async () => {
    await for_seeds(40, async (rng) => {
      const mem = new MemFileIO();
      /** The payload last written at each seq, the seqs that ended a batch, and the highest seq acknowledged durable. */
      const written = new Map<number, Uint8Array>();
      const batch_ends = new Set<number>([0]);
      let acked = 0;
      /** The first position held as the last process saw it: a prune in flight at the cut may have gone further. */
      let first_pos_seen = 0;
      let me = "";
      let recycled_cuts = 0;
      for (let round = 0; round < 8; round++) {
        const timers = new ManualTimers();
        const sync: SyncMode = rng.pick(["always", "interval"] as const);
        const policy = rng.pick(["drop-acked", "drop-oldest"] as const);
        const log = await Log.open({
          dir,
          io: mem.session(),
          segment_size_bytes: segment,
          sync,
          sync_interval_ms: 1,
          timers,
          segment_retry_interval_ms: 0,
          retention: retention(policy, rng.int(3, 4)),
        });
        me ||= log.id;
        expect(log.id).toBe(me);
        // Everything acknowledged is held (or was pruned), byte for byte; what survived is a prefix of what was
        // written ending on a batch boundary; nothing stale from a recycled file's earlier use came back.
        const held = log.held(me);
        expect(batch_ends.has(held)).toBe(true);
        expect(held).toBeGreaterThanOrEqual(acked);
        expect(log.first_pos).toBeGreaterThanOrEqual(first_pos_seen);
        expect(log.first_pos).toBe(log.pruned_through(me));
        expect(log.count).toBe(held);
        const events = log.read(0, 1_000_000);
        expect(events.length).toBe(held - log.first_pos);
        for (const e of events) {
          expect(e.seq).toBe(e.pos + 1);
          expect(e.payload).toEqual(written.get(e.seq) as Uint8Array);
        }
        if (held > log.first_pos) expect(log.get(me, held)?.signed).toBe(true);
        const firsts = segment_firsts(segments_dir, mem);
        expect(firsts[0]).toBe(log.first_pos);
        const report = log.verify();
        expect(report.ok).toBe(true);
        expect(report.events).toBe(held - log.first_pos);
        for (const seq of [...written.keys()]) if (seq > held) written.delete(seq);
        for (const seq of [...batch_ends]) if (seq > held) batch_ends.delete(seq);
        acked = Math.min(acked, held);

        // The upstream holds what is durable here (it got it over sync): drop-acked prunes only that.
        log.set_acks(acks_from((origin) => log.durable_held(origin)));
        const steps = rng.int(20, 250);
        for (let step = 0; step < steps; step++) {
          const n = rng.chance(0.3) ? rng.int(2, 12) : 1;
          const big = rng.chance(0.04 * n) ? rng.int(0, n - 1) : -1;
          const seq0 = log.held(me) + 1;
          const payloads = Array.from({ length: n }, (_, i) => payload_for(seq0 + i, i === big ? rng.int(3000, 12_000) : rng.int(0, 1200), round));
          let first: number;
          try {
            first = n === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
          } catch (err) {
            // The budget's job had not run yet (or drop-acked waits for acknowledgements): a server retries later.
            expect((err as { code?: string }).code).toBe("LOG_FULL");
            timers.fire_every();
            await log.durable();
            await log.maintain();
            continue;
          }
          expect(first).toBe(seq0);
          payloads.forEach((p, i) => written.set(first + i, p));
          batch_ends.add(first + n - 1);
          if (rng.chance(0.3)) {
            const durable = log.durable();
            timers.fire_every();
            await durable;
            acked = Math.max(acked, first + n - 1);
          }
          if (rng.chance(0.1)) await log.maintain();
          if (rng.chance(0.1)) {
            timers.fire_every();
            await Bun.sleep(0);
          }
        }
        // The cut comes mid-batch: a batch handed to the file (a read flushes the staging buffer) but not fsynced.
        if (rng.chance(0.7)) {
          const n = rng.int(2, 30);
          const seq0 = log.held(me) + 1;
          const payloads = Array.from({ length: n }, (_, i) => payload_for(seq0 + i, rng.int(0, 1500), 100 + round));
          try {
            log.append_batch(payloads);
            payloads.forEach((p, i) => written.set(seq0 + i, p));
            batch_ends.add(seq0 + n - 1);
            log.read(log.count - 1, 1);
          } catch (err) {
            expect((err as { code?: string }).code).toBe("LOG_FULL");
          }
        }
        if (log.retention_status().pruned.segments > 0) recycled_cuts++;
        first_pos_seen = log.first_pos;
        timers.cancel_all();
        mem.power_cut(rng);
      }
      const last = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment });
      expect(last.held(me)).toBeGreaterThanOrEqual(acked);
      expect(last.verify().ok).toBe(true);
      for (const e of last.read(0, 1_000_000)) expect(e.payload).toEqual(written.get(e.seq) as Uint8Array);
      await last.close();
      // Most cuts hit a log whose files had been recycled.
      expect(recycled_cuts).toBeGreaterThanOrEqual(4);
    });
  });
});

/** A log of six 64 KiB segments (own events and a peer's), all durable, nothing acknowledged, no spare. */
interface Built {
  cut: CutIO;
  log: Log;
  me: string;
  other: string;
  /** pos -> id and payload of every event, and segment first positions. */
  events: { id: string; origin: string; seq: number; payload: Uint8Array }[];
  firsts: number[];
  vv: Record<string, number>;
}

/** Frames of one peer's events, each a signed range of its own, made once and accepted by every build. */
async function peer_frames(count: number): Promise<{ id: string; frames: Uint8Array[]; payloads: Uint8Array[] }> {
  const peer = await Origin.open({ segment_size_bytes: 1024 * 1024 });
  const frames: Uint8Array[] = [];
  const payloads: Uint8Array[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const p = payload_for(seq, 100 + ((seq * 53) % 900), 7);
    payloads.push(p);
    frames.push(peer.write(p));
  }
  const id = peer.id;
  await peer.close();
  return { id, frames, payloads };
}

const budget_segments = 6;

async function build(rng: Random, peer: { id: string; frames: Uint8Array[]; payloads: Uint8Array[] }): Promise<Built> {
  const mem = new MemFileIO();
  const cut = new CutIO(mem, rng);
  const log = await Log.open({ dir, io: cut.io, segment_size_bytes: segment, sync: "always", retention: retention("drop-acked", budget_segments) });
  const me = log.id;
  let other_next = 0;
  while (log.segment_count < budget_segments) {
    const seq = log.held(me) + 1;
    log.append(payload_for(seq, 50 + ((seq * 131) % 1400)));
    if (seq % 7 === 0 && other_next < peer.frames.length) expect(log.accept_frames(peer.frames[other_next++]).appended).toBe(1);
    if (seq % 16 === 0) await log.durable();
  }
  await log.durable();
  await log.maintain();
  const events = log.read(0, 1_000_000).map((e) => ({ id: e.id, origin: e.origin, seq: e.seq, payload: e.payload.slice() }));
  const firsts = segment_firsts(segments_dir, mem);
  expect(firsts.length).toBe(budget_segments);
  expect(mem.exists(`${segments_dir}/spare`)).toBe(false);
  return { cut, log, me, other: peer.id, events, firsts, vv: log.vv() };
}

/** What each way of pruning does once the log is built; `cut.arm` was called just before. */
type Prune = (b: Built) => Promise<unknown>;

const prunes: Record<string, { run: Prune; reopen_policy: RetentionOptions }> = {
  // The prune command: every acknowledged segment from the front, the first recycled as the spare.
  "prune() of four acknowledged segments": {
    run: (b) => {
      const acks = new ManualAcks(["hub"]);
      for (const e of b.events.slice(0, b.firsts[4])) acks.ack("hub", e.origin, e.seq);
      b.log.set_acks(acks);
      return b.log.prune();
    },
    reopen_policy: retention("drop-acked", budget_segments),
  },
  // The budget's job: one acknowledged segment, recycled as the spare.
  "maintain() recycling one segment": {
    run: (b) => {
      b.log.set_acks(acks_from(() => Number.MAX_SAFE_INTEGER));
      return b.log.maintain();
    },
    reopen_policy: retention("drop-acked", budget_segments),
  },
  // A lower budget at the next start, drop-oldest: recovery, then the job prunes over budget without recycling, then recycles one.
  "reopen under a smaller drop-oldest budget": {
    run: async (b) => {
      await b.log.close();
      const log = await Log.open({ dir, io: b.cut.io, segment_size_bytes: segment, sync: "always", retention: retention("drop-oldest", 3) });
      await log.maintain();
      await log.maintain();
      return log;
    },
    reopen_policy: retention("drop-acked", budget_segments),
  },
};

/** After the cut: reopen and check the log holds every event not pruned, exactly, and nothing below its first position. */
async function check_after_cut(b: Built, policy: RetentionOptions, label: string): Promise<void> {
  const mem = b.cut.mem;
  const log = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment, sync: "always", retention: policy });
  try {
    const first_pos = log.first_pos;
    // A prune moves the first position to a segment boundary of before, or not at all.
    expect(b.firsts.slice(0, -1)).toContain(first_pos);
    const files = segment_firsts(segments_dir, mem);
    expect(files[0]).toBe(first_pos);
    expect(files).toEqual(b.firsts.filter((f) => f >= first_pos));
    expect(log.count).toBe(b.events.length);
    expect(log.vv()).toEqual(b.vv);
    const held = log.read(0, 1_000_000);
    expect(held.length).toBe(b.events.length - first_pos);
    held.forEach((e, i) => {
      const want = b.events[first_pos + i];
      expect(e.pos).toBe(first_pos + i);
      expect(e.id).toBe(want.id);
      expect(e.payload).toEqual(want.payload);
    });
    for (const origin of [b.me, b.other]) {
      const pruned = b.events.slice(0, first_pos).filter((e) => e.origin === origin);
      const floor = pruned.length === 0 ? 0 : pruned[pruned.length - 1].seq;
      expect(log.pruned_through(origin)).toBe(floor);
      if (floor > 0) expect(log.get(origin, floor)).toBeNull();
    }
    expect(log.retention_status().pruned).toMatchObject({ events: first_pos, segments: b.firsts.indexOf(first_pos) });
    expect(log.verify().ok).toBe(true);
    // The log goes on: appends through more rotations (into the spare, recycled or not), then a clean reopen.
    log.set_acks(acks_from((origin) => log.durable_held(origin)));
    const me = b.me;
    const more: Uint8Array[] = [];
    for (let i = 0; i < 900; i++) {
      const p = payload_for(log.held(me) + 1, 250, 99);
      log.append(p);
      more.push(p);
      if (i % 20 === 19) {
        await log.durable();
        await log.maintain();
      }
    }
    await log.durable();
    await log.close();
    const again = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment, sync: "always", retention: policy });
    expect(again.recovery.dropped_bytes).toBe(0);
    expect(again.held(me)).toBe(b.vv[me] + more.length);
    expect(again.verify().ok).toBe(true);
    const tail = [...again.events_after(me, b.vv[me])].map((e) => e.payload);
    expect(tail.length).toBe(Math.min(more.length, again.held(me) - again.pruned_through(me)));
    expect(tail).toEqual(more.slice(more.length - tail.length));
    for (const e of again.read(0, 1_000_000)) {
      if (e.origin === me && e.seq > b.vv[me]) continue;
      expect(e.payload).toEqual(b.events[e.pos].payload);
    }
    expect(segment_firsts(segments_dir, mem)[0]).toBe(again.first_pos);
    await again.close();
  } catch (err) {
    if (err instanceof Error) err.message = `${label}\n${err.message}`;
    throw err;
  }
}

describe("power cuts during pruning", () => {
  for (const [name, prune] of Object.entries(prunes)) {
    test(`a cut at any step of ${name} leaves every event not pruned and no segment below the first position`, async () => {
      const peer = await peer_frames(200);
      let steps_total = 0;
      await for_seeds(3, async (rng) => {
        // A dry run finds the steps (writes, renames, unlinks, fsyncs) the prune makes.
        const dry = await build(rng, peer);
        dry.cut.arm();
        const result = await prune.run(dry);
        if (result instanceof Log) await result.close();
        else await dry.log.close();
        const steps = [...dry.cut.steps];
        expect(steps.length).toBeGreaterThan(3);
        steps_total += steps.length;
        for (let k = 0; k < steps.length; k++) {
          for (const when of ["before", "during", "after"] as CutWhen[]) {
            const b = await build(rng, peer);
            b.cut.arm(k, when);
            await prune.run(b).catch(() => {});
            if (!b.cut.cut) b.cut.mem.power_cut(rng);
            await check_after_cut(b, prune.reopen_policy, `cut ${when} step ${k} of ${steps.length}: ${b.cut.steps[k] ?? "(not reached)"}; steps ${steps.join(", ")}`);
          }
        }
      });
      expect(steps_total).toBeGreaterThan(0);
    });
  }
});

describe("stale frames past a sealed segment's data", () => {
  /**
   * A whole frame of an older epoch whose seq is the next one expected,
   * lying right where a sealed segment's data ends, is the leftover of a
   * crashed run (here: a spare whose rename a power cut reverted after its
   * pages were written back), never data of the log. When that segment has
   * no summary yet and is not the last, reporting it as damage would cut
   * the log there and remove the later segments, acknowledged events
   * included (scan.ts used to).
   */
  test("a leftover frame with the next seq at the end of a sealed segment without summary does not cut acknowledged segments after it", async () => {
    const mem = new MemFileIO();
    const size = 200;
    // Run A makes the log and its spare; run B's open fsyncs the directory (its epoch file), so the spare's name is durable.
    let log = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment, sync: "always" });
    await log.maintain();
    await log.close();
    // Run B: one signed frame per append (each read flushes), segment 0 full, then 170 frames into the spare renamed
    // into place; nothing is fsynced (never mode, and no background work runs).
    log = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment, sync: "never", timers: new ManualTimers({ soon: "manual" }) });
    const me = log.id;
    await Bun.sleep(5); // the spare left by run A is checked and ready
    while (log.segment_count < 2) {
      log.append(payload_for(log.held(me) + 1, size));
      log.read(log.count - 1, 1);
    }
    for (let i = 0; i < 170; i++) {
      log.append(payload_for(log.held(me) + 1, size));
      log.read(log.count - 1, 1);
    }
    const written_b = log.held(me);
    // The power cut keeps every page written back but no directory change since the last fsync: the rename
    // spare -> segment is lost, so `spare` holds run B's frames (the durability hole of issue 13 section 6).
    mem.power_cut(keep_pages_lose_entries);
    expect(mem.exists(`${segments_dir}/spare`)).toBe(true);
    // Run C writes the same events (same sizes, one signed frame each): they land on run B's offsets. Near the end
    // of the segment a batch does not fit and goes to a new segment; its events are acknowledged (fsynced).
    const cut = new CutIO(mem, new Random(1));
    log = await Log.open({ dir, io: cut.io, segment_size_bytes: segment, sync: "always" });
    await log.maintain();
    while (log.held(me) < written_b - 5) await log.write(payload_for(log.held(me) + 1, size));
    const sealed_end = log.held(me);
    // The power goes before the sealed segment's summary is written.
    cut.arm_on((step) => step.startsWith("write_file_atomic") && step.endsWith(".sum"));
    log.append_batch(Array.from({ length: 60 }, (_, i) => payload_for(sealed_end + 1 + i, size)));
    await log.durable().catch(() => {});
    const acknowledged = log.durable_held(me);
    expect(acknowledged).toBe(sealed_end + 60);
    expect(log.segment_count).toBe(3);
    expect(cut.cut).toBe(true);
    // Run D: every acknowledged event is there.
    const again = await Log.open({ dir, io: mem.session(), segment_size_bytes: segment });
    expect(again.recovery.dropped_segments).toBe(0);
    expect(again.held(me)).toBe(acknowledged);
    expect(again.verify().ok).toBe(true);
    await again.close();
  });
});

/** A power cut that keeps every page written (written back before the cut) and loses every directory entry not fsynced. */
const keep_pages_lose_entries = { chance: () => false, int: (lo: number) => lo } as unknown as Random;
