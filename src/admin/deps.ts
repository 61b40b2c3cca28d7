import type { Clock } from "../lib/clock.ts";
import type { Log } from "../log/log.ts";
import type { FleetPage, FleetQuery } from "../sync/fleet.ts";

/**
 * What the admin API needs from the running replica. Everything is injected
 * so the API works (and is tested) with a bare Log before sync exists.
 */
export interface AdminDeps {
  log: Log;
  /** Bearer token guarding every route but /healthz and the dashboard page; unset or "" = no auth. */
  token?: string;
  /** Largest accepted request body (POST /api/events); larger ones get 413. A CBOR batch is further bounded by limits.batch_body_max_bytes. */
  body_limit_bytes: number;
  /**
   * Host names the API answers to besides loopback names and IP addresses
   * (config admin.allowed_hosts plus the listen host when it is a name).
   * Requests whose Host, or whose Origin on a POST or event stream, names
   * another host are refused with 403 (DNS rebinding, cross-site pages).
   */
  allowed_hosts?: readonly string[];
  /** Append validators (from src/validators), run on every payload before anything is written. */
  validate_append?: AppendValidator;
  /** The sync layer's view; absent when the replica runs offline (no mqtt in config). */
  sync?: SyncView;
  clock: Clock;
  /** The fleet view (src/sync/fleet.ts's Fleet over the log and the replicator); absent: the app makes one over the log alone. */
  fleet?: FleetView;
  /** Extra readiness checks of the wiring (e.g. "still replaying"); the log and broker checks are built in. */
  ready?: () => Readiness;
  /**
   * The sync validators, run again on a quarantined event's payload to show
   * why it was rejected (the log keeps the origin's bytes, not the message).
   */
  explain_rejection?: (payload: Uint8Array, ctx: { origin: string; seq: number; time_ms: number }) => string | null;
  /** Structured warnings (unexpected errors answered with 500). */
  on_warning?: (message: string, details: Record<string, unknown>) => void;
  limits?: Partial<AdminLimits>;
  /** Directory of the built browser replica page, served at /app/ without the token (config admin.app; routes/page_app.ts); absent: not served. */
  page_app_dir?: string;
}

/**
 * Returns an error message (the append is refused with 422) or null. A
 * composed validator from src/validators fits as is: AppendContext carries
 * every field of its ValidationContext (kind, origin, seq, time_ms).
 */
export type AppendValidator = (payload: Uint8Array, ctx: AppendContext) => string | null;

export interface AppendContext {
  kind: "append";
  /** This replica's id: the origin the event will get. */
  origin: string;
  /** The seq the event will get if the whole request is accepted. */
  seq: number;
  /** This replica's wall clock now (information only). */
  time_ms: number;
  /** Position of the payload in its request's batch (0 for a single event). */
  index: number;
  /** Number of payloads in the request. */
  count: number;
}

export interface Readiness {
  ok: boolean;
  /** Why not ready, for a technician; empty when ok. */
  reasons: string[];
}

/**
 * What the admin API reads from the sync layer. The sync layer implements it;
 * every call must be cheap (it runs on each /api/status and /metrics request)
 * and must not throw.
 */
export interface BrokerStatus {
  url: string;
  /** "5" or "3.1.1". */
  mqtt: string;
  connects: number;
  disconnects: number;
  last_error: string | null;
}

export interface SyncView {
  /** True while the broker connection is up. */
  readonly connected: boolean;
  /** The broker node of the current (or last) connection, without credentials, and how often the link came up. */
  broker?(): BrokerStatus;
  /** Peers this replica has heard of (from their retained vv messages). */
  peers(): PeerStatus[];
  /** Totals since start. */
  counters(): SyncCounters;
  /** Origins seen written by two devices with one key (a copied data directory), bounded. */
  conflicts(): ConflictStatus[];
  /** Ranges this replica lacks that every peer holding them pruned (retention): it cannot take them, nor the origin's later events. */
  unavailable?(): UnavailableStatus[];
}

/** GET /api/fleet and the fleet page read this: every replica known, sorted and paged. Must not throw for a valid query. */
export interface FleetView {
  page(query: FleetQuery): FleetPage;
}

export interface UnavailableStatus {
  origin: string;
  /** Seqs from..to of origin are held by no peer known here. */
  from: number;
  to: number;
  /** The peers that said they pruned them. */
  pruned_by: string[];
  since_ms: number;
}

export interface ConflictStatus {
  /** The replica id two devices share. */
  origin: string;
  /** The first seq seen in conflict, and the peer the other copy came from. */
  seq: number;
  from: string;
  first_seen_ms: number;
  last_seen_ms: number;
  events: number;
}

export interface PeerStatus {
  /** The peer's replica id (16 hex digits). */
  id: string;
  /** Its human name from its vv message ("" when unknown). */
  name: string;
  /** Its version vector as last announced. */
  vv: Record<string, number>;
  /** Events this replica holds (of the origins the peer pulls) that the peer's vv does not cover yet. */
  lag_events: number;
  /** Age of the oldest event we hold that the peer has not acknowledged (its vv does not cover it); null when none. */
  oldest_unacked_age_ms: number | null;
  /** Wall-clock time (ms since epoch) of the last message from the peer; null when none since start. */
  last_seen_ms: number | null;
}

export interface SyncCounters {
  messages_in: number;
  messages_out: number;
  /** Events seen signed with a known origin's key but with content other than the one held (replica-id conflicts). */
  conflicts: number;
  /** Incoming messages dropped, by reason (e.g. "bad_cbor", "bad_crc", "unknown_version", "oversize", "gap"). */
  dropped: Record<string, number>;
}

export interface AdminLimits {
  /** Events per GET /api/events page at most (and the default page size). */
  page_events_max: number;
  page_events_default: number;
  /** Payload bytes per GET /api/events page at most (at least one event is always returned). */
  page_payload_max_bytes: number;
  /** Open SSE tails at most; more get 503. */
  sse_streams_max: number;
  /** Open SSE tails of one client (remote IPv4 address, or IPv6 /64) at most; more get 429. Every program on this machine is one client (loopback). */
  sse_per_client_max: number;
  /** Events in one CBOR batch at most; more get 413 BATCH_TOO_LARGE, found from the array header before anything is decoded. */
  batch_events_max: number;
  /** Bytes of one CBOR batch body at most (a single event up to the log's payload limit goes as application/octet-stream); larger get 413 BODY_TOO_LARGE before the body is read. */
  batch_body_max_bytes: number;
  /** How often an idle SSE tail looks for events written by others (sync); own appends wake it at once. */
  sse_poll_interval_ms: number;
  /** An idle SSE tail sends a comment line this often so proxies and clients see it alive. */
  sse_heartbeat_interval_ms: number;
  /** Rejected events kept for /api/quarantine (the newest ones). */
  quarantine_events_max: number;
  /** Events scanned for the rejected flag in one step (~2 us each), so no request or background step blocks appends for long. */
  quarantine_scan_step_max_events: number;
  /** Bytes of a rejected event's message shown in /api/quarantine. */
  quarantine_message_max_bytes: number;
  /** Bytes of a rejected event's original payload shown (base64) in /api/quarantine; the log keeps it whole. */
  quarantine_payload_max_bytes: number;
  /** The fill rate behind retention's "full in" (status, metrics, dashboard) is measured over this much of the clock's time. */
  retention_rate_window_ms: number;
}

export const admin_limits_default: AdminLimits = {
  page_events_max: 1000,
  page_events_default: 100,
  page_payload_max_bytes: 4 * 1024 * 1024,
  sse_streams_max: 32,
  sse_per_client_max: 8,
  batch_events_max: 1024,
  batch_body_max_bytes: 1024 * 1024,
  sse_poll_interval_ms: 100,
  sse_heartbeat_interval_ms: 15_000,
  quarantine_events_max: 100,
  quarantine_scan_step_max_events: 20_000,
  quarantine_message_max_bytes: 1024,
  quarantine_payload_max_bytes: 64 * 1024,
  retention_rate_window_ms: 10 * 60 * 1000,
};
