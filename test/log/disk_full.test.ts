import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { is_interlog_error } from "../../src/lib/errors.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { temp_dir } from "../support/temp_dir.ts";

const segment_size_bytes = 1024 * 1024;
const payload = new Uint8Array(4000).fill(42);

/** Appends until LOG_FULL (bounded), yielding like a server so spares get prepared. */
async function fill(log: Log): Promise<unknown> {
  for (let i = 0; i < 100_000; i++) {
    try {
      log.append(payload);
    } catch (err) {
      return err;
    }
    if (i % 50 === 0) await log.durable();
  }
  throw new Error("the disk never filled");
}

async function check_full_then_resume(log: Log, free_space: () => void, reopen: () => Promise<Log>): Promise<void> {
  const err = await fill(log);
  expect(is_interlog_error(err, "LOG_FULL")).toBe(true);
  expect((err as Error).message).toContain("free disk space and appends resume");
  const count = log.count;
  expect(() => log.append(payload)).toThrow(/log is full/);
  expect(log.count).toBe(count); // nothing was written by the failed appends
  await log.durable();
  expect(log.read(0, 100_000).length).toBe(count);
  expect(log.verify().ok).toBe(true);

  free_space();
  for (let i = 0; i < 300; i++) log.append(payload); // needs at least one new segment
  await log.durable();
  expect(log.count).toBe(count + 300);
  await log.close();
  const again = await reopen();
  expect(again.count).toBe(count + 300);
  expect(again.verify().ok).toBe(true);
  await again.close();
}

describe("disk full", () => {
  test("on a real size-limited filesystem: LOG_FULL, the log stays readable, appends resume after space is freed", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test mounts a tmpfs and must run as root (CI does)");
    const mount_point = temp_dir("interlog-tmpfs-");
    const mounted = spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mount_point]);
    if (mounted.exitCode !== 0) throw new Error(`mount failed: ${mounted.stderr.toString()}`);
    try {
      const filler = path.join(mount_point, "filler");
      fs.writeFileSync(filler, new Uint8Array(3 * 1024 * 1024));
      const dir = path.join(mount_point, "data");
      const log = await Log.open({ dir, segment_size_bytes, segment_retry_interval_ms: 0 });
      await check_full_then_resume(
        log,
        () => fs.rmSync(filler),
        () => Log.open({ dir, segment_size_bytes }),
      );
    } finally {
      spawnSync(["umount", "-l", mount_point]);
    }
  });

  test("through the injected file interface, with retries rate-limited by the clock", async () => {
    const io = new MemFileIO();
    io.capacity_bytes = 5 * segment_size_bytes;
    let now = 1_000_000;
    const log = await Log.open({ dir: "/mem/d", io, segment_size_bytes, segment_retry_interval_ms: 1000, clock: { now_ms: () => now } });
    await check_full_then_resume(
      log,
      () => {
        io.capacity_bytes = 20 * segment_size_bytes;
        now += 1000; // the next attempt is allowed once the retry interval has passed
      },
      () => Log.open({ dir: "/mem/d", io, segment_size_bytes }),
    );
  });
});
