/**
 * What a new segment file costs (issue 13, "no byte written twice"): made by
 * fallocate(2), as the log does, against writing its zeros, as it did and
 * still does where the file system cannot allocate. Both ways end fsynced
 * (FileIO.create_zeroed). Then whether the allocated but unwritten blocks
 * cost the durable appends that fill them: ext4 and xfs keep them as
 * unwritten extents, and the first write to each block changes the extent
 * tree, which fdatasync must commit.
 */
import fs from "node:fs";
import path from "node:path";
import { segment_size_default_bytes } from "../../src/index.ts";
import { fallocate_available } from "../../src/log/fallocate.ts";
import { type ZeroFill, create_zeroed_file } from "../../src/log/file_io.ts";
import type { BenchContext } from "./context.ts";
import type { Benchmark } from "./types.ts";

const segment_bytes = segment_size_default_bytes;
const creates_measured = 5;
const append_bytes = 256;
/** 128 blocks of 4 KiB per file. */
const appends = 2048;
/**
 * The two files take turns in runs of this many appends (two 4 KiB blocks,
 * so each turn makes the same number of first writes into new blocks), and
 * the figure is the median over pairs of neighbouring turns: the disk's rate
 * here drifts by several times within seconds (a VM disk shared with other
 * work), and a slow spell then hits both sides of a pair.
 */
const appends_per_turn = 32;

const max_write_bytes_ratio = 0.01;
const min_append_ratio = 0.8;

/** Bytes this process has caused to be sent to storage (task I/O accounting, counted when pages are dirtied). */
function process_write_bytes(): number {
  const m = /^write_bytes: (\d+)$/m.exec(fs.readFileSync("/proc/self/io", "utf8"));
  if (m === null) throw new Error("no write_bytes in /proc/self/io (a kernel without task I/O accounting)");
  return Number(m[1]);
}

/**
 * Bytes the block device holding `dir` has written so far (every process, and
 * the journal too), or null when /sys does not say. Only a cross-check: other
 * work on the box counts as well.
 */
function device_written_bytes(dir: string): number | null {
  const dev = fs.statSync(dir).dev;
  // Linux's new_encode_dev: minor's low 8 bits, major, then minor's high bits.
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  try {
    const fields = fs.readFileSync(`/sys/dev/block/${major}:${minor}/stat`, "utf8").trim().split(/\s+/);
    return Number(fields[6]) * 512; // sectors written, in 512 B units whatever the device's sector size
  } catch {
    return null;
  }
}

const fs_names: Record<number, string> = {
  0xef53: "ext2/3/4",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x01021994: "tmpfs",
  0x2fc12fc1: "zfs",
  0x794c7630: "overlayfs",
  0xf2f52010: "f2fs",
};

function fs_type(dir: string): string {
  const type = Number(fs.statfsSync(dir).type);
  return fs_names[type] ?? `0x${type.toString(16)}`;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const list = (values: number[]): string => values.map((v) => v.toFixed(1)).join(" ");
const mib = (bytes: number | null): string => (bytes === null ? "?" : `${(bytes / 2 ** 20).toFixed(2)} MiB`);

interface CreateTimes {
  fallocate_ms: number;
  zeros_ms: number;
  /** This process's write_bytes over all creates of each kind. */
  fallocate_write_bytes: number;
  zeros_write_bytes: number;
}

interface AppendRates {
  fallocated_per_s: number;
  zeroed_per_s: number;
  /** Median over pairs of neighbouring turns of (fallocated rate / zeroed rate). */
  median_pair_ratio: number;
}

/** Checks the run is on a real disk that can allocate; a tmpfs or a fallback would measure something else. */
function check_disk(ctx: BenchContext, dir: string): void {
  const type = fs_type(dir);
  ctx.progress(`file system of ${dir}: ${type}${type === "tmpfs" ? " (NOT a disk: run with --dir on one)" : ""}`);
  if (!fallocate_available()) ctx.progress("fallocate is not available in this process: both ways write zeros");
}

function create_times(ctx: BenchContext): Promise<CreateTimes> {
  return ctx.shared("segment_create", async () => {
    const dir = ctx.fresh_dir("segment-create");
    try {
      check_disk(ctx, dir);
      const ms: Record<ZeroFill, number[]> = { allocate: [], write: [] };
      const written: Record<ZeroFill, number> = { allocate: 0, write: 0 };
      const device: Record<ZeroFill, number | null> = { allocate: 0, write: 0 };
      const create = async (fill: ZeroFill, i: number): Promise<void> => {
        const file = path.join(dir, `${fill}-${i}`);
        ctx.settle();
        const dev_before = device_written_bytes(dir);
        const before = process_write_bytes();
        const started = performance.now();
        await create_zeroed_file(file, segment_bytes, undefined, fill);
        const elapsed = performance.now() - started;
        written[fill] += process_write_bytes() - before;
        ctx.settle(); // the journal commit and any writeback the create left land in its count
        const dev_after = device_written_bytes(dir);
        const d = device[fill];
        device[fill] = d === null || dev_before === null || dev_after === null ? null : d + (dev_after - dev_before);
        if (i > 0) ms[fill].push(elapsed); // the first of each warms up the JIT and the file system's allocator
        fs.rmSync(file);
      };
      for (let i = 0; i <= creates_measured; i++) {
        // Alternating which goes first, so neither always follows the other's deletion.
        const order: ZeroFill[] = i % 2 === 0 ? ["allocate", "write"] : ["write", "allocate"];
        for (const fill of order) await create(fill, i);
      }
      const times: CreateTimes = {
        fallocate_ms: median(ms.allocate),
        zeros_ms: median(ms.write),
        fallocate_write_bytes: written.allocate,
        zeros_write_bytes: written.write,
      };
      const rounds = creates_measured + 1;
      ctx.progress(
        `${rounds} creates of ${mib(segment_bytes)} each (first not timed): fallocate + fsync median ${times.fallocate_ms.toFixed(1)} ms (${list(ms.allocate)}), ` +
          `writing zeros + fsync median ${times.zeros_ms.toFixed(1)} ms (${list(ms.write)})`,
      );
      ctx.progress(
        `bytes written, all ${rounds} creates: this process's write_bytes ${mib(times.fallocate_write_bytes)} by fallocate, ${mib(times.zeros_write_bytes)} by zeros; ` +
          `the device, journal and other processes included: ${mib(device.allocate)} vs ${mib(device.write)}`,
      );
      return times;
    } finally {
      ctx.remove_dir(dir);
    }
  });
}

/**
 * 256 B records appended one at a time, each written (pwrite) and
 * fdatasynced before the next, into a fallocated file and a zero-written one
 * in turns. Raw file calls, no log: only the files differ.
 */
function append_rates(ctx: BenchContext): Promise<AppendRates> {
  return ctx.shared("segment_create_appends", async () => {
    const dir = ctx.fresh_dir("segment-appends");
    try {
      check_disk(ctx, dir);
      const files: Record<ZeroFill, string> = { allocate: path.join(dir, "fallocated"), write: path.join(dir, "zeroed") };
      await create_zeroed_file(files.allocate, segment_bytes, undefined, "allocate");
      await create_zeroed_file(files.write, segment_bytes, undefined, "write");
      ctx.settle();
      const record = new Uint8Array(append_bytes).fill(0x5a);
      const fds: Record<ZeroFill, number> = { allocate: fs.openSync(files.allocate, "r+"), write: fs.openSync(files.write, "r+") };
      const at: Record<ZeroFill, number> = { allocate: 0, write: 0 };
      const seconds: Record<ZeroFill, number> = { allocate: 0, write: 0 };
      const device: Record<ZeroFill, number | null> = { allocate: 0, write: 0 };
      /** Runs one turn; returns its seconds. */
      const turn = (fill: ZeroFill): number => {
        const fd = fds[fill];
        const dev_before = device_written_bytes(dir);
        const started = performance.now();
        for (let i = 0; i < appends_per_turn; i++) {
          fs.writeSync(fd, record, 0, append_bytes, at[fill]);
          fs.fdatasyncSync(fd);
          at[fill] += append_bytes;
        }
        const turn_s = (performance.now() - started) / 1000;
        seconds[fill] += turn_s;
        const dev_after = device_written_bytes(dir);
        const d = device[fill];
        device[fill] = d === null || dev_before === null || dev_after === null ? null : d + (dev_after - dev_before);
        return turn_s;
      };
      const pair_ratios: number[] = [];
      try {
        for (let done = 0; done < appends; done += appends_per_turn) {
          const order: ZeroFill[] = (done / appends_per_turn) % 2 === 0 ? ["allocate", "write"] : ["write", "allocate"];
          const s: Record<ZeroFill, number> = { allocate: 0, write: 0 };
          for (const fill of order) s[fill] = turn(fill);
          pair_ratios.push(s.write / s.allocate); // equal appends per turn: the ratio of rates
        }
      } finally {
        fs.closeSync(fds.allocate);
        fs.closeSync(fds.write);
      }
      const rates: AppendRates = {
        fallocated_per_s: appends / seconds.allocate,
        zeroed_per_s: appends / seconds.write,
        median_pair_ratio: median(pair_ratios),
      };
      const per_append = (bytes: number | null): string => (bytes === null ? "?" : `${(bytes / appends / 1024).toFixed(1)} KiB`);
      ctx.progress(
        `${appends} appends of ${append_bytes} B, write + fdatasync each, in turns of ${appends_per_turn}: ` +
          `fallocated file ${rates.fallocated_per_s.toFixed(0)}/s, zero-written file ${rates.zeroed_per_s.toFixed(0)}/s ` +
          `(overall ${(rates.fallocated_per_s / rates.zeroed_per_s).toFixed(3)}x, median of ${pair_ratios.length} pairs of turns ${rates.median_pair_ratio.toFixed(3)}x); ` +
          `device bytes written per append (journal and other processes included): ${per_append(device.allocate)} vs ${per_append(device.write)}`,
      );
      return rates;
    } finally {
      ctx.remove_dir(dir);
    }
  });
}

const create_what = `creating a ${segment_bytes / 2 ** 20} MiB segment file (open, allocate, fsync) on the run's disk, median of ${creates_measured}`;

export const segment_create_fallocate_ms: Benchmark = {
  name: "segment_create_fallocate_ms",
  unit: "ms",
  description: `${create_what}, by fallocate(2) as the log does; baseline: by writing its zeros, alternating with it`,
  async run(ctx) {
    const t = await create_times(ctx);
    return { value: t.fallocate_ms, baseline: t.zeros_ms, ratio: t.fallocate_ms / t.zeros_ms };
  },
};

export const segment_create_zeros_ms: Benchmark = {
  name: "segment_create_zeros_ms",
  unit: "ms",
  description: `${create_what}, by writing its zeros (the fallback where the file system cannot allocate)`,
  async run(ctx) {
    const t = await create_times(ctx);
    return { value: t.zeros_ms, baseline: null, ratio: null };
  },
};

export const segment_create_write_bytes_ratio: Benchmark = {
  name: "segment_create_write_bytes_ratio",
  unit: "x",
  description: "bytes the process sent to the disk (/proc/self/io write_bytes) creating segment files by fallocate / by writing zeros",
  target: { text: `<= ${max_write_bytes_ratio}`, met: (r) => r.value <= max_write_bytes_ratio },
  async run(ctx) {
    const t = await create_times(ctx);
    return { value: t.fallocate_write_bytes / t.zeros_write_bytes, baseline: null, ratio: null };
  },
};

/** Named under segment_create_ so `--filter segment_create` runs it with the others. */
export const segment_create_append_durable_fallocated_vs_zeroed_ratio: Benchmark = {
  name: "segment_create_append_durable_fallocated_vs_zeroed_ratio",
  unit: "x",
  description:
    `durable appends (${append_bytes} B write + fdatasync each, ${appends} per file) into a fallocated file / into a zero-written one, ` +
    `in turns of ${appends_per_turn}, median over pairs of turns: the cost of first writes to unwritten extents`,
  target: { text: `>= ${min_append_ratio}`, met: (r) => r.value >= min_append_ratio },
  async run(ctx) {
    const r = await append_rates(ctx);
    return { value: r.median_pair_ratio, baseline: null, ratio: null };
  },
};
