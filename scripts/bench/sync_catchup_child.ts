/**
 * A catching-up replica in a process of its own, so its peak resident memory
 * is its own and not the bench's: `bun sync_catchup_child.ts URL DIR EVENTS`
 * opens a fresh replica in DIR, syncs from the broker at URL until it holds
 * EVENTS events durably, and prints one JSON line (CatchupChildReport).
 */
import { rss_now } from "./sync_memory.ts";
import { BenchReplica, until } from "./sync_replica.ts";

export interface CatchupChildReport {
  seconds: number;
  /** Resident memory with the log open and the runtime loaded, before the link starts. */
  rss_before_bytes: number;
  anon_before_bytes: number | null;
  /** The process's high-water mark (VmHWM) at the end. */
  peak_rss_bytes: number;
  peak_anon_bytes: number | null;
}

async function main(argv: string[]): Promise<void> {
  const [url, dir, events_text] = argv;
  const events = Number(events_text);
  if (url === undefined || dir === undefined || !Number.isSafeInteger(events)) throw new Error("usage: sync_catchup_child.ts URL DIR EVENTS");
  const c = await BenchReplica.open(dir, url, "c-child");
  Bun.gc(true);
  const before = rss_now();
  let peak_anon = before.anon_bytes;
  const sampler = setInterval(() => {
    const anon = rss_now().anon_bytes;
    if (anon !== null && peak_anon !== null) peak_anon = Math.max(peak_anon, anon);
  }, 5);
  const started = performance.now();
  c.start();
  await until(() => c.log.durable_count >= events, () => `the child holds ${c.log.durable_count} of ${events}`, 120_000);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(await Bun.file("/proc/self/status").text().catch(() => ""));
  const report: CatchupChildReport = {
    seconds,
    rss_before_bytes: before.rss_bytes,
    anon_before_bytes: before.anon_bytes,
    peak_rss_bytes: hwm === null ? Math.max(before.rss_bytes, process.memoryUsage().rss) : Number(hwm[1]) * 1024,
    peak_anon_bytes: peak_anon,
  };
  await c.close();
  await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(report)}\n`, () => resolve()));
}

await main(process.argv.slice(2));
// A lingering socket or timer must not keep the parent waiting.
process.exit(0);
