import type { Registry } from "prom-client";
import type { Clock } from "../lib/clock.ts";
import type { Log } from "../log/log.ts";
import type { SyncView } from "./deps.ts";
import type { QuarantineIndex } from "./quarantine.ts";
import type { RetentionView } from "./retention_view.ts";

/** What the metrics read when scraped. */
export interface MetricSources {
  log: Log;
  sync: SyncView | undefined;
  quarantine: QuarantineIndex;
  clock: Clock;
  retention: RetentionView;
}

/** The counts only the admin app itself knows; the registry reads them when scraped. */
export interface AdminCounts {
  /** Appends refused by the append validators (HTTP 422). */
  append_rejected_total: number;
  /** SSE tails currently open. */
  sse_streams: number;
}

/**
 * The admin app's Prometheus metrics. prom-client and the registry are loaded
 * at the first scrape, not at start: they cost a replica that nobody scrapes
 * several MiB of resident memory (issue 16). Until then the app only counts.
 */
export class AdminMetrics implements AdminCounts {
  append_rejected_total = 0;
  sse_streams = 0;
  private registry: Promise<Registry> | null = null;

  constructor(private readonly sources: MetricSources) {}

  /** The exposition text and its content type. */
  async scrape(): Promise<{ text: string; content_type: string }> {
    this.registry ??= import("./metrics_registry.ts").then((m) => m.build_registry(this.sources, this));
    const registry = await this.registry;
    return { text: await registry.metrics(), content_type: registry.contentType };
  }
}
