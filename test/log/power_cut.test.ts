import { describe, expect, test } from "bun:test";
import type { Random } from "../../src/lib/random.ts";
import { flag_batch_end, frame_size_bytes, proof_bytes } from "../../src/log/frame.ts";
import { FrameStager } from "../../src/log/frame_stager.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import { KeyRing } from "../../src/log/key_ring.ts";
import { read_replica } from "../../src/log/replica.ts";
import { Segment } from "../../src/log/segment.ts";
import { Log, type SyncMode } from "../../src/log/log.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { Origin } from "../support/origin.ts";
import { for_seeds } from "../support/seeded.ts";

/**
 * Power loss through the injected file interface: at a cut, every page
 * written since its file's last fsync is kept, lost or torn (seeded). After
 * every cut the log must still hold every acknowledged event, exactly, and
 * nothing corrupt.
 */
const dir = "/mem/data";
const segment_size_bytes = 64 * 1024;

describe("power cuts", () => {
  test("every acknowledged event survives seeded power cuts in every sync mode", async () => {
    await for_seeds(40, async (rng) => {
      const io = new MemFileIO();
      /** Acknowledged payloads by seq of the single writer. */
      const acked = new Map<number, Uint8Array>();
      /** The payload last written at each seq (acknowledged or not), and the seqs that ended a batch. */
      const written = new Map<number, Uint8Array>();
      const batch_ends = new Set<number>([0]);
      let origin = "";
      for (let round = 0; round < 4; round++) {
        // Interval fsyncs run where a 1 ms timer could fire: while the test waits (durable, sleep).
        const timers = new ManualTimers();
        const sync: SyncMode = rng.pick(["always", "interval", "never"] as const);
        const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync, sync_interval_ms: 1, timers, segment_retry_interval_ms: 0 });
        origin ||= log.id;
        expect(log.id).toBe(origin);
        // Everything acknowledged before the cut is there, byte for byte.
        for (const [seq, payload] of acked) expect(log.get(origin, seq)?.payload).toEqual(payload);
        const report = log.verify();
        expect(report.ok).toBe(true);
        expect(log.held(origin)).toBe(log.count);
        // What survived is a prefix of what was written, ending on a batch boundary at a signed frame
        // (recovery keeps nothing past the last signed one): nothing torn, nothing from elsewhere.
        const held = log.held(origin);
        expect(batch_ends.has(held)).toBe(true);
        if (held > 0) expect(log.get(origin, held)?.signed).toBe(true);
        for (const e of log.read(0, held)) expect(e.payload).toEqual(written.get(e.seq) as Uint8Array);
        // Seqs past the survivors are written anew from here.
        for (const seq of [...written.keys()]) if (seq > held) written.delete(seq);
        for (const seq of [...batch_ends]) if (seq > held) batch_ends.delete(seq);
        const steps = rng.int(1, 60);
        for (let step = 0; step < steps; step++) {
          const n = rng.chance(0.3) ? rng.int(2, 8) : 1;
          // At most one big payload per batch, so a batch always fits in a segment (BATCH_TOO_LARGE otherwise).
          const big = rng.chance(0.05 * n) ? rng.int(0, n - 1) : -1;
          const payloads = Array.from({ length: n }, (_, i) => rng.bytes(i === big ? rng.int(4000, 20_000) : rng.int(0, 700)));
          const first = n === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
          payloads.forEach((p, i) => written.set(first + i, p));
          batch_ends.add(first + n - 1);
          if (rng.chance(0.4)) {
            const durable = log.durable();
            timers.fire_every();
            await durable;
            // Only fsynced data counts as acknowledged for a power cut (never mode promises less).
            if (sync !== "never") payloads.forEach((p, i) => acked.set(first + i, p));
          }
          if (rng.chance(0.1)) {
            timers.fire_every();
            await Bun.sleep(rng.int(0, 2));
          }
        }
        timers.cancel_all();
        io.power_cut(rng);
      }
      const last = await Log.open({ dir, io: io.session(), segment_size_bytes });
      for (const [seq, payload] of acked) expect(last.get(origin, seq)?.payload).toEqual(payload);
      expect(last.verify().ok).toBe(true);
      await last.close();
    });
  });

  test("a process crash (page cache kept) loses nothing that was handed to the OS", async () => {
    await for_seeds(20, async (rng) => {
      const io = new MemFileIO();
      const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "never" });
      const payloads: Uint8Array[] = [];
      for (let i = 0; i < rng.int(1, 400); i++) {
        payloads.push(rng.bytes(rng.int(0, 900)));
        log.append(payloads[payloads.length - 1]);
      }
      await log.durable(); // in never mode: written to the OS
      const id = log.id;
      io.process_crash();
      const again = await Log.open({ dir, io: io.session(), segment_size_bytes });
      expect(again.read(0, 10_000).map((e) => e.payload)).toEqual(payloads);
      expect(again.held(id)).toBe(payloads.length);
      await again.close();
    });
  });

  test("events bigger than the staging buffer (written straight to the file) survive a power cut once acknowledged", async () => {
    await for_seeds(8, async (rng) => {
      const io = new MemFileIO();
      const big_segment_bytes = 4 * 1024 * 1024;
      const peer = await Origin.open({ segment_size_bytes: big_segment_bytes, clock: { now_ms: () => 7 } });
      const other = peer.id;
      const open = () => Log.open({ dir, io: io.session(), segment_size_bytes: big_segment_bytes, sync: rng.pick(["always", "interval"] as const), sync_interval_ms: 1 });
      // Own event: the cut comes right after the big write is acknowledged, with nothing written after it.
      const log = await open();
      const small = rng.bytes(rng.int(0, 100));
      const big = rng.bytes(rng.int(300_000, 900_000));
      await log.write(small);
      await log.write(big);
      expect(log.durable_held(log.id)).toBe(2);
      const id = log.id;
      io.power_cut(rng);
      // Accepted event from a peer, the same way.
      const again = await open();
      expect([...again.events_after(id, 0)].map((e) => e.payload)).toEqual([small, big]);
      const theirs = rng.bytes(rng.int(300_000, 900_000));
      expect(again.accept_frames(peer.write(theirs))).toEqual({ appended: 1, dropped: {} });
      await peer.close();
      await again.durable();
      expect(again.durable_held(other)).toBe(1);
      io.power_cut(rng);
      const last = await open();
      expect(last.get(other, 1)?.payload).toEqual(theirs);
      expect(last.get(other, 1)?.time_ms).toBe(7);
      expect(last.get(id, 2)?.signed).toBe(true);
      expect(last.get(other, 1)?.signed).toBe(true);
      expect(last.verify().ok).toBe(true);
      await last.close();
    });
  });

  test("a new log's directories survive a power cut right after its first acknowledged write", async () => {
    const io = new MemFileIO();
    const fresh = "/mem/fleet/truck-7/data";
    const log = await Log.open({ dir: fresh, io: io.session(), segment_size_bytes, sync: "always" });
    await log.write(new TextEncoder().encode("door open"));
    // The cut loses everything that was not fsynced: file data, directory entries, whole directories.
    io.power_cut(worst_case_rng);
    const again = await Log.open({ dir: fresh, io: io.session(), segment_size_bytes });
    expect(again.id).toBe(log.id);
    expect(again.get(log.id, 1)?.payload).toEqual(new TextEncoder().encode("door open"));
    await again.close();
  });

  test("a data directory made by someone else just before (mkdir -p, systemd) is made durable before the first acknowledgement", async () => {
    const io = new MemFileIO();
    const made = "/mem/state/interlog";
    io.mkdirp(made); // its entry in /mem/state is not durable yet
    const log = await Log.open({ dir: made, io: io.session(), segment_size_bytes, sync: "always" });
    await log.write(new TextEncoder().encode("first"));
    io.power_cut(worst_case_rng);
    const again = await Log.open({ dir: made, io: io.session(), segment_size_bytes });
    expect(again.id).toBe(log.id);
    expect(again.held(log.id)).toBe(1);
    await again.close();
  });

  test("after a failed fsync, a restart does not call the unsynced tail durable (so it is never published)", async () => {
    const io = new MemFileIO();
    const text = (t: string) => new TextEncoder().encode(t);
    const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "always" });
    await log.write(text("kept"));
    const id = log.id;
    io.failing_syncs = 1; // the disk fails the next fsync; the page cache keeps showing the write
    log.append(text("never reached the disk"));
    const failed = await log.durable().then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toMatchObject({ code: "LOG_FAILED" });
    await log.close();
    io.process_crash(); // the service restarts; the page cache stays
    const again = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "always" });
    // What the restarted log calls durable is what sync would publish: it must survive a power cut.
    const published = again.durable_held(id);
    expect(published).toBe(1);
    expect(again.recovery.reason).toContain("failed");
    again.append(text("after the restart"));
    await again.durable();
    await again.close();
    io.power_cut(worst_case_rng);
    const last = await Log.open({ dir, io: io.session(), segment_size_bytes });
    expect(last.held(id)).toBe(2);
    expect(last.read(0, 10).map((e) => new TextDecoder().decode(e.payload))).toEqual(["kept", "after the restart"]);
    expect(last.verify().ok).toBe(true);
    await last.close();
  });

  test("frames left in a spare segment file by a lost rename are never revived by a later rotation", async () => {
    // A rotation renamed the spare into place and wrote frames into it; the cut kept the written-back
    // data but not the rename, so the file called `spare` holds frames of events that were never acknowledged.
    const io = new MemFileIO();
    const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "always" });
    const payload = new Uint8Array(256).fill(1);
    // Each write is flushed alone, so each frame is a signed range of its own; the segment is then full.
    const signed_frame_bytes = frame_size_bytes(256 + proof_bytes);
    const fit = Math.floor(segment_size_bytes / signed_frame_bytes);
    for (let i = 0; i < fit; i++) await log.write(payload);
    const id = log.id;
    await log.close();
    const spare = `${dir}/segments/spare`;
    expect(io.exists(spare)).toBe(true);
    // The stale frames are what the log itself would have written there: signed by its own key, one range
    // per acknowledged append, each as long as the frame the next append writes (so its end meets the next stale one).
    const key = read_replica(io, dir)!.key!;
    const stale = new Segment(fit, spare, io.map(spare));
    const handle = io.open(spare);
    const stager = new FrameStager({ handle: () => handle, wrote: () => {}, fail: (err) => err as Error }, stale, key, origin_hi(id), origin_lo(id));
    for (let k = 0; k < 5; k++) {
      stager.stage(stale, id, origin_hi(id), origin_lo(id), fit + 1 + k, 1, flag_batch_end, new Uint8Array(256).fill(9));
      stager.flush();
    }
    handle.close();
    expect(stale.end_bytes).toBe(5 * signed_frame_bytes);
    for (let k = 0; k < 5; k++) expect(new KeyRing().check_range(id, stale.map, stale.view, k * signed_frame_bytes, k * signed_frame_bytes)).toBeNull();
    const again = await Log.open({ dir, io: io.session(), segment_size_bytes, sync: "always" });
    again.append(payload); // rotates into a segment: must not be the stale spare
    await again.close();
    const last = await Log.open({ dir, io: io.session(), segment_size_bytes });
    expect(last.held(id)).toBe(fit + 1);
    expect(last.segment_count).toBe(2);
    expect(last.get(id, fit + 1)?.payload).toEqual(payload);
    expect(last.verify().ok).toBe(true);
    await last.close();
  });
});

/** A power cut that loses everything it may: no unsynced page, entry or directory survives. */
const worst_case_rng = {
  chance: () => false,
  int: (lo: number, hi: number) => Math.min(hi, lo + 1),
} as unknown as Random;
