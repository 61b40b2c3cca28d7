import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Clock } from "../lib/clock.ts";
import type { Log } from "../log/log.ts";
import type { SyncView } from "./deps.ts";
import type { QuarantineIndex } from "./quarantine.ts";

/** fsync latency buckets in seconds: eMMC and SD cards range from under a millisecond to seconds. */
const fsync_buckets_s = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface AdminMetrics {
  registry: Registry;
  /** Appends refused by the append validators (HTTP 422). */
  append_rejected: Counter;
  /** SSE tails currently open. */
  sse_streams: Gauge;
}

/**
 * The Prometheus registry of one admin app. Values owned by the log and the
 * sync layer are read when scraped (collect callbacks), so nothing has to be
 * kept in step; the fsync latencies the log records are drained into the
 * histogram on each scrape.
 */
export function create_metrics(log: Log, sync: SyncView | undefined, quarantine: QuarantineIndex, clock: Clock): AdminMetrics {
  const registry = new Registry();
  const registers = [registry];
  const total = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  const gauge = (name: string, help: string, value: () => number | null) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = value();
        if (v === null) this.reset();
        else this.set(v);
      },
    });

  total("interlog_log_appends_total", "Batches written to the log (local appends and accepted sync batches).", () => log.stats.appends);
  total("interlog_log_appended_events_total", "Events written to the log since start.", () => log.stats.appended_events);
  total("interlog_log_appended_bytes_total", "Payload bytes written to the log since start.", () => log.stats.appended_bytes);
  total("interlog_log_fsyncs_total", "fsync cycles (group commits) since start.", () => log.stats.fsyncs);
  new Histogram({
    name: "interlog_log_fsync_duration_seconds",
    help: "Time one fsync cycle took.",
    buckets: fsync_buckets_s,
    registers,
    collect() {
      const latencies = log.stats.fsync_latencies_s.splice(0);
      for (const s of latencies) this.observe(s);
    },
  });
  gauge("interlog_log_events", "Events held in the log.", () => (log.is_closed ? null : log.count));
  gauge("interlog_log_bytes", "Bytes of records in the log.", () => (log.is_closed ? null : log.bytes));
  gauge("interlog_log_disk_bytes", "Bytes the log's preallocated segment files take on disk.", () => (log.is_closed ? null : log.disk_bytes));
  gauge("interlog_disk_free_bytes", "Free bytes on the file system holding the data directory.", () => log.free_disk_bytes());
  gauge("interlog_rejected_events", "Events held as rejected placeholders (failed the sync validators).", () => quarantine.count());
  const append_rejected = new Counter({
    name: "interlog_append_rejected_total",
    help: "Appends over the admin API refused by the append validators.",
    registers,
  });
  const sse_streams = new Gauge({ name: "interlog_admin_sse_streams", help: "Open SSE tails of the admin API.", registers });

  if (sync !== undefined) {
    gauge("interlog_sync_connected", "1 while the broker connection is up.", () => (sync.connected ? 1 : 0));
    total("interlog_sync_messages_in_total", "Sync messages received.", () => sync.counters().messages_in);
    total("interlog_sync_messages_out_total", "Sync messages sent.", () => sync.counters().messages_out);
    total(
      "interlog_sync_conflicts_total",
      "Events signed with a known origin's key but different from the ones held: two devices share that key (a copied data directory).",
      () => sync.counters().conflicts,
    );
    new Counter({
      name: "interlog_sync_messages_dropped_total",
      help: "Incoming sync messages dropped, by reason.",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(sync.counters().dropped)) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: "interlog_sync_peer_lag_events",
      help: "Events this replica holds that a peer's version vector does not cover yet.",
      labelNames: ["peer", "name"],
      registers,
      collect() {
        this.reset();
        for (const p of sync.peers()) this.set({ peer: p.id, name: p.name }, p.lag_events);
      },
    });
    new Gauge({
      name: "interlog_sync_peer_oldest_unacked_age_seconds",
      help: "Age of the oldest event a peer has not acknowledged (0 when all are).",
      labelNames: ["peer", "name"],
      registers,
      collect() {
        this.reset();
        for (const p of sync.peers()) this.set({ peer: p.id, name: p.name }, (p.oldest_unacked_age_ms ?? 0) / 1000);
      },
    });
    new Gauge({
      name: "interlog_sync_peer_last_seen_age_seconds",
      help: "Time since the last message from a peer.",
      labelNames: ["peer", "name"],
      registers,
      collect() {
        this.reset();
        const now = clock.now_ms();
        for (const p of sync.peers()) if (p.last_seen_ms !== null) this.set({ peer: p.id, name: p.name }, Math.max(0, now - p.last_seen_ms) / 1000);
      },
    });
  }
  return { registry, append_rejected, sse_streams };
}
