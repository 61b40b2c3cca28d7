// One live sync round with the receiver in a child process, for per-side CPU and profiles:
// EVENTS=600000 bun --cpu-prof scripts/bench/profile_sync_split.ts profiles the sender; with
// PROFILE_DIR=dir the child writes the receiver's .cpuprofile there.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { payload_pool } from "./payloads.ts";
import { BenchBroker } from "./sync_broker.ts";
import { type CpuChildReport, SharedCounters, counter_slots, report_file } from "./sync_cpu_counters.ts";
import { sync_payload_bytes, sync_run_to } from "./sync_load.ts";
import { BenchReplica, until } from "./sync_replica.ts";

const events = Number(process.env.EVENTS ?? 200_000);
const profile_dir = process.env.PROFILE_DIR;
const broker = await BenchBroker.start();
const root = fs.mkdtempSync(path.join(os.tmpdir(), "prof-sync-split-"));
const counter_file = path.join(root, "counters");
SharedCounters.create(counter_file);
const counters = SharedCounters.open(counter_file);
const child = Bun.spawn(
  [
    process.execPath,
    ...(profile_dir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile_dir}`]),
    new URL("./sync_cpu_child.ts", import.meta.url).pathname,
    "replica",
    broker.url,
    counter_file,
    String(events),
    path.join(root, "b"),
  ],
  { stdin: "ignore", stdout: "inherit", stderr: "inherit" },
);
await until(() => counters.get(counter_slots.ready) !== 0, () => "the child did not start", 10_000);
const ready = JSON.parse(fs.readFileSync(report_file(counter_file), "utf8")) as { id: string };
const a = await BenchReplica.open(path.join(root, "a"), broker.url, "a");
a.start();
await until(() => a.sees([]) && a.rep.status(Date.now()).peers.some((p) => p.id === ready.id) && counters.get(counter_slots.peers) >= 1, () => "no contact", 10_000);
counters.set(counter_slots.go, 1);
await until(() => counters.get(counter_slots.measuring) !== 0, () => "the child did not start measuring", 10_000);
const before = process.cpuUsage();
const run = await sync_run_to(a, () => counters.get(counter_slots.held), payload_pool(sync_payload_bytes), events);
const cpu = process.cpuUsage(before);
await until(() => counters.get(counter_slots.done) !== 0, () => "the child did not finish");
const b = JSON.parse(fs.readFileSync(report_file(counter_file), "utf8")) as CpuChildReport;
console.log(
  `${(run.events_per_s / 1e3).toFixed(0)} k/s; A cpu user ${(cpu.user / 1e6).toFixed(2)} s sys ${(cpu.system / 1e6).toFixed(2)} s; ` +
    `B cpu user ${(b.user_us / 1e6).toFixed(2)} s sys ${(b.system_us / 1e6).toFixed(2)} s; ${b.details}`,
);
await child.exited;
await a.close();
await broker.stop();
fs.rmSync(root, { recursive: true, force: true });
