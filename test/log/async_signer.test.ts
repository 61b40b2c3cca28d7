import { describe, expect, test } from "bun:test";
import type { Random } from "../../src/lib/random.ts";
import { MemoryPageStore } from "../../src/browser/storage/memory_page_store.ts";
import { PagedFileIO } from "../../src/browser/storage/paged_file_io.ts";
import { Log, type SyncMode } from "../../src/log/log.ts";
import { ReplicaKey } from "../../src/log/replica_key.ts";
import type { Signer } from "../../src/log/signer.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { for_seeds } from "../support/seeded.ts";

/**
 * A key that signs asynchronously, as a browser tab's WebCrypto key does:
 * each signature comes a seeded while later (a microtask, or a few ms), or
 * waits until release() when held.
 */
class AsyncSigner implements Signer {
  readonly asynchronous = true;
  readonly id: string;
  readonly public_key: Uint8Array;
  readonly public_key_hex: string;
  held = false;
  signed = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly key: ReplicaKey,
    private readonly rng: Random,
  ) {
    this.id = key.id;
    this.public_key = key.public_key;
    this.public_key_hex = key.public_key_hex;
  }
  async sign(message: Uint8Array): Promise<Uint8Array> {
    const signature = this.key.sign(message);
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else if (this.rng.chance(0.5)) await Bun.sleep(this.rng.int(0, 3));
    this.signed++;
    return signature;
  }
  release(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

const dir = "/mem/data";
// Room for frames bigger than the staging buffer (256 KiB), which go straight to the file with their proof.
const segment_size_bytes = 1024 * 1024;

describe("a key that signs asynchronously (a browser's)", () => {
  test("an append is acknowledged only once its range's signature is in the file; every acknowledged event survives power cuts, signed", async () => {
    await for_seeds(25, async (rng) => {
      const io = new MemFileIO();
      const signer = new AsyncSigner(ReplicaKey.generate((b) => b.set(rng.bytes(b.length))).key, rng);
      const acked = new Map<number, Uint8Array>();
      for (let round = 0; round < 4; round++) {
        const timers = new ManualTimers();
        const sync: SyncMode = rng.pick(["always", "interval"] as const);
        const log = await Log.open({ dir, io: io.session(), segment_size_bytes, sync, sync_interval_ms: 1, timers, signer });
        expect(log.id).toBe(signer.id);
        for (const [seq, payload] of acked) expect(log.get(signer.id, seq)?.payload).toEqual(payload);
        expect(log.verify().ok).toBe(true);
        const held = log.held(signer.id);
        if (held > 0) expect(log.get(signer.id, held)?.signed).toBe(true);
        for (let step = rng.int(1, 40); step > 0; step--) {
          const n = rng.chance(0.3) ? rng.int(2, 8) : 1;
          const big = rng.chance(0.05 * n) ? rng.int(0, n - 1) : -1;
          const payloads = Array.from({ length: n }, (_, i) => rng.bytes(i === big ? rng.int(260_000, 300_000) : rng.int(0, 700)));
          const first = n === 1 ? log.append(payloads[0]) : log.append_batch(payloads);
          if (rng.chance(0.4)) {
            const durable = log.durable();
            timers.fire_every();
            await durable;
            payloads.forEach((p, i) => acked.set(first + i, p));
          }
        }
        timers.cancel_all();
        io.power_cut(rng);
      }
      const last = await Log.open({ dir, io: io.session(), segment_size_bytes, signer });
      for (const [seq, payload] of acked) expect(last.get(signer.id, seq)?.payload).toEqual(payload);
      expect(last.verify().ok).toBe(true);
      await last.close();
    });
  });

  test("while a signature is outstanding the event is not durable; when it comes, it is, and the log verifies after reopen", async () => {
    await for_seeds(1, async (rng) => {
      const io = new MemFileIO();
      const signer = new AsyncSigner(ReplicaKey.generate((b) => b.set(rng.bytes(b.length))).key, rng);
      const log = await Log.open({ dir, io: io.session(), segment_size_bytes, signer });
      signer.held = true;
      log.append_batch([new TextEncoder().encode("a"), new TextEncoder().encode("b")]);
      let durable = false;
      const done = log.durable().then(() => {
        durable = true;
      });
      await Bun.sleep(20);
      expect(durable).toBe(false);
      expect(log.durable_count).toBe(0);
      signer.release();
      await done;
      expect(log.durable_count).toBe(2);
      await log.close();
      const again = await Log.open({ dir, io: io.session(), segment_size_bytes, signer });
      expect(again.read(0, 10).map((e) => new TextDecoder().decode(e.payload))).toEqual(["a", "b"]);
      expect(again.verify().ok).toBe(true);
      await again.close();
    });
  });

  test("a signature that comes after its segment was sealed and retired still lands: the handle stays open until an fsync covers it", async () => {
    const { Random } = await import("../../src/lib/random.ts");
    const io = await PagedFileIO.open(new MemoryPageStore().session());
    const signer = new AsyncSigner(ReplicaKey.generate((b) => b.fill(7)).key, new Random(5));
    const timers = new ManualTimers({ soon: "manual" });
    const warnings: string[] = [];
    const log = await Log.open({ dir: "/r", io, signer, segment_size_bytes: 64 * 1024, timers, segment_retry_interval_ms: 0, on_warning: (m) => warnings.push(m) });
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    for (let i = 0; i < 5; i++) await turn();
    signer.held = true;
    log.append(new Uint8Array(100));
    const first = log.durable();
    timers.run_soon(); // a group commit: flush, seal (its signature held), wait for it
    await turn();
    // Meanwhile the segment fills and rotates: its last range's signature is asked for, and the handle retired.
    for (let before = log.segment_count; log.segment_count === before; ) log.append(new Uint8Array(1000));
    signer.release();
    for (let i = 0; i < 10; i++) {
      await turn();
      timers.run_soon();
    }
    await first;
    signer.held = false;
    signer.release();
    let durable = false;
    const all = log.durable().then(() => void (durable = true));
    // Signatures take a few ms (AsyncSigner): run the group commits as they come, for at most 5 s.
    for (let i = 0; i < 5000 && !durable; i++) {
      await Bun.sleep(1);
      timers.run_soon();
    }
    await all;
    expect(log.failed).toBeNull();
    expect(warnings).toEqual([]);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  test("a replica with an asynchronous key refuses sync never, and a data directory refuses another replica's key", async () => {
    const io = new MemFileIO();
    const rng_key = (fill: number) => ReplicaKey.generate((b) => b.fill(fill)).key;
    const { Random } = await import("../../src/lib/random.ts");
    const signer = new AsyncSigner(rng_key(3), new Random(1));
    await expect(Log.open({ dir, io: io.session(), segment_size_bytes, signer, sync: "never" })).rejects.toThrow(/never/);
    const log = await Log.open({ dir, io: io.session(), segment_size_bytes, signer });
    expect(io.session().exists(`${dir}/replica.key`)).toBe(false);
    await log.close();
    const other = new AsyncSigner(rng_key(4), new Random(1));
    await expect(Log.open({ dir, io: io.session(), segment_size_bytes, signer: other })).rejects.toThrow(/not to this key's replica/);
  });
});
