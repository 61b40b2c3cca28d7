/**
 * The receiving side of the CPU benchmark (sync_cpu.ts) in a process of its
 * own, so its CPU time is its own:
 *
 *   bun sync_cpu_child.ts replica URL COUNTER_FILE EVENTS DIR
 *   bun sync_cpu_child.ts raw URL COUNTER_FILE EVENTS TOPIC PAYLOAD_BYTES
 *
 * `replica` opens a fresh replica (B) in DIR as the live benchmark does;
 * `raw` subscribes with plain mqtt.js to TOPIC. Everything goes through
 * COUNTER_FILE, a small shared mapping (sync_cpu_counters.ts): the child
 * says it is ready, keeps there how many events it holds durably (raw:
 * received) and how many peers it has heard from, starts measuring when the
 * parent sets `go` (and says so), and once it holds EVENTS writes its CPU
 * time (CpuChildReport) to report_file(COUNTER_FILE) and sets `done`.
 */
import fs from "node:fs";
import mqtt from "mqtt";
import { type CpuChildReport, SharedCounters, counter_slots, report_file } from "./sync_cpu_counters.ts";
import { BenchReplica } from "./sync_replica.ts";

async function main(argv: string[]): Promise<void> {
  const [mode, url, counter_file, events_text, ...rest] = argv;
  const events = Number(events_text);
  if ((mode !== "replica" && mode !== "raw") || url === undefined || counter_file === undefined || !Number.isSafeInteger(events)) {
    throw new Error("usage: sync_cpu_child.ts replica|raw URL COUNTER_FILE EVENTS ...");
  }
  const counters = SharedCounters.open(counter_file);
  let held = 0;
  let cpu_before: NodeJS.CpuUsage | null = null;
  let started = 0;
  let finished: (report: CpuChildReport) => void = () => {};
  let details = (): string => "";
  const done = new Promise<CpuChildReport>((resolve) => (finished = resolve));
  // Called on every progress: no polling once measuring, so the child spends nothing of its own between events.
  const progress = (now_held: number): void => {
    held = now_held;
    counters.set(counter_slots.held, held);
    if (cpu_before !== null && held >= events) {
      const cpu = process.cpuUsage(cpu_before);
      cpu_before = null;
      finished({ user_us: cpu.user, system_us: cpu.system, seconds: (performance.now() - started) / 1000, details: details() });
    }
  };
  let close: () => Promise<void>;
  let peers = (): number => 0;
  if (mode === "replica") {
    const [dir] = rest;
    if (dir === undefined) throw new Error("replica mode needs DIR");
    const b = await BenchReplica.open(dir, url, "b-child");
    b.log.on_durable(() => progress(b.log.durable_count));
    details = () => {
      const s = b.log.stats;
      const c = b.rep.counters;
      return `B: ${s.fsyncs} fsyncs (mean ${((s.fsync_seconds_total / Math.max(1, s.fsyncs)) * 1000).toFixed(1)} ms), ${c.messages_in.events} event messages, ${c.wants_sent} repairs asked, ${c.events_duplicate} duplicates`;
    };
    b.start();
    while (!b.transport.status().connected) await Bun.sleep(5);
    peers = () => b.rep.status(Date.now()).peers.length;
    fs.writeFileSync(report_file(counter_file), JSON.stringify({ id: b.id }));
    close = () => b.close();
  } else {
    const [topic, payload_bytes_text] = rest;
    const payload_bytes = Number(payload_bytes_text);
    if (topic === undefined || !(payload_bytes > 0)) throw new Error("raw mode needs TOPIC PAYLOAD_BYTES");
    const client = mqtt.connect(url, { protocolVersion: 5, clientId: `bench-raw-sub-${process.pid}`, clean: true, reconnectPeriod: 0 });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    client.on("message", (_topic, payload) => progress(held + payload.length / payload_bytes));
    await client.subscribeAsync(topic, { qos: 1 });
    close = async () => {
      client.end(true);
    };
  }
  counters.set(counter_slots.ready, 1);
  // Before the measurement only: the parent's go, and the peers it waits for.
  while (counters.get(counter_slots.go) === 0) {
    counters.set(counter_slots.peers, peers());
    await Bun.sleep(1);
  }
  // Fresh (B holds nothing, the subscriber got nothing): the parent starts the load only once this measures.
  started = performance.now();
  cpu_before = process.cpuUsage();
  counters.set(counter_slots.measuring, 1);
  const report = await done;
  fs.writeFileSync(report_file(counter_file), JSON.stringify(report));
  counters.set(counter_slots.done, 1);
  await close();
}

await main(process.argv.slice(2));
// A lingering socket or timer must not keep the parent waiting.
process.exit(0);
