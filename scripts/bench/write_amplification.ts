/**
 * Write amplification in steady state with retention (issue 13, "No byte
 * written twice"): bytes written to the disk per payload byte appended, once
 * the budget is full and pruned segment files are recycled as spares. The
 * log is first filled in sync=never past several rotations so the files it
 * writes into are former segments, then reopened in the mode measured.
 *
 * Two counters, both printed: the block device's (/sys/dev/block/M:m/stat,
 * read after sync(1); the journal and any other process on the disk count
 * too) and this process's /proc/self/io write_bytes. The figure is the
 * device's when /sys has it: write_bytes counts a whole page-cache folio
 * each time a write dirties a clean one, and on kernels with large folios
 * (ext4 since Linux 6.16) rewriting a cached file in small fdatasynced
 * writes counts many times the bytes that reach the disk (measured here: a
 * raw 75 KB write + fdatasync loop over a file written before in 1 MiB
 * writes shows 14.8x in write_bytes and 1.09x at the device). Recycled
 * segments are exactly such files. The baseline is a raw preallocated file
 * written the same way (64 KiB write() calls for never; one write +
 * fdatasync per group of the same size for always), counted the same way.
 */
import fs from "node:fs";
import path from "node:path";
import { Log, type SyncMode, node_file_io, segment_size_default_bytes } from "../../src/index.ts";
import type { AckSource } from "../../src/log/retention.ts";
import { next_turn, yield_every_appends } from "./appender.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const payload_bytes = 256;
const segment_bytes = segment_size_default_bytes;
/** The budget: the active segment, two sealed ones and the spare. */
const budget_segments = 4;
/** Segments pruned (and their files recycled) before the measurement starts. */
const warm_pruned_segments = 3;
/** Segments appended while measuring. */
const measured_segments = 3;
/** sync=always: this many concurrent appenders, each awaiting an atomic batch of this many events. */
export const always_appenders = 16;
export const always_batch_events = 16;
const max_ratio = 1.25;
const raw_write_chunk_bytes = 64 * 1024;

/** Bytes this process has caused to be sent to storage (task I/O accounting, counted when pages are dirtied). */
export function process_write_bytes(): number {
  const m = /^write_bytes: (\d+)$/m.exec(fs.readFileSync("/proc/self/io", "utf8"));
  if (m === null) throw new Error("no write_bytes in /proc/self/io (a kernel without task I/O accounting)");
  return Number(m[1]);
}

/** Bytes the block device holding `dir` has written (every process, the journal too), or null when /sys does not say: a cross-check only. */
export function device_written_bytes(dir: string): number | null {
  const dev = fs.statSync(dir).dev;
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  try {
    const fields = fs.readFileSync(`/sys/dev/block/${major}:${minor}/stat`, "utf8").trim().split(/\s+/);
    return Number(fields[6]) * 512;
  } catch {
    return null;
  }
}

const fs_names: Record<number, string> = { 0xef53: "ext2/3/4", 0x58465342: "xfs", 0x9123683e: "btrfs", 0x01021994: "tmpfs", 0x2fc12fc1: "zfs", 0x794c7630: "overlayfs", 0xf2f52010: "f2fs" };

/** The file system type of `dir`, by its statfs magic. */
export function fs_type(dir: string): string {
  const type = Number(fs.statfsSync(dir).type);
  return fs_names[type] ?? `0x${type.toString(16)}`;
}

/**
 * How FileIO.create_zeroed makes a segment file on this disk right now: the
 * bytes it writes for one segment tell allocation (fallocate, ~0) from zeros
 * written (the whole file).
 */
export async function segment_creation_method(dir: string): Promise<string> {
  const file = path.join(dir, "creation-probe");
  const before = process_write_bytes();
  await node_file_io.create_zeroed(file, segment_bytes);
  const written = process_write_bytes() - before;
  fs.rmSync(file, { force: true });
  const how = written < segment_bytes / 16 ? "allocated without writing (fallocate)" : "zeros written";
  return `${how}: creating one ${segment_bytes / 2 ** 20} MiB segment file wrote ${(written / 2 ** 20).toFixed(2)} MiB`;
}

/** Everything anyone upstream could hold: every durable event is acknowledged at once. */
function acks_everything(log: Log): AckSource {
  return { upstreams_of: () => ["bench"], held_by: (_u, origin) => log.durable_held(origin), upstreams: () => ["bench"] };
}

interface Amplification {
  log_ratio: number;
  raw_ratio: number;
}

function open_retained(dir: string, sync: SyncMode): Promise<Log> {
  return Log.open({ dir, sync, segment_size_bytes: segment_bytes, retention: { max_bytes: budget_segments * segment_bytes, policy: "drop-acked", reserve_own_bytes: 0 } });
}

/** Appends 256 B payloads in sync=never until `done`, yielding like a server. */
async function fill_never(log: Log, pool: readonly Uint8Array[], done: () => boolean): Promise<number> {
  const mask = pool.length - 1;
  let n = 0;
  while (!done()) {
    for (let i = 0; i < yield_every_appends; i++) log.append(pool[n++ & mask]);
    await next_turn();
  }
  await log.durable();
  return n;
}

/** Concurrent appenders of atomic batches in sync=always until `done`; returns the events appended. */
async function fill_always(log: Log, pool: readonly Uint8Array[], done: () => boolean): Promise<number> {
  const mask = pool.length - 1;
  let n = 0;
  const loop = async (): Promise<void> => {
    const batch: Uint8Array[] = [];
    while (!done()) {
      batch.length = 0;
      for (let i = 0; i < always_batch_events; i++) batch.push(pool[n++ & mask]);
      log.append_batch(batch);
      await log.durable();
    }
  };
  await Promise.all(Array.from({ length: always_appenders }, loop));
  await log.durable();
  return n;
}

/** Bytes written by this process and, when /sys says, by the disk (after sync(1)), around `work`. */
async function counted(ctx: BenchContext, dir: string, work: () => Promise<void>): Promise<{ process_bytes: number; device_bytes: number | null }> {
  ctx.settle();
  const dev_before = device_written_bytes(dir);
  const before = process_write_bytes();
  await work();
  const process_bytes = process_write_bytes() - before;
  ctx.settle();
  const dev_after = device_written_bytes(dir);
  return { process_bytes, device_bytes: dev_before === null || dev_after === null ? null : dev_after - dev_before };
}

/** A raw preallocated file written as `sync` would write it (same group size), for `total_bytes` of payload. */
async function raw_written(ctx: BenchContext, sync: SyncMode, source: Uint8Array, total_bytes: number): Promise<{ process_bytes: number; device_bytes: number | null }> {
  const dir = ctx.fresh_dir(`wa-raw-${sync}`);
  const fd = fs.openSync(path.join(dir, "raw"), "w+");
  try {
    // Written and fsynced first, as a recycled segment is: the measured writes change no file size or extent.
    const zeros = new Uint8Array(1024 * 1024);
    for (let at = 0; at < total_bytes + zeros.length; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
    fs.fsyncSync(fd);
    const chunk = sync === "always" ? always_appenders * always_batch_events * payload_bytes : raw_write_chunk_bytes;
    return await counted(ctx, dir, async () => {
      let source_at = 0;
      for (let done = 0; done < total_bytes; ) {
        const n = Math.min(chunk, total_bytes - done, source.length - source_at);
        done += fs.writeSync(fd, source, source_at, n, done);
        source_at = (source_at + n) % source.length;
        if (sync === "always") fs.fdatasyncSync(fd);
      }
      fs.fdatasyncSync(fd);
    });
  } finally {
    fs.closeSync(fd);
    ctx.remove_dir(dir);
  }
}

async function amplification(ctx: BenchContext, sync: SyncMode): Promise<Amplification> {
  return ctx.shared(`write_amplification_${sync}`, async () => {
    const pool = payload_pool(payload_bytes);
    const dir = ctx.fresh_dir(`wa-${sync}`);
    try {
      const type = fs_type(dir);
      ctx.progress(`file system of ${dir}: ${type}${type === "tmpfs" ? " (NOT a disk: run with --dir on one)" : ""}`);
      ctx.progress(`segment files on this disk: ${await segment_creation_method(dir)}`);
      // Fill in sync=never until the budget is full and pruned files have been recycled a few times.
      let log = await open_retained(dir, "never");
      log.set_acks(acks_everything(log));
      const fill_before = process_write_bytes();
      const filled = await fill_never(log, pool, () => log.retention_status().pruned.segments >= warm_pruned_segments);
      const fill_ratio = (process_write_bytes() - fill_before) / (filled * payload_bytes);
      const pruned_before = log.retention_status().pruned.segments;
      ctx.progress(
        `filled ${filled} events (${((filled * payload_bytes) / 2 ** 20).toFixed(0)} MiB of payload) in sync=never: ${pruned_before} segments pruned, ` +
          `write_bytes per payload byte while filling (new segment files included) ${fill_ratio.toFixed(3)}`,
      );
      if (sync !== "never") {
        await log.close();
        log = await open_retained(dir, sync);
        log.set_acks(acks_everything(log));
        await log.maintain();
      }
      const stats_before = { fsyncs: log.stats.fsyncs, events: log.stats.appended_events };
      const rotations_start = log.retention_status().pruned.segments;
      const done = () => log.retention_status().pruned.segments >= rotations_start + measured_segments;
      let events = 0;
      let seconds = 0;
      const live = log;
      const measured = await counted(ctx, dir, async () => {
        const started = performance.now();
        events = sync === "never" ? await fill_never(live, pool, done) : await fill_always(live, pool, done);
        // The seal jobs (summaries) and the budget's job of the last rotation belong to the steady state too.
        await live.maintain();
        await live.durable();
        seconds = (performance.now() - started) / 1000;
      });
      const payload = events * payload_bytes;
      const cycles = log.stats.fsyncs - stats_before.fsyncs;
      const recycled = log.retention_status().pruned.segments - rotations_start;
      await log.close();
      const ratio_of = (c: { process_bytes: number; device_bytes: number | null }, bytes: number) => ({
        process: c.process_bytes / bytes,
        device: c.device_bytes === null ? null : c.device_bytes / bytes,
      });
      const log_r = ratio_of(measured, payload);
      ctx.progress(
        `measured: ${events} events (${(payload / 2 ** 20).toFixed(0)} MiB of payload) in ${seconds.toFixed(2)} s through ${recycled} rotations into recycled files` +
          `${sync === "always" ? `, ${cycles} fsync cycles (${(events / Math.max(1, cycles)).toFixed(0)} events each)` : ""}: ` +
          `per payload byte the block device wrote ${log_r.device?.toFixed(3) ?? "?"} (journal and other processes included), write_bytes counted ${log_r.process.toFixed(3)}; ` +
          `frames alone take ${((payload_bytes + 40) / payload_bytes).toFixed(3)}`,
      );
      const raw_bytes = Math.min(payload, 256 * 2 ** 20);
      const raw_r = ratio_of(await raw_written(ctx, sync, new Uint8Array(pool[0].buffer), raw_bytes), raw_bytes);
      ctx.progress(`raw preallocated file written the same way: device ${raw_r.device?.toFixed(3) ?? "?"}, write_bytes ${raw_r.process.toFixed(3)} per payload byte`);
      const log_ratio = log_r.device ?? log_r.process;
      const raw_ratio = log_r.device === null || raw_r.device === null ? raw_r.process : raw_r.device;
      return { log_ratio, raw_ratio };
    } finally {
      ctx.remove_dir(dir);
    }
  });
}

export const write_amplification_256b_never: Benchmark = {
  name: "write_amplification_256b_never",
  unit: "x",
  description:
    `bytes the block device wrote (else /proc/self/io write_bytes) per payload byte, 256 B appends, sync=never, steady state: ${budget_segments}-segment drop-acked budget, ` +
    `everything acknowledged, ${measured_segments} rotations into recycled files; baseline: a raw preallocated file written in 64 KiB write() calls`,
  target: { text: `<= ${max_ratio}`, met: (r) => r.value <= max_ratio },
  async run(ctx) {
    const a = await amplification(ctx, "never");
    return { value: a.log_ratio, baseline: a.raw_ratio, ratio: a.log_ratio / a.raw_ratio };
  },
};

export const write_amplification_256b_always: Benchmark = {
  name: "write_amplification_256b_always",
  unit: "x",
  description:
    `as write_amplification_256b_never in sync=always with ${always_appenders} concurrent appenders of ${always_batch_events}-event batches ` +
    `(group commit: up to ${always_appenders * always_batch_events} events per fsync); baseline: a raw preallocated file written in ${(always_appenders * always_batch_events * payload_bytes) / 1024} KiB write() + fdatasync steps`,
  target: { text: `<= ${max_ratio}`, met: (r) => r.value <= max_ratio },
  async run(ctx) {
    const a = await amplification(ctx, "always");
    return { value: a.log_ratio, baseline: a.raw_ratio, ratio: a.log_ratio / a.raw_ratio };
  },
};
