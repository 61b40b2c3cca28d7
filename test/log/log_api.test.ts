import { describe, expect, test } from "bun:test";
import { Log } from "../../src/log/log.ts";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { type FileHandle, type FileIO, node_file_io } from "../../src/log/file_io.ts";
import { Origin } from "../support/origin.ts";
import { dec, enc, temp_dir } from "../support/temp_dir.ts";
const small_segment_bytes = 64 * 1024;

describe("embedded log API", () => {
  test("a new directory gets a random replica id; reopening keeps it and the events", async () => {
    const dir = `${temp_dir()}/data`;
    const log = await Log.open({ dir, name: "truck-0042" });
    expect(log.id).toMatch(/^[0-9a-f]{16}$/);
    expect(log.name).toBe("truck-0042");
    const ids = await log.write([enc("one"), enc("two")]);
    expect(ids).toEqual([`${log.id}:1`, `${log.id}:2`]);
    await log.close();

    const again = await Log.open({ dir });
    expect(again.id).toBe(log.id);
    expect(again.read(0).map((e) => dec(e.payload))).toEqual(["one", "two"]);
    expect(again.vv()).toEqual({ [log.id]: 2 });
    await again.close();

    const elsewhere = await Log.open({ dir: `${temp_dir()}/data` });
    expect(elsewhere.id).not.toBe(log.id);
    await elsewhere.close();
  });

  test("an embedder's timers without `soon` (written before it existed) still get every append fsynced", async () => {
    const every_only = { every: (_ms: number, _fn: () => void) => ({ cancel: () => {} }) };
    const log = await Log.open({ dir: temp_dir(), timers: every_only as never });
    expect(await log.write(enc("one"))).toEqual([`${log.id}:1`]);
    expect(await log.write(enc("two"))).toEqual([`${log.id}:2`]);
    expect(log.durable_held(log.id)).toBe(2);
    await log.close();
  });

  test("read returns events in transaction order with ids, positions and times", async () => {
    const log = await Log.open({ dir: temp_dir(), clock: { now_ms: () => 1_700_000_000_000 } });
    const other = await Origin.open({ clock: { now_ms: () => 5 } });
    log.append(enc("a"));
    expect(log.accept_frames(other.write("theirs"))).toEqual({ appended: 1, dropped: {} });
    log.append(enc("b"));
    const events = log.read(0);
    expect(events.map((e) => [e.pos, e.id, dec(e.payload)])).toEqual([
      [0, `${log.id}:1`, "a"],
      [1, `${other.id}:1`, "theirs"],
      [2, `${log.id}:2`, "b"],
    ]);
    expect(events[1].time_ms).toBe(5);
    expect(events[0].time_ms).toBe(1_700_000_000_000);
    expect(log.read(1, 1).map((e) => e.pos)).toEqual([1]);
    expect(log.read(3)).toEqual([]);
    await log.close();
    await other.close();
  });

  test("accept_frames appends whole signed ranges that continue an origin, skips what is held and refuses gaps and forgeries", async () => {
    const log = await Log.open({ dir: temp_dir() });
    const other = await Origin.open();
    const first = other.write("x1");
    expect(log.accept_frames(first)).toEqual({ appended: 1, dropped: {} });
    expect(log.accept_frames(first)).toEqual({ appended: 0, dropped: {} });
    const second = other.write("x2", "x3");
    const third = other.write("x4");
    // A gap: x4 arrives before x2..x3.
    expect(log.accept_frames(third)).toEqual({ appended: 0, dropped: { gap: 1 } });
    expect(log.held(other.id)).toBe(1);
    // Half a range (x2 without x3, which carries the proof) is never stored.
    const x2_only = second.subarray(0, other.log.get(other.id, 2)!.frame_bytes);
    expect(log.accept_frames(x2_only)).toEqual({ appended: 0, dropped: { partial_range: 1 } });
    expect(log.accept_frames(other.frames(0))).toEqual({ appended: 3, dropped: {} });
    expect(log.vv()).toEqual({ [other.id]: 4 });
    await log.close();
    await other.close();
  });

  test("accept_frames refuses a range whose bytes were changed, even with a good crc, and a key that is not the origin's", async () => {
    const log = await Log.open({ dir: temp_dir() });
    const other = await Origin.open();
    const mallory = await Origin.open();
    const frames = other.write("pay me 10");
    // Change the payload and make the crc match again: what an attacker on the path can do.
    const forged = frames.slice();
    forged[40 + 7] = "9".charCodeAt(0);
    const view = new DataView(forged.buffer);
    const { frame_crc_compute } = await import("../../src/log/frame.ts");
    view.setUint32(4, frame_crc_compute(forged, 0, view.getUint32(0, true)), true);
    expect(log.accept_frames(forged)).toEqual({ appended: 0, dropped: { bad_signature: 1 } });
    // Mallory's own signed frames relabelled as other's: the key in the proof is not other's.
    const stolen = mallory.write("pay me 10").slice();
    const sview = new DataView(stolen.buffer);
    sview.setUint32(8, Number.parseInt(other.id.slice(0, 8), 16), true);
    sview.setUint32(12, Number.parseInt(other.id.slice(8), 16), true);
    sview.setUint32(4, frame_crc_compute(stolen, 0, sview.getUint32(0, true)), true);
    expect(log.accept_frames(stolen)).toEqual({ appended: 0, dropped: { unknown_key: 1 } });
    expect(log.count).toBe(0);
    expect(log.accept_frames(frames)).toEqual({ appended: 1, dropped: {} });
    await log.close();
    await other.close();
    await mallory.close();
  });

  test("verify checks every signed range: a payload byte changed on disk with its crc made good is found at its range", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir });
    const other = await Origin.open();
    log.append_batch([enc("one"), enc("two")]);
    await log.durable();
    log.accept_frames(other.write("theirs 1", "theirs 2"));
    log.append(enc("three"));
    await log.close();
    await other.close();
    const clean = await Log.open({ dir, read_only: true });
    expect(clean.verify()).toMatchObject({ ok: true, events: 5 });
    const target = clean.get(other.id, 2)!;
    await clean.close();
    const fs = await import("node:fs");
    const { frame_crc_compute } = await import("../../src/log/frame.ts");
    const files = fs.readdirSync(`${dir}/segments`).filter((f) => f.endsWith(".seg"));
    expect(files.length).toBe(1);
    const bytes = new Uint8Array(fs.readFileSync(`${dir}/segments/${files[0]}`));
    const view = new DataView(bytes.buffer);
    // Find the frame of theirs 2 and change one payload byte, then make its crc match again.
    let at = 0;
    for (let i = 0; i < target.pos; i++) at += (view.getUint32(at, true) + 7) & ~7;
    bytes[at + 40] ^= 0x20;
    view.setUint32(at + 4, frame_crc_compute(bytes, at, view.getUint32(at, true)), true);
    fs.writeFileSync(`${dir}/segments/${files[0]}`, bytes);
    const tampered = await Log.open({ dir, read_only: true });
    const report = tampered.verify();
    expect(report.ok).toBe(false);
    // Reported at the first event of the range the changed event belongs to (theirs 1, pos 2).
    expect(report.first_bad?.pos).toBe(2);
    expect(report.first_bad?.reason).toContain(`signed range of ${other.id}`);
    expect(report.first_bad?.reason).toContain("bad_signature");
    await tampered.close();
  });

  test("a 0.2 data directory is refused with the commands to move on, and left as it was", async () => {
    const dir = temp_dir();
    const fs = await import("node:fs");
    fs.mkdirSync(`${dir}/segments`);
    const old_json = JSON.stringify({ id: "3f09c2a41b7e55d0", name: "truck", created: "2026-01-01T00:00:00.000Z" });
    fs.writeFileSync(`${dir}/replica.json`, old_json);
    fs.writeFileSync(`${dir}/segments/00000000000000000000.seg`, new Uint8Array(4096).fill(1));
    for (const read_only of [false, true]) {
      let err: unknown;
      try {
        await Log.open({ dir, read_only });
      } catch (e) {
        err = e;
      }
      expect(is_interlog_error(err, "DATA_DIR_OLD_FORMAT")).toBe(true);
      expect((err as Error).message).toContain("interlog read --data-dir");
      expect((err as Error).message).toContain("interlog init --data-dir");
    }
    expect(fs.readFileSync(`${dir}/replica.json`, "utf8")).toBe(old_json);
    // Nothing added, not even a lock file.
    expect(fs.readdirSync(dir).sort()).toEqual(["replica.json", "segments"]);
    expect(fs.readdirSync(`${dir}/segments`)).toEqual(["00000000000000000000.seg"]);
    expect(fs.readFileSync(`${dir}/segments/00000000000000000000.seg`)).toEqual(Buffer.alloc(4096, 1));
  });

  test("the key stays with its directory: 0600, and a missing or foreign key file is refused", async () => {
    const fs = await import("node:fs");
    const a = temp_dir();
    const b = temp_dir();
    const la = await Log.open({ dir: a });
    const lb = await Log.open({ dir: b });
    expect(fs.statSync(`${a}/replica.key`).mode & 0o777).toBe(0o600);
    const { id_of_public_key } = await import("../../src/log/replica_key.ts");
    expect(id_of_public_key(Buffer.from(la.public_key, "hex"))).toBe(la.id);
    await la.close();
    await lb.close();
    fs.copyFileSync(`${b}/replica.key`, `${a}/replica.key`);
    await expect(Log.open({ dir: a })).rejects.toThrow(/does not belong to replica/);
    fs.rmSync(`${a}/replica.key`);
    await expect(Log.open({ dir: a })).rejects.toThrow(/replica.key is missing/);
    // A read-only open needs no key (status and verify next to a running replica that runs as another user).
    const reader = await Log.open({ dir: a, read_only: true });
    expect(reader.id).toBe(la.id);
    await reader.close();
  });

  test("a batch that fills a segment to the byte has room for every proof it makes, and the open range's", async () => {
    const { MemFileIO } = await import("../support/mem_file_io.ts");
    const { frame_size_bytes } = await import("../../src/log/frame.ts");
    const { own_batch_room_bytes } = await import("../../src/log/log_options.ts");
    const io = new MemFileIO();
    const segment_bytes = 1024 * 1024;
    const open = () => Log.open({ dir: "/d", io, segment_size_bytes: segment_bytes, sync: "always" });
    const log = await open();
    // An open range (staged, not yet signed), then a batch whose frames and the proofs reserve() counts for it fill the segment.
    log.append(new Uint8Array(1000).fill(1));
    const left = segment_bytes - log.bytes;
    let frames = left - 8;
    while (own_batch_room_bytes(frames) > left) frames -= 8;
    const payloads: Uint8Array[] = [];
    for (let rest = frames; rest > 0; ) {
      const frame = Math.min(rest, frame_size_bytes(50_000));
      payloads.push(new Uint8Array(frame - 40).fill(payloads.length + 2));
      rest -= frame;
    }
    expect(payloads.reduce((n, p) => n + frame_size_bytes(p.length), 0)).toBe(frames);
    log.append_batch(payloads);
    expect(log.segment_count).toBe(1);
    await log.close();
    const again = await open();
    expect(again.segment_count).toBe(1);
    expect(again.read(0, 100).map((e) => e.payload.length)).toEqual([1000, ...payloads.map((p) => p.length)]);
    expect(again.verify()).toMatchObject({ ok: true, events: payloads.length + 1 });
    await again.close();
  });

  test("an event of the largest payload is signed, survives a reopen with what follows, and travels to another log", async () => {
    const { payload_max_bytes } = await import("../../src/log/frame.ts");
    const dir = temp_dir();
    const log = await Log.open({ dir });
    const big = new Uint8Array(payload_max_bytes).fill(0x5a);
    await log.write(big);
    await log.write(enc("after"));
    const frames = new Uint8Array(Buffer.concat([...log.events_after(log.id, 0)].map((e) => e.frame)));
    await log.close();
    const again = await Log.open({ dir });
    expect(again.count).toBe(2);
    expect(again.get(again.id, 1)?.payload.length).toBe(payload_max_bytes);
    expect(again.verify().ok).toBe(true);
    const other = await Log.open({ dir: temp_dir() });
    expect(other.accept_frames(frames)).toEqual({ appended: 2, dropped: {} });
    await other.close();
    await again.close();
  });

  test("with trust_replicas set, only the listed origins' events are accepted, by id or by public key", async () => {
    const trusted = await Origin.open();
    const by_key = await Origin.open();
    const stranger = await Origin.open();
    const log = await Log.open({ dir: temp_dir(), trust_replicas: [trusted.id, by_key.log.public_key] });
    expect(log.accept_frames(trusted.write("a"))).toEqual({ appended: 1, dropped: {} });
    expect(log.accept_frames(by_key.write("b"))).toEqual({ appended: 1, dropped: {} });
    expect(log.accept_frames(stranger.write("c"))).toEqual({ appended: 0, dropped: { not_trusted: 1 } });
    expect(log.held(stranger.id)).toBe(0);
    await log.close();
    for (const o of [trusted, by_key, stranger]) await o.close();
  });

  test("get finds an event by id; events_after lists what a peer lacks", async () => {
    const log = await Log.open({ dir: temp_dir() });
    const other = await Origin.open();
    for (let i = 1; i <= 10; i++) {
      log.append(enc(`mine ${i}`));
      log.accept_frames(other.write(`theirs ${i}`));
    }
    expect(dec(log.get(log.id, 7)!.payload)).toBe("mine 7");
    expect(dec(log.get(other.id, 10)!.payload)).toBe("theirs 10");
    expect(log.get(other.id, 11)).toBeNull();
    expect(log.get("00000000000000bb", 1)).toBeNull();
    expect([...log.events_after(other.id, 7)].map((e) => e.seq)).toEqual([8, 9, 10]);
    expect([...log.events_after(other.id, 10)]).toEqual([]);
    await log.close();
    await other.close();
  });

  test("every sync mode makes appends durable and readable after reopen", async () => {
    for (const sync of ["always", "interval", "never"] as const) {
      const dir = temp_dir();
      const log = await Log.open({ dir, sync, sync_interval_ms: 5 });
      const first = log.append_batch([enc("a"), enc("b"), enc("c")]);
      expect(first).toBe(1);
      await log.durable();
      expect(log.durable_count).toBe(3);
      await log.close();
      const again = await Log.open({ dir, read_only: true });
      expect(again.count).toBe(3);
      await again.close();
    }
  });

  test("a second opener of the same directory gets DATA_DIR_LOCKED; read-only opens are allowed", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir });
    let err: unknown;
    try {
      await Log.open({ dir });
    } catch (e) {
      err = e;
    }
    expect(is_interlog_error(err, "DATA_DIR_LOCKED")).toBe(true);
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    log.append(enc("x"));
    await log.durable();
    const reader = await Log.open({ dir, read_only: true });
    expect(reader.count).toBe(1);
    expect(() => reader.append(enc("no"))).toThrow(/read-only/);
    await reader.close();
    await log.close();
  });

  test("payloads and batches that cannot fit are refused with nothing written", async () => {
    const log = await Log.open({ dir: temp_dir(), segment_size_bytes: small_segment_bytes });
    expect(() => log.append_batch([new Uint8Array(40_000), new Uint8Array(40_000)])).toThrow(/does not fit in one segment/);
    expect(() => log.append_batch([])).toThrow(/at least one payload/);
    expect(log.count).toBe(0);
    log.append(new Uint8Array(60_000));
    expect(log.count).toBe(1);
    await log.close();
  });

  test("empty payloads are events too", async () => {
    const log = await Log.open({ dir: temp_dir() });
    await log.write(new Uint8Array(0));
    expect(log.read(0)[0].payload.length).toBe(0);
    await log.close();
  });

  test("payloads bigger than the staging buffer round-trip", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir });
    const big = new Uint8Array(1_000_003).map((_, i) => i % 251);
    await log.write([enc("before"), big, enc("after")]);
    await log.close();
    const again = await Log.open({ dir });
    expect(again.read(0).map((e) => e.payload.length)).toEqual([6, 1_000_003, 5]);
    expect(again.read(1, 1)[0].payload).toEqual(big);
    expect(again.verify().ok).toBe(true);
    await again.close();
  });
});

describe("durable version vector", () => {
  test("durable_vv and durable_held move only when events become durable, for own and accepted events", async () => {
    const log = await Log.open({ dir: temp_dir(), sync: "always" });
    const origin = await Origin.open();
    const other = origin.id;
    const theirs = origin.write("theirs");
    await origin.close();
    log.append(enc("one"));
    await log.durable();
    log.append_batch([enc("two"), enc("three")]);
    log.accept_frames(theirs);
    expect(log.vv()).toEqual({ [log.id]: 3, [other]: 1 });
    expect(log.durable_held(log.id)).toBe(1);
    expect(log.durable_held(other)).toBe(0);
    expect(log.durable_vv()).toEqual(new Map([[log.id, 1]]));
    await log.durable();
    expect(log.durable_held(log.id)).toBe(3);
    expect(log.durable_vv()).toEqual(new Map([[log.id, 3], [other, 1]]));
    await log.close();
    const again = await Log.open({ dir: log.dir });
    expect(again.durable_vv()).toEqual(new Map([[log.id, 3], [other, 1]]));
    await again.close();
  });

  test("on_durable listeners hear of new durable events after the append returns, in every sync mode", async () => {
    for (const sync of ["always", "interval", "never"] as const) {
      const log = await Log.open({ dir: temp_dir(), sync });
      const seen: number[] = [];
      const off = log.on_durable(() => seen.push(log.durable_count));
      log.append_batch([enc("a"), enc("b")]);
      expect(seen).toEqual([]);
      await log.durable();
      await Promise.resolve();
      expect(seen.at(-1)).toBe(2);
      off();
      log.append(enc("c"));
      await log.durable();
      await Promise.resolve();
      expect(seen.at(-1)).toBe(2);
      await log.close();
    }
  });

  test("fsyncs run on the JS thread only while the disk answers in well under a millisecond", async () => {
    for (const slow_ms of [0, 3]) {
      const calls = { pool: 0, inline: 0 };
      const wait = (ms: number): void => {
        const until = performance.now() + ms;
        while (performance.now() < until) {}
      };
      const io: FileIO = {
        ...node_file_io,
        open(file): FileHandle {
          const h = node_file_io.open(file);
          return {
            write: (bytes, from, length, at) => h.write(bytes, from, length, at),
            // A disk that answers at once or after slow_ms, whatever this machine's disk does.
            sync: async () => {
              calls.pool++;
              if (slow_ms > 0) await Bun.sleep(slow_ms);
            },
            sync_now: () => {
              calls.inline++;
              wait(slow_ms);
            },
            close: () => h.close(),
          };
        },
      };
      const log = await Log.open({ dir: temp_dir(), sync: "always", io });
      for (let i = 0; i < 80; i++) await log.write(enc(`e${i}`));
      if (slow_ms === 0) expect(calls.inline).toBeGreaterThan(40);
      else expect(calls.inline).toBe(0);
      expect(log.held(log.id)).toBe(80);
      await log.close();
    }
  });
});
