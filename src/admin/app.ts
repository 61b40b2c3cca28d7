import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { assert } from "../lib/assert.ts";
import type { AdminContext } from "./admin_context.ts";
import { bearer_guard } from "./auth.ts";
import { dashboard_csp, dashboard_page } from "./dashboard_page.ts";
import { type AdminDeps, admin_limits_default } from "./deps.ts";
import { fleet_html } from "./fleet_page.ts";
import { host_guard } from "./host_guard.ts";
import { error_response, log_error_response } from "./http_errors.ts";
import { AdminMetrics } from "./metrics.ts";
import { NewEvents } from "./new_events.ts";
import { QuarantineIndex } from "./quarantine.ts";
import { RetentionView } from "./retention_view.ts";
import { mount_append_route } from "./routes/append.ts";
import { mount_fleet_route } from "./routes/fleet.ts";
import { mount_health_routes } from "./routes/health.ts";
import { check_page_app_dir, mount_page_app_route } from "./routes/page_app.ts";
import { mount_prune_route } from "./routes/prune.ts";
import { mount_event_route, mount_read_route } from "./routes/read.ts";
import { mount_status_routes } from "./routes/status.ts";
import { mount_stream_route } from "./routes/stream.ts";
import { Fleet, fleet_source } from "../sync/fleet.ts";

/** Served without the token: liveness for supervisors, and the dashboard and fleet pages, which hold no data themselves. */
const public_paths = new Set(["/healthz", "/", "/fleet"]);

/** The browser replica page's files (routes/page_app.ts): static too; its data lives in the browser. */
function is_public_path(path: string): boolean {
  return public_paths.has(path) || path === "/app" || path.startsWith("/app/");
}

/** The admin HTTP API and dashboard of one replica (design.md section 5). */
export function create_admin_app(deps: AdminDeps): Hono {
  const limits = { ...admin_limits_default, ...deps.limits };
  // Before anything else: a missing build refuses the start (CONFIG_INVALID) instead of a page of 404s.
  if (deps.page_app_dir !== undefined) check_page_app_dir(deps.page_app_dir);
  assert(Number.isSafeInteger(deps.body_limit_bytes) && deps.body_limit_bytes > 0, "body_limit_bytes is a positive integer");
  assert(limits.page_events_default >= 1 && limits.page_events_default <= limits.page_events_max, "default page size within the maximum");
  assert(limits.sse_streams_max >= 1 && limits.sse_poll_interval_ms > 0 && limits.sse_heartbeat_interval_ms > 0, "SSE limits are positive");
  assert(limits.retention_rate_window_ms >= 1000, "the fill rate window is at least a second");
  assert(limits.sse_per_client_max >= 1 && limits.batch_events_max >= 1 && limits.batch_body_max_bytes >= 1, "per-client and batch limits are positive");
  const quarantine = new QuarantineIndex(
    deps.log,
    limits.quarantine_events_max,
    limits.quarantine_scan_step_max_events,
    limits.quarantine_message_max_bytes,
    limits.quarantine_payload_max_bytes,
    deps.explain_rejection ?? null,
  );
  const retention = new RetentionView(deps.log, deps.clock, limits.retention_rate_window_ms);
  const ctx: AdminContext = {
    log: deps.log,
    sync: deps.sync,
    clock: deps.clock,
    body_limit_bytes: deps.body_limit_bytes,
    validate_append: deps.validate_append,
    ready: deps.ready,
    warn: deps.on_warning ?? (() => {}),
    limits,
    metrics: new AdminMetrics({ log: deps.log, sync: deps.sync, quarantine, clock: deps.clock, retention }),
    quarantine,
    new_events: new NewEvents(limits.sse_streams_max),
    retention,
    // Offline (no replicator): the fleet is the origins the log holds.
    fleet: deps.fleet ?? new Fleet(fleet_source(deps.log, null), deps.clock),
  };

  const app = new Hono();
  // First: a request a browser was tricked into sending is refused whatever else it carries (host_guard.ts).
  app.use("*", host_guard(deps.allowed_hosts ?? []));
  if (deps.token !== undefined && deps.token !== "") {
    const guard = bearer_guard(deps.token);
    app.use("*", (c, next) => (is_public_path(c.req.path) ? next() : guard(c, next)));
  }

  const dashboard_html = dashboard_page(deps.token !== undefined && deps.token !== "");
  const page_headers = { "Content-Security-Policy": dashboard_csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache" };
  app.get("/", (c) => c.html(dashboard_html, 200, page_headers));
  app.get("/fleet", (c) => c.html(fleet_html, 200, page_headers));
  mount_health_routes(app, ctx);
  mount_status_routes(app, ctx);
  mount_append_route(app, ctx);
  mount_read_route(app, ctx);
  mount_stream_route(app, ctx);
  mount_event_route(app, ctx);
  mount_prune_route(app, ctx);
  mount_fleet_route(app, ctx);
  if (deps.page_app_dir !== undefined) mount_page_app_route(app, deps.page_app_dir);

  app.notFound((c) => error_response(c, 404, "NOT_FOUND", `no such route: ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    return log_error_response(c, err, ctx.warn);
  });
  return app;
}
