import { frame_size_bytes } from "../../src/log/frame.ts";
import { BenchBroker } from "./sync_broker.ts";
import { next_turn } from "./appender.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import { sync_batch_events, sync_payload_bytes } from "./sync_load.ts";
import type { CatchupChildReport } from "./sync_catchup_child.ts";
import { mib } from "./sync_memory.ts";
import { BenchReplica, until } from "./sync_replica.ts";

/** The serving replica's per-requester answer rate here: a hub on a LAN (replication.answer_rate_per_requester). */
const lan_answer_rate_bytes_per_s = 256 * 1024 * 1024;

export const catchup_events = 100_000;
const catchup_timeout_ms = 120_000;

export interface Catchup {
  seconds: number;
  events_per_s: number;
  /** The same catch-up by a replica in a process of its own, for its memory. */
  child: CatchupChildReport;
}

/**
 * A replica (C) that was never online fetches the 100 000 events A appended
 * meanwhile: timed from C's transport start to C holding them all durably.
 * The catch-up runs through repair requests (want / to), not the live push.
 * Timed with C in this process, like the live benchmark's two replicas; then
 * repeated by a replica in a child process, whose peak resident memory is
 * then its own (this process still holds the earlier benchmarks' heap).
 */
export function catchup(ctx: BenchContext): Promise<Catchup> {
  return ctx.shared("sync_catchup_100k", async () => {
    const pool = payload_pool(sync_payload_bytes);
    const dir_a = ctx.fresh_dir("catchup-a");
    const dir_c = ctx.fresh_dir("catchup-c");
    const dir_child = ctx.fresh_dir("catchup-child");
    const opened: BenchReplica[] = [];
    const broker = await BenchBroker.start();
    try {
      // A hub on a LAN: its per-requester answer rate (default 4 MiB/s, sized for devices on cellular links) is raised,
      // so this measures the protocol's catch-up, not the limiter. With the default a 28 MB backlog takes ~7 s by design.
      const a = await BenchReplica.open(dir_a, broker.url, "a", { answer_rate_per_requester_bytes_per_s: lan_answer_rate_bytes_per_s, answer_burst_per_requester_bytes: lan_answer_rate_bytes_per_s });
      opened.push(a);
      a.start();
      await until(() => a.sees([]), () => `A did not connect: ${a.warnings.join("; ")}`, 10_000);
      const mask = pool.length - 1;
      const batch: Uint8Array[] = [];
      for (let sent = 0; sent < catchup_events; sent += sync_batch_events) {
        batch.length = 0;
        for (let i = 0; i < sync_batch_events; i++) batch.push(pool[(sent + i) & mask]);
        a.append_batch(batch);
        await next_turn();
      }
      await a.log.durable();
      const c = await BenchReplica.open(dir_c, broker.url, "c");
      opened.push(c);
      ctx.settle();

      const started = performance.now();
      c.start();
      await until(
        () => c.log.durable_count >= catchup_events,
        () => `C holds ${c.log.durable_count} of ${catchup_events} durably; C ${JSON.stringify(c.rep.counters)}; ${c.warnings.join("; ")}`,
        catchup_timeout_ms,
      );
      const seconds = (performance.now() - started) / 1000;
      const cc = c.rep.counters;
      ctx.progress(
        `catch-up: ${catchup_events} events in ${seconds.toFixed(2)} s = ${(catchup_events / seconds / 1e3).toFixed(0)} k events/s; ` +
          `C sent ${cc.wants_sent} repair requests (${cc.wants_timed_out} timed out) and took ${cc.messages_in.to} answers, ${cc.events_duplicate} duplicates; ` +
          `A served ${a.rep.counters.events_served} events; fsyncs C ${c.log.stats.fsyncs}`,
      );
      await c.close();
      opened.pop();
      ctx.remove_dir(dir_c);
      ctx.settle();
      const child = await catchup_in_child(dir_child, broker.url);
      const backlog_bytes = catchup_events * frame_size_bytes(sync_payload_bytes);
      ctx.progress(
        `the same catch-up in a process of its own: ${child.seconds.toFixed(2)} s; resident memory ${mib(child.rss_before_bytes)} with the log open, ` +
          `peak ${mib(child.peak_rss_bytes)}; anonymous ${mib(child.anon_before_bytes)} -> peak ${mib(child.peak_anon_bytes)}, the rest is mapped log files; backlog ${mib(backlog_bytes)} of frames`,
      );
      return { seconds, events_per_s: catchup_events / seconds, child };
    } finally {
      for (const r of opened) await r.close();
      await broker.stop();
      ctx.remove_dir(dir_a);
      ctx.remove_dir(dir_c);
      ctx.remove_dir(dir_child);
    }
  });
}

const child_script = new URL("./sync_catchup_child.ts", import.meta.url).pathname;

/** Runs sync_catchup_child.ts against the broker; killed if it overruns or the bench exits first. */
async function catchup_in_child(dir: string, url: string): Promise<CatchupChildReport> {
  const child = Bun.spawn([process.execPath, child_script, url, dir, String(catchup_events)], { stdout: "pipe", stderr: "pipe" });
  const kill = (): void => child.kill("SIGKILL");
  process.on("exit", kill);
  const timer = setTimeout(kill, catchup_timeout_ms + 10_000);
  try {
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (code !== 0) throw new Error(`the catch-up child exited with ${code}: ${err.slice(-2000)}`);
    return JSON.parse(out.trim().split("\n").pop() ?? "") as CatchupChildReport;
  } finally {
    clearTimeout(timer);
    process.off("exit", kill);
  }
}
