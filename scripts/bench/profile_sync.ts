// One live sync round for profiling (bun --cpu-prof scripts/bench/profile_sync.ts).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BenchBroker } from "./sync_broker.ts";
import { payload_pool } from "./payloads.ts";
import { sync_payload_bytes, sync_run } from "./sync_load.ts";
import { BenchReplica, until } from "./sync_replica.ts";

const events = Number(process.env.EVENTS ?? 200_000);
const broker = await BenchBroker.start();
const root = fs.mkdtempSync(path.join(os.tmpdir(), "prof-sync-"));
const a = await BenchReplica.open(path.join(root, "a"), broker.url, "a");
const b = await BenchReplica.open(path.join(root, "b"), broker.url, "b");
a.start();
b.start();
await until(() => a.sees([b]) && b.sees([a]), () => "no contact", 10_000);
const before = process.cpuUsage();
const run = await sync_run(a, b, payload_pool(sync_payload_bytes), events);
const cpu = process.cpuUsage(before);
console.log(`${(run.events_per_s / 1e3).toFixed(0)} k/s, cpu user ${(cpu.user / 1e6).toFixed(2)} s sys ${(cpu.system / 1e6).toFixed(2)} s`);
await a.close();
await b.close();
await broker.stop();
fs.rmSync(root, { recursive: true, force: true });
