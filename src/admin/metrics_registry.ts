import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AdminCounts, MetricSources } from "./metrics.ts";
import { type RetentionJson, unacked_upstreams_listed_max } from "./retention_view.ts";

/** fsync latency buckets in seconds: eMMC and SD cards range from under a millisecond to seconds. */
const fsync_buckets_s = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * The Prometheus registry of one admin app, made at its first scrape
 * (metrics.ts). Every value is read when scraped (collect callbacks), so
 * nothing has to be kept in step; the fsync latencies the log records are
 * drained into the histogram on each scrape.
 */
export function build_registry(sources: MetricSources, counts: AdminCounts): Registry {
  const { log, sync, quarantine, clock, retention } = sources;
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
  total("interlog_append_rejected_total", "Appends over the admin API refused by the append validators.", () => counts.append_rejected_total);
  gauge("interlog_admin_sse_streams", "Open SSE tails of the admin API.", () => counts.sse_streams);

  // Retention (issue 13). One view per scrape (retention_view.ts); none while the log is closed.
  const r = () => retention.view();
  gauge("interlog_retention_budget_bytes", "The disk budget retention.max_bytes (0 without one: the log only grows).", () => r()?.max_bytes ?? null);
  gauge("interlog_retention_used_bytes", "Bytes of segment files, the spare included: what the budget counts.", () => r()?.used_bytes ?? null);
  const pruned_total = (name: string, help: string, acked: (v: RetentionJson) => number, unacked: (v: RetentionJson) => number) =>
    new Counter({
      name,
      help,
      labelNames: ["acked"],
      registers,
      collect() {
        this.reset();
        const v = r();
        if (v === null) return;
        this.inc({ acked: "true" }, acked(v));
        this.inc({ acked: "false" }, unacked(v));
      },
    });
  pruned_total(
    "interlog_pruned_bytes_total",
    'Record bytes retention pruned since the data directory was made; acked="false": no upstream acknowledged them (drop-oldest), lost unless a peer held them.',
    (v) => v.pruned.acked_bytes,
    (v) => v.pruned.unacked_bytes,
  );
  pruned_total(
    "interlog_pruned_events_total",
    'Events retention pruned since the data directory was made; acked="false": no upstream acknowledged them (drop-oldest).',
    (v) => v.pruned.acked_events,
    (v) => v.pruned.unacked_events,
  );
  total("interlog_pruned_segments_total", "Segment files retention pruned since the data directory was made.", () => r()?.pruned.segments ?? 0);
  gauge(
    "interlog_oldest_event_age_seconds",
    "Age of the oldest event held (its origin's time, by this replica's clock); 0 when none is held.",
    () => {
      const ms = r()?.oldest_event_age_ms ?? null;
      return ms === null ? null : ms / 1000;
    },
  );
  new Gauge({
    name: "interlog_unacked_bytes",
    help: `Record bytes of the segments an upstream does not hold wholly (what drop-acked may not prune); the ${unacked_upstreams_listed_max} upstreams holding back the most.`,
    labelNames: ["upstream"],
    registers,
    collect() {
      this.reset();
      for (const [upstream, bytes] of Object.entries(r()?.unacked_bytes_by_upstream ?? {})) this.set({ upstream }, bytes);
    },
  });
  gauge("interlog_retention_upstreams", "Upstreams whose acknowledgements retention counts (interlog_unacked_bytes lists at most 50).", () => r()?.upstreams_total ?? null);
  gauge(
    "interlog_retention_fill_rate_bytes_per_second",
    "Record bytes written to the log per second (own appends and accepted sync), over the last retention_rate_window_ms of the replica's clock (admin limit, default 10 minutes).",
    () => r()?.fill_rate_bytes_per_s ?? null,
  );
  gauge(
    "interlog_retention_full_in_seconds",
    "Seconds until the records held fill the budget at interlog_retention_fill_rate_bytes_per_second ((budget - record bytes held) / rate; 0 when full). " +
      "Under drop-acked and drop-oldest pruning then makes room: appends fail only if nothing may be pruned (interlog_retention_blocked). +Inf without a budget or while nothing is written.",
    () => {
      const v = r();
      return v === null ? null : (v.full_in_s ?? Number.POSITIVE_INFINITY);
    },
  );
  gauge(
    "interlog_retention_blocked",
    "1 while the budget needs room and nothing may be pruned (un-acknowledged data, or policy reject): appends fail with LOG_FULL once the segment being written is full.",
    () => {
      const v = r();
      return v === null ? null : v.blocked === null ? 0 : 1;
    },
  );

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
  return registry;
}
