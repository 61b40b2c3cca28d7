/** The admin HTTP API and dashboard (design.md section 5). */
export { create_admin_app } from "./app.ts";
export { start_admin_server, type AdminServer } from "./server.ts";
export { check_listen_allowed, check_token, is_loopback_host, parse_listen } from "./auth.ts";
export { admin_limits_default } from "./deps.ts";
export type {
  AdminDeps,
  AdminLimits,
  AppendContext,
  AppendValidator,
  PeerStatus,
  Readiness,
  SyncCounters,
  SyncView,
} from "./deps.ts";
