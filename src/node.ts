import { type AdminServer, check_listen_allowed, create_admin_app, start_admin_server } from "./admin/index.ts";
import type { SyncView } from "./admin/deps.ts";
import { check_page_app_dir, resolve_page_app_dir } from "./admin/routes/page_app.ts";
import type { Config } from "./config/config.ts";
import { type Clock, type TimerHandle, type Timers, system_clock, system_timers } from "./lib/clock.ts";
import { Log } from "./log/log.ts";
import { MaintainPacer, PeerAcks } from "./sync/acks.ts";
import { Fleet, fleet_sample_check_ms, fleet_source } from "./sync/fleet.ts";
import { Replicator } from "./sync/replicator.ts";
import { MqttTransport } from "./transport/mqtt_transport.ts";
import { broker_presets, transport_preset } from "./transport/presets.ts";
import { build_validator } from "./validators/registry.ts";

/** Largest POST /api/events body: one payload of the log's maximum plus CBOR framing. */
export const admin_body_limit_bytes = 17 * 1024 * 1024;
/** How often own durable events are handed to sync when appends come from the admin API. */

/**
 * Share of what the log could use at start (its segment files plus the free
 * space) that synced events may take when replication.peer_events_max is not
 * set; local appends keep the rest.
 */
export const peer_events_disk_share_default = 0.5;

export type LogLine = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/**
 * One running replica: the log, sync through MQTT when configured, and the
 * admin API, wired together from a config. `serve` runs one of these.
 */
export class ReplicaNode {
  private stop_local_push: (() => void) | null = null;
  /** Runs log.maintain as upstreams acknowledge (retention only). */
  private pacer: MaintainPacer | null = null;
  /** Asks the fleet view (GET /api/fleet) every fleet_sample_check_ms whether its hourly reading is due. */
  private fleet_timer: TimerHandle | null = null;

  private constructor(
    readonly config: Config,
    readonly log: Log,
    readonly replicator: Replicator | null,
    readonly transport: MqttTransport | null,
    readonly admin: AdminServer,
  ) {}

  static async start(config: Config, log_line: LogLine, clock: Clock = system_clock, timers: Timers = system_timers): Promise<ReplicaNode> {
    // Refuse an open admin API before touching anything.
    check_listen_allowed(config.admin.listen, config.admin.token ?? undefined);
    // A missing page build is refused before the data directory is opened or made.
    const page_app_dir = config.admin.app ? resolve_page_app_dir(config.admin.app_dir ?? undefined) : undefined;
    if (page_app_dir !== undefined) check_page_app_dir(page_app_dir);
    const validate_append = build_validator(config.validators.append);
    const validate_sync = build_validator(config.validators.sync);
    const explain_sync = build_validator(config.validators.sync);
    const log = await Log.open({
      dir: config.data_dir,
      name: config.name,
      sync: config.log.sync,
      sync_interval_ms: config.log.sync_interval_ms,
      segment_size_bytes: config.log.segment_size_bytes,
      trust_replicas: config.trust.replicas,
      retention: config.retention === null ? null : { max_bytes: config.retention.max_bytes, policy: config.retention.policy, reserve_own_bytes: config.retention.reserve_own_bytes },
      clock,
      on_warning: (msg, details) => log_line("warn", msg, details),
    });
    try {
      let replicator: Replicator | null = null;
      let transport: MqttTransport | null = null;
      let pacer: MaintainPacer | null = null;
      if (config.retention !== null) {
        pacer = new MaintainPacer(() => log.maintain(), clock, timers);
        log_line("info", "retention keeps the data directory within max_bytes", { ...config.retention });
      }
      const notify_acks = pacer === null ? () => {} : () => pacer.notify();
      const mqtt = config.mqtt;
      if (mqtt !== null) {
        if (mqtt.username !== null && mqtt.username !== log.id) {
          // With a broker that binds the id to the login (config/mosquitto/), every publish would be refused, silently.
          log_line("warn", `mqtt.username is not this replica's id: a broker that binds the id to the login (ACL pattern write ${mqtt.prefix}/%u/#) refuses every publish of this replica; make its login with: interlog provision --data-dir ${config.data_dir}`, {
            username: mqtt.username,
            id: log.id,
          });
        }
        const { pull, peer_events_max_bytes: _quota, ...limits } = config.replication;
        const peer_events_max_bytes = peer_events_quota(config, log);
        log_line("info", "synced events may take at most peer_events_max_bytes of the log", { peer_events_max_bytes });
        // A replica that pulls a list follows only those replicas; it must hear its upstreams' acknowledgements too.
        const upstreams = config.retention?.upstreams ?? null;
        const watch = pull === "*" || upstreams === null ? undefined : [...new Set([...pull, ...upstreams])];
        replicator = new Replicator({
          ...limits,
          log,
          prefix: mqtt.prefix,
          pull,
          watch,
          peer_events_max_bytes,
          max_packet_bytes: mqtt.max_packet_bytes,
          announce_to_new_peers: !broker_presets[transport_preset(mqtt.preset)].retained_to_wildcards,
          validate: (payload, ctx) => validate_sync(payload, { kind: "sync", origin: ctx.origin, seq: ctx.seq, time_ms: ctx.time_ms }),
          on_warning: (msg, details) => log_line("warn", msg, details),
          on_claim_raised: notify_acks,
        });
        // Upstreams' durable vvs, as sync hears them, are what retention counts as acknowledged (also for the prune command).
        log.set_acks(new PeerAcks(replicator, config.retention?.upstreams ?? null));
        transport = new MqttTransport({
          replicator,
          url: mqtt.urls,
          protocol_version: mqtt.protocol_version,
          username: mqtt.username ?? undefined,
          password: mqtt.password ?? undefined,
          tls: mqtt.tls
            ? { ca_file: mqtt.ca_file ?? undefined, cert_file: mqtt.cert_file ?? undefined, key_file: mqtt.key_file ?? undefined }
            : undefined,
          preset: transport_preset(mqtt.preset),
          clock,
          on_warning: (msg, details) => log_line("warn", msg, details),
          on_info: (msg, details) => log_line("info", msg, details),
        });
      }
      const fleet = new Fleet(fleet_source(log, replicator), clock);
      const app = create_admin_app({
        log,
        fleet,
        token: config.admin.token ?? undefined,
        allowed_hosts: config.admin.allowed_hosts,
        page_app_dir,
        body_limit_bytes: admin_body_limit_bytes,
        validate_append,
        // What the validator said on arrival; after a restart, a fresh instance runs again (sync's own keeps its per-origin memory).
        explain_rejection: (payload, ctx) => replicator?.rejections.get(ctx.origin, ctx.seq) ?? explain_sync(payload, { kind: "sync", ...ctx }),
        sync: replicator !== null && transport !== null ? sync_view(replicator, transport, clock) : undefined,
        clock,
        on_warning: (msg, details) => log_line("warn", msg, details),
      });
      const admin = start_admin_server({ app, listen: config.admin.listen });
      const node = new ReplicaNode(config, log, replicator, transport, admin);
      node.pacer = pacer;
      node.fleet_timer = timers.every(fleet_sample_check_ms, () => fleet.sample());
      pacer?.start();
      transport?.start();
      node.start_local_push();
      return node;
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  /** Appends made through the admin API become durable on their own schedule; hand them to sync as they do (no polling: an idle device stays asleep). */
  private start_local_push(): void {
    if (this.transport === null) return;
    const transport = this.transport;
    this.stop_local_push = this.log.on_durable(() => transport.notify_local());
  }

  /** Stops taking requests, publishes offline status, flushes and fsyncs the log. */
  async stop(): Promise<void> {
    this.stop_local_push?.();
    this.fleet_timer?.cancel();
    this.pacer?.stop();
    await this.admin.stop();
    await this.transport?.stop();
    await this.log.close();
  }
}

/**
 * replication.peer_events_max, or peer_events_disk_share_default of what the
 * log could use now (no quota when the file system cannot tell); with a
 * retention budget, at most max_bytes less reserve_own, so peers' events
 * cannot take the share kept for this replica's own.
 */
export function peer_events_quota(config: Config, log: Pick<Log, "disk_bytes" | "free_disk_bytes">): number {
  const configured = config.replication.peer_events_max_bytes;
  let quota = Number.POSITIVE_INFINITY;
  if (configured !== undefined) quota = configured;
  else {
    const free = log.free_disk_bytes();
    if (free !== null) quota = Math.floor((log.disk_bytes + free) * peer_events_disk_share_default);
  }
  if (config.retention !== null) quota = Math.min(quota, config.retention.max_bytes - config.retention.reserve_own_bytes);
  return quota;
}

function sync_view(replicator: Replicator, transport: MqttTransport, clock: Clock): SyncView {
  return {
    get connected() {
      return transport.status().connected;
    },
    broker() {
      const t = transport.status();
      return { url: t.url, mqtt: t.protocol_version === 5 ? "5" : "3.1.1", connects: t.connects, disconnects: t.disconnects, last_error: t.last_error };
    },
    peers() {
      return replicator.status(clock.now_ms()).peers.map((p) => ({
        id: p.id,
        name: p.name,
        vv: p.vv,
        lag_events: p.lag_events,
        oldest_unacked_age_ms: p.oldest_unacked_age_ms,
        last_seen_ms: p.last_seen_ms,
      }));
    },
    conflicts() {
      return replicator.conflicts.list();
    },
    unavailable() {
      return replicator.unavailable();
    },
    counters() {
      const c = replicator.counters;
      const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
      // Labels: whole messages by reason, single events as event_<reason>, what a limit made this replica forget as limit_<reason>.
      return {
        messages_in: sum(c.messages_in),
        messages_out: sum(c.messages_out),
        conflicts: c.conflicts,
        // event_unavailable: events no known peer holds any more (every claimant pruned them), so not taken (status: sync.unavailable).
        dropped: { ...c.dropped, ...prefixed("event_", c.events_dropped), event_unavailable: c.events_unavailable, ...prefixed("limit_", c.forgotten) },
      };
    },
  };
}

function prefixed(prefix: string, r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [`${prefix}${k}`, v]));
}
