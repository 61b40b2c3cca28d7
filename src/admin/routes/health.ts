import type { Hono } from "hono";
import type { AdminContext } from "../admin_context.ts";
import type { Readiness } from "../deps.ts";

/** Ready = the log takes writes and, when sync is configured, the broker is connected. */
export function readiness(ctx: AdminContext): Readiness {
  const reasons: string[] = [];
  const { log, sync } = ctx;
  if (log.is_closed) reasons.push("the log is closed");
  else if (log.failed !== null) reasons.push(`the log failed: ${log.failed.message}`);
  if (sync !== undefined && !sync.connected) reasons.push("not connected to the MQTT broker");
  if (ctx.ready !== undefined) {
    const extra = ctx.ready();
    if (!extra.ok) reasons.push(...(extra.reasons.length > 0 ? extra.reasons : ["not ready"]));
  }
  return { ok: reasons.length === 0, reasons };
}

export function mount_health_routes(app: Hono, ctx: AdminContext): void {
  app.get("/healthz", (c) => c.json({ ok: true }));

  app.get("/readyz", (c) => {
    const r = readiness(ctx);
    return c.json(r, r.ok ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    const { text, content_type } = await ctx.metrics.scrape();
    return c.body(text, 200, { "Content-Type": content_type });
  });
}
