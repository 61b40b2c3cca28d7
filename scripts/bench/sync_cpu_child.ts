/**
 * The receiving side of the CPU benchmark (sync_cpu.ts) in a process of its
 * own, so its CPU time is its own:
 *
 *   bun sync_cpu_child.ts replica URL COUNTER_FILE EVENTS DIR
 *   bun sync_cpu_child.ts raw URL COUNTER_FILE EVENTS TOPIC PAYLOAD_BYTES
 *
 * `replica` opens a fresh replica (B) in DIR as the live benchmark does;
 * `raw` subscribes with plain mqtt.js to TOPIC. It prints one line
 * `{"ready":...}` once connected, keeps in COUNTER_FILE (a shared mapping)
 * how many events it holds durably (raw: received) and how many peers it
 * has heard from, takes "go" on stdin as the start of the measurement, and
 * prints its CPU time (CpuChildReport) once it holds EVENTS more than at "go".
 */
import mqtt from "mqtt";
import { type CpuChildReport, SharedCounters, counter_slots } from "./sync_cpu_counters.ts";
import { BenchReplica } from "./sync_replica.ts";

async function main(argv: string[]): Promise<void> {
  const [mode, url, counter_file, events_text, ...rest] = argv;
  const events = Number(events_text);
  if ((mode !== "replica" && mode !== "raw") || url === undefined || counter_file === undefined || !Number.isSafeInteger(events)) {
    throw new Error("usage: sync_cpu_child.ts replica|raw URL COUNTER_FILE EVENTS ...");
  }
  const counters = SharedCounters.open(counter_file);
  let held = 0;
  let base = -1;
  let cpu_before: NodeJS.CpuUsage | null = null;
  let started = 0;
  let finished: (report: CpuChildReport) => void = () => {};
  let details = (): string => "";
  const done = new Promise<CpuChildReport>((resolve) => (finished = resolve));
  // Called on every progress: no polling, so the child spends nothing of its own between events.
  const progress = (now_held: number): void => {
    held = now_held;
    counters.set(counter_slots.held, held);
    if (cpu_before !== null && held - base >= events) {
      const cpu = process.cpuUsage(cpu_before);
      cpu_before = null;
      finished({ user_us: cpu.user, system_us: cpu.system, seconds: (performance.now() - started) / 1000, details: details() });
    }
  };
  let close: () => Promise<void>;
  let peers_timer: ReturnType<typeof setInterval> | null = null;
  if (mode === "replica") {
    const [dir] = rest;
    if (dir === undefined) throw new Error("replica mode needs DIR");
    const b = await BenchReplica.open(dir, url, "b-child");
    b.log.on_durable(() => progress(b.log.durable_count));
    details = () => {
      const s = b.log.stats;
      const c = b.rep.counters;
      return `B: ${s.fsyncs} fsyncs (mean ${((s.fsync_seconds_total / Math.max(1, s.fsyncs)) * 1000).toFixed(1)} ms), ${c.messages_in.events} event messages, ${c.wants_sent} repairs asked, ${c.events_buffered} parked`;
    };
    b.start();
    // Until "go" only: how many peers B has heard from (the parent waits for A).
    peers_timer = setInterval(() => counters.set(counter_slots.peers, b.rep.status(Date.now()).peers.length), 5);
    while (!b.transport.status().connected) await Bun.sleep(5);
    write_line({ ready: true, id: b.id });
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
    write_line({ ready: true, id: null });
    close = async () => {
      client.end(true);
    };
  }
  for await (const line of console) {
    if (line.trim() !== "go") continue;
    if (peers_timer !== null) clearInterval(peers_timer);
    base = held;
    started = performance.now();
    cpu_before = process.cpuUsage();
    break;
  }
  const report = await done;
  await close();
  write_line(report);
}

function write_line(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

await main(process.argv.slice(2));
// Flushed stdout first; a lingering socket or timer must not keep the parent waiting.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
process.exit(0);
