import type { Clock } from "../lib/clock.ts";
import type { Log } from "../log/log.ts";
import type { AdminDeps, AdminLimits, AppendValidator, FleetView, Readiness, SyncView } from "./deps.ts";
import type { AdminMetrics } from "./metrics.ts";
import type { NewEvents } from "./new_events.ts";
import type { QuarantineIndex } from "./quarantine.ts";
import type { RetentionView } from "./retention_view.ts";

/** What the route modules share: the injected deps plus the app's own state. */
export interface AdminContext {
  log: Log;
  sync: SyncView | undefined;
  clock: Clock;
  body_limit_bytes: number;
  validate_append: AppendValidator | undefined;
  ready: (() => Readiness) | undefined;
  warn: NonNullable<AdminDeps["on_warning"]>;
  limits: AdminLimits;
  metrics: AdminMetrics;
  quarantine: QuarantineIndex;
  new_events: NewEvents;
  retention: RetentionView;
  fleet: FleetView;
}
