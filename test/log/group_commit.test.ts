import { describe, expect, test } from "bun:test";
import type { FileHandle } from "../../src/log/file_io.ts";
import { GroupCommit, type LogStats } from "../../src/log/group_commit.ts";
import type { SyncMode } from "../../src/log/log_options.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";

/** A handle that counts fdatasyncs and can be told to fail them. */
class CountingHandle implements FileHandle {
  syncs = 0;
  fail_sync: Error | null = null;
  closed = false;
  write(): void {}
  async sync(): Promise<void> {
    this.syncs++;
    if (this.fail_sync !== null) throw this.fail_sync;
  }
  close(): void {
    this.closed = true;
  }
}

function setup(mode: SyncMode) {
  const timers = new ManualTimers({ soon: "manual" });
  const stats: LogStats = { appends: 0, appended_events: 0, appended_bytes: 0, fsyncs: 0, fsync_seconds_total: 0, fsync_latencies_s: [] };
  const handle = new CountingHandle();
  let flushes = 0;
  const warnings: string[] = [];
  const failed_at: number[] = [];
  const commit = new GroupCommit({
    mode,
    sync_interval_ms: 10,
    read_only: false,
    io: new MemFileIO(),
    segments_dir: "/data/segments",
    timers,
    stats,
    next_pos: 0,
    flush_staged: () => {
      flushes++;
      commit.wrote(handle);
    },
    on_warning: (message) => warnings.push(message),
    on_failed: (durable_pos) => failed_at.push(durable_pos),
  });
  return { commit, timers, stats, handle, warnings, failed_at, flushes: () => flushes };
}

/** Lets scheduled work and the fsync promises it starts run to the end. */
async function settle(timers: ManualTimers): Promise<void> {
  for (let i = 0; i < 10; i++) {
    timers.run_soon();
    await Bun.sleep(0);
  }
}

describe("group commit", () => {
  test("appends of one turn share one fsync, and everyone waiting is released by it", async () => {
    const { commit, timers, handle } = setup("always");
    const waits: Promise<void>[] = [];
    for (let pos = 1; pos <= 5; pos++) {
      commit.committed(pos);
      waits.push(commit.durable(pos));
    }
    expect(commit.durable_count).toBe(0);
    await settle(timers);
    await Promise.all(waits);
    expect(handle.syncs).toBe(1);
    expect(commit.durable_count).toBe(5);
  });

  test("in never mode a flush is durability: no fsync, waiters released once handed to the OS", async () => {
    const { commit, timers, handle, flushes } = setup("never");
    commit.committed(3);
    const wait = commit.durable(3);
    await settle(timers);
    await wait;
    expect(flushes()).toBeGreaterThan(0);
    expect(handle.syncs).toBe(0);
    expect(commit.durable_count).toBe(3);
  });

  test("in interval mode nothing is fsynced until the timer fires", async () => {
    const { commit, timers, handle } = setup("interval");
    commit.committed(2);
    let released = false;
    const wait = commit.durable(2).then(() => (released = true));
    await settle(timers);
    expect(released).toBe(false);
    expect(handle.syncs).toBe(0);
    timers.advance_ms(10);
    await settle(timers);
    await wait;
    expect(handle.syncs).toBe(1);
  });

  test("a failed fsync stops the log: waiters get LOG_FAILED, and so does every later wait", async () => {
    const { commit, timers, handle, warnings, failed_at } = setup("always");
    commit.committed(1);
    await settle(timers);
    expect(commit.durable_count).toBe(1);
    handle.fail_sync = Object.assign(new Error("I/O error"), { code: "EIO" });
    commit.committed(2);
    const outcome = commit.durable(2).then(
      () => null,
      (err: unknown) => err,
    );
    await settle(timers);
    expect(await outcome).toMatchObject({ code: "LOG_FAILED" });
    expect(commit.failed?.code).toBe("LOG_FAILED");
    expect(commit.durable_count).toBe(1);
    // The log is told the last position it made durable, to record for the next start.
    expect(failed_at).toEqual([1]);
    await expect(commit.durable(2)).rejects.toMatchObject({ code: "LOG_FAILED" });
    expect(warnings.some((w) => w.includes("EIO"))).toBe(true);
  });

  test("a retired segment's handle is fsynced once more and then closed", async () => {
    const { commit, timers } = setup("always");
    const old = new CountingHandle();
    commit.retire(old);
    await settle(timers);
    expect(old.syncs).toBe(1);
    expect(old.closed).toBe(true);
  });

  test("the durable position never passes the visible one, and never goes back", async () => {
    const { commit, timers } = setup("always");
    commit.committed(4);
    await settle(timers);
    expect(commit.durable_count).toBe(4);
    expect(() => commit.committed(3)).toThrow("the visible position only grows");
    expect(commit.durable_count).toBe(4);
  });

  test("stop rejects whoever still waits with LOG_CLOSED", async () => {
    const { commit } = setup("interval");
    commit.committed(1);
    const wait = commit.durable(1);
    commit.stop();
    await expect(wait).rejects.toMatchObject({ code: "LOG_CLOSED" });
  });
});
