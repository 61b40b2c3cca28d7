import type { Hono } from "hono";
import type { AdminContext } from "../admin_context.ts";
import type { BrokerStatus, ConflictStatus, PeerStatus, UnavailableStatus } from "../deps.ts";
import type { RetentionJson } from "../retention_view.ts";

export interface StatusJson {
  id: string;
  name: string;
  /** The Ed25519 public key the id stands for (64 hex digits): what peers check this replica's events against. */
  public_key: string;
  /** The replica's wall clock when answering, so a client can compute rates without trusting its own clock. */
  time_ms: number;
  sync_mode: string;
  events: number;
  durable_events: number;
  bytes: number;
  vv: Record<string, number>;
  sync: { configured: boolean; connected: boolean; broker: BrokerStatus | null; peers: PeerStatus[] };
  disk: { used_bytes: number; free_bytes: number | null };
  /** Origins whose key two devices use (a copied data directory): seen signing different events for one seq. */
  conflicts: ConflictStatus[];
  unavailable: UnavailableStatus[];
  /** The disk budget, what retention pruned, the fill rate and time until full, and a warning while pruning is blocked (retention_view.ts). */
  retention: RetentionJson | null;
}

export function status_json(ctx: AdminContext): StatusJson {
  const { log, sync } = ctx;
  return {
    id: log.id,
    name: log.name,
    public_key: log.public_key,
    time_ms: ctx.clock.now_ms(),
    sync_mode: log.sync_mode,
    events: log.count,
    durable_events: log.durable_count,
    bytes: log.bytes,
    vv: log.vv(),
    sync: { configured: sync !== undefined, connected: sync?.connected ?? false, broker: sync?.broker?.() ?? null, peers: sync?.peers() ?? [] },
    disk: { used_bytes: log.disk_bytes, free_bytes: log.free_disk_bytes() },
    conflicts: sync?.conflicts() ?? [],
    unavailable: sync?.unavailable?.() ?? [],
    retention: ctx.retention.view(),
  };
}

export function mount_status_routes(app: Hono, ctx: AdminContext): void {
  app.get("/api/status", (c) => c.json(status_json(ctx)));

  app.get("/api/peers", (c) => {
    const { sync } = ctx;
    return c.json({ configured: sync !== undefined, connected: sync?.connected ?? false, peers: sync?.peers() ?? [] });
  });

  app.get("/api/quarantine", (c) => c.json(ctx.quarantine.view()));
}
