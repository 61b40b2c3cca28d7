import fs from "node:fs";
import path from "node:path";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import { BenchBroker } from "./sync_broker.ts";
import { type CpuChildReport, SharedCounters, counter_slots, report_file } from "./sync_cpu_counters.ts";
import { events_per_message, sync_batch_events, sync_inflight_max, sync_payload_bytes, sync_run_to, sync_window_events } from "./sync_load.ts";
import { raw_publish, raw_topic } from "./sync_raw_mqtt.ts";
import { BenchReplica, until } from "./sync_replica.ts";

export const cpu_events = 200_000;
const rounds = 3;
const child_timeout_ms = 120_000;
const child_script = new URL("./sync_cpu_child.ts", import.meta.url).pathname;

/** CPU seconds per million events of one process. */
export interface SideCpu {
  user_s: number;
  system_s: number;
}

export function total_s(c: SideCpu): number {
  return c.user_s + c.system_s;
}

export interface SyncCpu {
  /** Each side's lowest of the rounds, and the lowest round total (both sides of one round). */
  sender: SideCpu;
  receiver: SideCpu;
  total_s: number;
  raw_publisher: SideCpu;
  raw_subscriber: SideCpu;
  raw_total_s: number;
}

interface Round {
  sender: SideCpu;
  receiver: SideCpu;
  broker: SideCpu | null;
  events_per_s: number;
  details: string;
}

/**
 * CPU time per million 256 B events synced, on each side separately: the
 * sender (replica A, with the load that appends to it) in this process, the
 * receiver (replica B) in a child process, each measured by its own
 * process.cpuUsage from the start of the load until it holds every event
 * durably (A: until it sees B holding them; B: until they are durable
 * there). The same load as sync_256b_events_per_s (batches of 1000,
 * sync=always on both, at most 16k events ahead of B). Baseline: raw
 * mqtt.js QoS 1 moving the same payloads, publisher here and subscriber in
 * a child process, the same way. Rounds alternate raw and ours; the lowest
 * of each side counts. The broker's CPU is printed too.
 */
export function sync_cpu(ctx: BenchContext): Promise<SyncCpu> {
  return ctx.shared("sync_cpu", async () => {
    const pool = payload_pool(sync_payload_bytes);
    const broker = await BenchBroker.start();
    const ours: Round[] = [];
    const raws: Round[] = [];
    try {
      for (let round = 1; round <= rounds; round++) {
        ctx.settle();
        const raw = await raw_round(ctx, broker, pool);
        raws.push(raw);
        ctx.progress(`raw mqtt.js round ${round}: ${describe(raw, "publisher", "subscriber")}`);
        ctx.settle();
        const sync = await sync_round(ctx, broker, pool);
        ours.push(sync);
        ctx.progress(`sync round ${round}: ${describe(sync, "A (sender)", "B (receiver)")}`);
      }
    } finally {
      await broker.stop();
    }
    const lowest = (rs: Round[], side: "sender" | "receiver"): SideCpu => rs.map((r) => r[side]).reduce((a, b) => (total_s(b) < total_s(a) ? b : a));
    const lowest_total = (rs: Round[]): number => Math.min(...rs.map((r) => total_s(r.sender) + total_s(r.receiver)));
    return {
      sender: lowest(ours, "sender"),
      receiver: lowest(ours, "receiver"),
      total_s: lowest_total(ours),
      raw_publisher: lowest(raws, "sender"),
      raw_subscriber: lowest(raws, "receiver"),
      raw_total_s: lowest_total(raws),
    };
  });
}

function describe(r: Round, sender: string, receiver: string): string {
  const side = (c: SideCpu): string => `${total_s(c).toFixed(2)} s (${c.user_s.toFixed(2)} user + ${c.system_s.toFixed(2)} sys)`;
  const broker = r.broker === null ? "" : `; broker ${side(r.broker)}`;
  return `${(r.events_per_s / 1e3).toFixed(0)} k events/s; CPU per 1M events: ${sender} ${side(r.sender)}, ${receiver} ${side(r.receiver)}${broker}${r.details === "" ? "" : `; ${r.details}`}`;
}

async function sync_round(ctx: BenchContext, broker: BenchBroker, pool: readonly Uint8Array[]): Promise<Round> {
  const dir_a = ctx.fresh_dir("cpu-a");
  const dir_b = ctx.fresh_dir("cpu-b");
  const counter_file = path.join(dir_a, "..", `${path.basename(dir_a)}.counters`);
  SharedCounters.create(counter_file);
  const counters = SharedCounters.open(counter_file);
  const child = ChildProcess.spawn(["replica", broker.url, counter_file, String(cpu_events), dir_b], counters, counter_file);
  let a: BenchReplica | null = null;
  try {
    const ready = (await child.ready()) as { id: string };
    a = await BenchReplica.open(dir_a, broker.url, "a");
    const opened = a;
    opened.start();
    await until(
      () => opened.sees([]) && opened.rep.status(Date.now()).peers.some((p) => p.id === ready.id) && counters.get(counter_slots.peers) >= 1,
      () => `the replicas did not see each other: ${opened.warnings.join("; ")}`,
      10_000,
    );
    await child.go();
    const a_before = process.cpuUsage();
    const broker_before = process_cpu(broker.pid);
    const run = await sync_run_to(opened, () => counters.get(counter_slots.held), pool, cpu_events, sync_window_events, () => `child: ${child.stderr_tail()}`);
    const a_cpu = process.cpuUsage(a_before);
    const broker_after = process_cpu(broker.pid);
    const b_report = (await child.report()) as CpuChildReport;
    const s = opened.log.stats;
    return {
      details: `A: ${s.fsyncs} fsyncs (mean ${((s.fsync_seconds_total / Math.max(1, s.fsyncs)) * 1000).toFixed(1)} ms), ${opened.rep.counters.messages_out.events} event messages; ${b_report.details}`,
      sender: per_1m(a_cpu.user, a_cpu.system),
      receiver: per_1m(b_report.user_us, b_report.system_us),
      broker: broker_before === null || broker_after === null ? null : per_1m(broker_after.user - broker_before.user, broker_after.system - broker_before.system),
      events_per_s: run.events_per_s,
    };
  } finally {
    if (a !== null) await a.close();
    await child.finish();
    fs.rmSync(counter_file, { force: true });
    ctx.remove_dir(dir_a);
    ctx.remove_dir(dir_b);
  }
}

async function raw_round(ctx: BenchContext, broker: BenchBroker, pool: readonly Uint8Array[]): Promise<Round> {
  const dir = ctx.fresh_dir("cpu-raw");
  const counter_file = path.join(dir, "counters");
  SharedCounters.create(counter_file);
  const counters = SharedCounters.open(counter_file);
  const topic = raw_topic();
  const child = ChildProcess.spawn(["raw", broker.url, counter_file, String(cpu_events), topic, String(sync_payload_bytes)], counters, counter_file);
  try {
    await child.ready();
    let before = process.cpuUsage();
    let broker_before = process_cpu(broker.pid);
    const run = await raw_publish(
      {
        url: broker.url,
        pool,
        payload_bytes: sync_payload_bytes,
        events: cpu_events,
        batch_events: sync_batch_events,
        events_per_message: events_per_message(sync_payload_bytes),
        window_events: sync_window_events,
        inflight_max: sync_inflight_max,
      },
      topic,
      () => counters.get(counter_slots.held),
      async () => {
        await child.go();
        before = process.cpuUsage();
        broker_before = process_cpu(broker.pid);
      },
    );
    const cpu = process.cpuUsage(before);
    const broker_after = process_cpu(broker.pid);
    const report = (await child.report()) as CpuChildReport;
    return {
      details: "",
      sender: per_1m(cpu.user, cpu.system),
      receiver: per_1m(report.user_us, report.system_us),
      broker: broker_before === null || broker_after === null ? null : per_1m(broker_after.user - broker_before.user, broker_after.system - broker_before.system),
      events_per_s: run.events_per_s,
    };
  } finally {
    await child.finish();
    ctx.remove_dir(dir);
  }
}

function per_1m(user_us: number, system_us: number): SideCpu {
  const scale = 1e6 / cpu_events / 1e6;
  return { user_s: user_us * scale, system_s: system_us * scale };
}

const clock_ticks_per_s = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** A process's CPU time so far in microseconds (/proc/PID/stat utime and stime), or null when unreadable. */
function process_cpu(pid: number | null): { user: number; system: number } | null {
  if (pid === null) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state is field 3, utime 14 and stime 15 (proc(5)).
    const tick_us = 1e6 / clock_ticks_per_s;
    return { user: Number(fields[11]) * tick_us, system: Number(fields[12]) * tick_us };
  } catch {
    return null;
  }
}

/** sync_cpu_child.ts running, told and heard through its counter file; killed if it overruns or the bench exits. */
class ChildProcess {
  private readonly kill = (): void => {
    this.proc.kill("SIGKILL");
  };
  private readonly timer: ReturnType<typeof setTimeout>;

  private constructor(
    private readonly proc: Bun.Subprocess<"ignore", "ignore", number>,
    private readonly counters: SharedCounters,
    private readonly counter_file: string,
    private readonly stderr_file: string,
  ) {
    process.on("exit", this.kill);
    this.timer = setTimeout(this.kill, child_timeout_ms);
  }

  static spawn(args: string[], counters: SharedCounters, counter_file: string): ChildProcess {
    const stderr_file = `${counter_file}.stderr`;
    const stderr = fs.openSync(stderr_file, "w");
    try {
      const proc = Bun.spawn([process.execPath, child_script, ...args], { stdin: "ignore", stdout: "ignore", stderr });
      return new ChildProcess(proc, counters, counter_file, stderr_file);
    } finally {
      fs.closeSync(stderr);
    }
  }

  /** What the child wrote once connected. */
  async ready(): Promise<unknown> {
    await this.until_slot(counter_slots.ready, 10_000);
    return this.read_report();
  }

  /** Tells the child to start measuring, and waits until it does. */
  async go(): Promise<void> {
    this.counters.set(counter_slots.go, 1);
    await this.until_slot(counter_slots.measuring, 10_000);
  }

  /** The child's report, once it holds every event. */
  async report(): Promise<unknown> {
    await this.until_slot(counter_slots.done, child_timeout_ms);
    return this.read_report();
  }

  stderr_tail(): string {
    try {
      return fs.readFileSync(this.stderr_file, "utf8").slice(-2000);
    } catch {
      return "";
    }
  }

  private read_report(): unknown {
    try {
      return JSON.parse(fs.readFileSync(report_file(this.counter_file), "utf8"));
    } catch {
      return {};
    }
  }

  private until_slot(slot: number, timeout_ms: number): Promise<void> {
    return until(
      () => {
        if (this.proc.exitCode !== null && this.counters.get(slot) === 0) throw new Error(`the CPU benchmark's child exited early: ${this.stderr_tail()}`);
        return this.counters.get(slot) !== 0;
      },
      () => `the CPU benchmark's child: ${this.stderr_tail()}`,
      timeout_ms,
    );
  }

  /** Waits for the child to exit (killing it if it does not within 10 s), and removes its files. */
  async finish(): Promise<void> {
    const late = setTimeout(this.kill, 10_000);
    try {
      await this.proc.exited;
    } finally {
      clearTimeout(late);
      clearTimeout(this.timer);
      process.off("exit", this.kill);
      fs.rmSync(this.stderr_file, { force: true });
      fs.rmSync(report_file(this.counter_file), { force: true });
    }
  }
}
