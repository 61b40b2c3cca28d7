import { describe, expect, test } from "bun:test";
import { MemoryPageStore } from "../../src/browser/storage/memory_page_store.ts";
import { page_size_bytes } from "../../src/browser/storage/page_store.ts";
import { PagedFileIO } from "../../src/browser/storage/paged_file_io.ts";
import { type InterlogError, errno_code, is_interlog_error } from "../../src/lib/errors.ts";
import { Random } from "../../src/lib/random.ts";
import { Log, type LogOptions } from "../../src/log/log.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { for_seeds } from "../support/seeded.ts";

/**
 * The log of a browser replica on PagedFileIO, over a MemoryPageStore that
 * keeps what IndexedDB would: what was committed survives a closed tab,
 * nothing else. Everything goes through the public Log API, as a page's
 * code uses it.
 */
const dir = "/r";
const segment_size_bytes = 64 * 1024;

function open_log(io: PagedFileIO, options: Partial<LogOptions> = {}): Promise<Log> {
  return Log.open({ dir, io, segment_size_bytes, segment_retry_interval_ms: 0, ...options });
}

function payload(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seq * 31 + i) & 255;
  return bytes;
}

/** Lets the log's background work (its spare segment, summaries) finish: turns pass until no commit happens in three. */
async function settle(store: MemoryPageStore): Promise<void> {
  let quiet = 0;
  let seen = store.commits;
  while (quiet < 3) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    quiet = store.commits === seen ? quiet + 1 : 0;
    seen = store.commits;
  }
}

/** Every event of `origin` in `log`, checking seqs are dense from 1. */
function own_events(log: Log, origin: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const e of log.iterate(0)) {
    expect(e.origin).toBe(origin);
    expect(e.seq).toBe(out.length + 1);
    out.push(e.payload);
  }
  return out;
}

describe("a log on browser storage", () => {
  test("events appended across segment rotations read back in order from a fresh load of the store", async () => {
    const store = new MemoryPageStore();
    const log = await open_log(await PagedFileIO.open(store.session()));
    const written: Uint8Array[] = [];
    for (let batch = 0; batch < 40; batch++) {
      const payloads = Array.from({ length: 1 + (batch % 5) }, (_, i) => payload(written.length + i + 1, 500 + ((batch * 97 + i * 13) % 1500)));
      const first = log.append_batch(payloads);
      expect(first).toBe(written.length + 1);
      written.push(...payloads);
      await log.durable();
    }
    expect(log.segment_count).toBeGreaterThanOrEqual(3);
    await log.close();

    const again = await open_log(await PagedFileIO.open(store.session()));
    expect(again.id).toBe(log.id);
    expect(again.segment_count).toBe(log.segment_count);
    expect(own_events(again, log.id)).toEqual(written);
    expect(again.held(log.id)).toBe(written.length);
    expect(again.verify().ok).toBe(true);
    await again.close();
  });

  test("a closed tab keeps every acknowledged append; what was not acknowledged may go, and the log stays whole", async () => {
    await for_seeds(25, async (rng) => {
      const store = new MemoryPageStore();
      const acked = new Map<number, Uint8Array>();
      const written = new Map<number, Uint8Array>();
      let origin = "";
      for (let round = 0; round < 4; round++) {
        const timers = new ManualTimers();
        const log = await open_log(await PagedFileIO.open(store.session()), { sync: rng.pick(["always", "interval"] as const), sync_interval_ms: 1, timers });
        origin ||= log.id;
        expect(log.id).toBe(origin);
        // What survived is what was written, seqs dense from 1, every acknowledged event among it.
        const held = own_events(log, origin);
        held.forEach((p, i) => expect(p).toEqual(written.get(i + 1) as Uint8Array));
        for (const [seq, p] of acked) expect(log.get(origin, seq)?.payload).toEqual(p);
        expect(log.verify().ok).toBe(true);
        for (const seq of [...written.keys()]) if (seq > held.length) written.delete(seq);
        for (let step = rng.int(1, 40); step > 0; step--) {
          const n = rng.chance(0.3) ? rng.int(2, 6) : 1;
          const payloads = Array.from({ length: n }, () => rng.bytes(rng.int(0, rng.chance(0.1) ? 12_000 : 900)));
          const first = n === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
          payloads.forEach((p, i) => written.set(first + i, p));
          if (rng.chance(0.4)) {
            const durable = log.durable();
            timers.fire_every();
            await durable;
            payloads.forEach((p, i) => acked.set(first + i, p));
          }
          if (rng.chance(0.2)) await new Promise<void>((resolve) => setImmediate(resolve));
        }
        timers.cancel_all();
        // The tab closes mid-flight: transactions not yet complete land or not, as the browser had got on.
        store.crash(rng);
      }
      const last = await open_log(await PagedFileIO.open(store.session()));
      for (const [seq, p] of acked) expect(last.get(origin, seq)?.payload).toEqual(p);
      const seq = last.append(payload(1, 10));
      expect(seq).toBe(last.held(origin));
      await last.durable();
      await last.close();
      const reopened = await open_log(await PagedFileIO.open(store.session()));
      expect(reopened.get(origin, seq)?.payload).toEqual(payload(1, 10));
      expect(reopened.verify().ok).toBe(true);
      await reopened.close();
    });
  });

  test("appends of one turn are made durable by one store transaction", async () => {
    const store = new MemoryPageStore();
    const log = await open_log(await PagedFileIO.open(store.session()), { segment_size_bytes: 1024 * 1024 });
    await settle(store);
    const before = store.commits;
    for (let seq = 1; seq <= 100; seq++) log.append(payload(seq, 200));
    await log.durable();
    expect(store.commits - before).toBe(1);
    expect(log.durable_count).toBe(100);
    await log.close();
  });

  test("a rotation's group commit (the sealed segment, the new one, the rename and the directory sync) takes at most the spare's transaction besides its own", async () => {
    const store = new MemoryPageStore();
    const log = await open_log(await PagedFileIO.open(store.session()));
    await settle(store);
    const before = store.commits;
    // About 100 KiB: the 64 KiB active segment fills and the spare becomes the next one in this turn.
    for (let seq = 1; seq <= 100; seq++) log.append(payload(seq, 1000));
    expect(log.segment_count).toBe(2);
    await log.durable();
    // The log starts the next spare in the same turn, and creating a file commits at once: at most that one more.
    expect(store.commits - before).toBeLessThanOrEqual(2);
    await log.close();
    const again = await open_log(await PagedFileIO.open(store.session()));
    expect(again.count).toBe(100);
    await again.close();
  });

  test("a full quota fails the append's durability as a full disk, and nothing acknowledged before is lost", async () => {
    for (const failing of [1, 2, 5]) {
      const store = new MemoryPageStore();
      const warnings: string[] = [];
      const log = await open_log(await PagedFileIO.open(store.session()), { on_warning: (message) => warnings.push(message) });
      const acked = Array.from({ length: 20 }, (_, i) => payload(i + 1, 300));
      await log.write(acked.slice(0, 10));
      for (const p of acked.slice(10)) await log.write(p);
      await settle(store);

      store.fail_next_commits(failing);
      log.append(payload(99, 300));
      const err = await log.durable().then(
        () => null,
        (e: unknown) => e,
      );
      expect(is_interlog_error(err, "LOG_FAILED")).toBe(true);
      const failure = err as InterlogError;
      // The errno the log reports (ENOSPC: its disk-full case), and the cause says it is the browser's quota.
      expect(failure.details.code).toBe("ENOSPC");
      expect(failure.message).toContain("(ENOSPC)");
      expect(errno_code(failure.cause)).toBe("ENOSPC");
      expect(String((failure.cause as Error).message)).toContain("the browser's storage quota is full");
      expect(log.failed).not.toBeNull();
      expect(() => log.append(payload(100, 10))).toThrow();
      expect(warnings.some((w) => w.includes("ENOSPC"))).toBe(true);
      await log.close();

      // The quota has room again: a new tab finds every acknowledged event, and nothing it never confirmed.
      store.fail_next_commits(0);
      const again = await open_log(await PagedFileIO.open(store.session()));
      expect(own_events(again, log.id)).toEqual(acked);
      expect(again.verify().ok).toBe(true);
      await again.write(payload(21, 5));
      expect(again.held(log.id)).toBe(21);
      await again.close();
    }
  });

  test("no room for a new segment (capacity_bytes) gives LOG_FULL; the log stays readable and reopens whole", async () => {
    const store = new MemoryPageStore();
    const io = await PagedFileIO.open(store.session(), { capacity_bytes: 3 * segment_size_bytes });
    const log = await open_log(io);
    let appended = 0;
    let error: unknown = null;
    for (let i = 0; i < 10_000 && error === null; i++) {
      try {
        log.append(payload(i + 1, 2000));
        appended++;
      } catch (err) {
        error = err;
      }
      if (i % 10 === 0) await log.durable();
    }
    expect(is_interlog_error(error, "LOG_FULL")).toBe(true);
    expect((error as Error).message).toContain("free disk space and appends resume");
    await log.durable();
    expect(log.count).toBe(appended);
    await log.close();
    const again = await open_log(await PagedFileIO.open(store.session()));
    expect(again.count).toBe(appended);
    expect(again.verify().ok).toBe(true);
    await again.close();
  });
});

describe("PagedFileIO", () => {
  async function fresh(): Promise<{ store: MemoryPageStore; io: PagedFileIO }> {
    const store = new MemoryPageStore();
    const io = await PagedFileIO.open(store.session());
    io.mkdirp("/d");
    return { store, io };
  }

  test("a renamed spare's pages appear under its new name after a reload, and the rename moves no page", async () => {
    const { store, io } = await fresh();
    await io.create_zeroed("/d/spare", 4 * page_size_bytes);
    expect(store.page_count).toBe(0); // zeroed pages are not stored
    const handle = io.open("/d/spare");
    handle.write(payload(1, 5000), 0, 5000, page_size_bytes - 1000);
    await handle.sync();
    expect(store.page_count).toBe(2);
    io.rename("/d/spare", "/d/00000000000000000007.seg");
    // Written through the handle opened before the rename: the file, not the name.
    handle.write(payload(2, 10), 0, 10, 3 * page_size_bytes);
    await io.sync_dir("/d");
    expect(store.page_count).toBe(3);

    const again = await PagedFileIO.open(store.session());
    expect(again.exists("/d/spare")).toBe(false);
    expect(again.list("/d")).toEqual(["00000000000000000007.seg"]);
    const bytes = again.read_file("/d/00000000000000000007.seg") as Uint8Array;
    expect(bytes.length).toBe(4 * page_size_bytes);
    expect(bytes.subarray(page_size_bytes - 1000, page_size_bytes + 4000)).toEqual(payload(1, 5000));
    expect(bytes.subarray(3 * page_size_bytes, 3 * page_size_bytes + 10)).toEqual(payload(2, 10));
    expect(bytes.subarray(0, page_size_bytes - 1000).every((b) => b === 0)).toBe(true);
  });

  test("a rename or unlink not yet followed by a sync is undone by a closed tab; after one it holds", async () => {
    const { store, io } = await fresh();
    await io.write_file_atomic("/d/a", payload(1, 100));
    await io.write_file_atomic("/d/b", payload(2, 70_000));
    io.rename("/d/a", "/d/c");
    io.unlink("/d/b");
    store.crash();
    const undone = await PagedFileIO.open(store.session());
    expect(undone.read_file("/d/a")).toEqual(payload(1, 100));
    expect(undone.read_file("/d/b")).toEqual(payload(2, 70_000));
    expect(undone.exists("/d/c")).toBe(false);

    undone.rename("/d/a", "/d/b");
    await undone.sync_dir("/d");
    expect(store.page_count).toBe(1); // b's two pages went with it
    store.crash();
    const done = await PagedFileIO.open(store.session());
    expect(done.exists("/d/a")).toBe(false);
    expect(done.read_file("/d/b")).toEqual(payload(1, 100));
  });

  test("an unlinked file's pages never reach the store, even through a handle still open", async () => {
    const { store, io } = await fresh();
    await io.create_zeroed("/d/x", 2 * page_size_bytes);
    const handle = io.open("/d/x");
    handle.write(payload(1, 100), 0, 100, 0);
    await handle.sync();
    expect(store.page_count).toBe(1);
    io.unlink("/d/x");
    handle.write(payload(2, 100), 0, 100, page_size_bytes);
    await handle.sync();
    expect(store.page_count).toBe(0);
    const again = await PagedFileIO.open(store.session());
    expect(again.exists("/d/x")).toBe(false);
    expect(again.list("/d")).toEqual([]);
  });

  test("a mapping shows every write at once, and a committed page cannot change through the live buffer", async () => {
    const { store, io } = await fresh();
    await io.create_zeroed("/d/seg", page_size_bytes);
    const map = io.map("/d/seg");
    const handle = io.open("/d/seg");
    handle.write(payload(3, 8), 0, 8, 16);
    expect(map.subarray(16, 24)).toEqual(payload(3, 8));
    await handle.sync();
    map.fill(9); // not through a handle: no write the store is told of
    const again = await PagedFileIO.open(store.session());
    expect(again.map("/d/seg").subarray(16, 24)).toEqual(payload(3, 8));
    expect(again.map("/d/seg")[0]).toBe(0);
  });

  test("syncs and directory syncs of one turn share one transaction; a failed one is retried whole by the next", async () => {
    const { store, io } = await fresh();
    await io.create_zeroed("/d/1", page_size_bytes);
    await io.create_zeroed("/d/2", page_size_bytes);
    const before = store.commits;
    const one = io.open("/d/1");
    const two = io.open("/d/2");
    one.write(payload(1, 10), 0, 10, 0);
    two.write(payload(2, 10), 0, 10, 0);
    io.rename("/d/2", "/d/3");
    await Promise.all([one.sync(), two.sync(), io.sync_dir("/d")]);
    expect(store.commits - before).toBe(1);

    one.write(payload(4, 10), 0, 10, 0);
    store.fail_next_commits(1);
    const failed = await one.sync().then(
      () => null,
      (e: unknown) => e,
    );
    expect(errno_code(failed)).toBe("ENOSPC");
    expect((failed as Error).message).toContain("the browser's storage quota is full");
    // Nothing of the failed transaction landed; the next sync carries it.
    expect((await PagedFileIO.open(store.session())).read_file("/d/1")?.subarray(0, 10)).toEqual(payload(1, 10));
    await io.sync_dir("/d");
    const again = await PagedFileIO.open(store.session());
    expect(again.read_file("/d/1")?.subarray(0, 10)).toEqual(payload(4, 10));
    expect(again.read_file("/d/3")?.subarray(0, 10)).toEqual(payload(2, 10));
    expect(again.exists("/d/2")).toBe(false);
  });

  test("a transaction in flight when the tab closes lands whole or not at all", async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 16; seed++) {
      const { store, io } = await fresh();
      await io.write_file_atomic("/d/a", payload(1, 100));
      await io.create_zeroed("/d/b", 2 * page_size_bytes);
      const b = io.open("/d/b");
      b.write(payload(2, 100), 0, 100, page_size_bytes + 5);
      io.rename("/d/a", "/d/c");
      const sync = b.sync();
      await Promise.resolve(); // the commit started at the end of the turn: it is in flight now
      store.crash(new Random(seed));
      // The tab never learns how it ended.
      expect(await sync.then(() => "ok", (e: unknown) => errno_code(e))).toBe("EIO");
      const after = await PagedFileIO.open(store.session());
      const b_bytes = after.read_file("/d/b") as Uint8Array;
      const landed = after.exists("/d/c");
      expect(after.exists("/d/a")).toBe(!landed);
      expect(after.read_file(landed ? "/d/c" : "/d/a")).toEqual(payload(1, 100));
      expect(b_bytes.subarray(page_size_bytes + 5, page_size_bytes + 105)).toEqual(landed ? payload(2, 100) : new Uint8Array(100));
      outcomes.add(landed ? "landed" : "lost");
    }
    expect([...outcomes].sort()).toEqual(["landed", "lost"]);
  });

  test("the data directory lock is held once per page", async () => {
    const { io } = await fresh();
    const lock = io.lock("/d/lock");
    expect(() => io.lock("/d/lock")).toThrow(/in use/);
    lock.release();
    io.lock("/d/lock").release();
  });

  test("create_zeroed beyond capacity_bytes fails with ENOSPC and leaves no file", async () => {
    const store = new MemoryPageStore();
    const io = await PagedFileIO.open(store.session(), { capacity_bytes: 3 * page_size_bytes });
    io.mkdirp("/d");
    await io.create_zeroed("/d/a", 2 * page_size_bytes);
    expect(io.free_bytes("/d")).toBe(page_size_bytes);
    const err = await io.create_zeroed("/d/b", 2 * page_size_bytes).then(
      () => null,
      (e: unknown) => e,
    );
    expect(errno_code(err)).toBe("ENOSPC");
    expect(io.exists("/d/b")).toBe(false);
  });
});
