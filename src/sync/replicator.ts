/**
 * The replicator: inputs (connection changes, local progress, ticks,
 * received messages), the message switch, serving repair requests and live
 * pushes, and encoding what goes out. Its state is spread over files with
 * one job each; this header says which file owns what:
 *
 * - sync_options.ts: the options, resolved once (SyncSettings), the limits
 *   every file shares, and Outbound, what the transport gets.
 * - announcer.ts: publication of this replica's vv and vv entries and
 *   their rate limits (when each was last published, and what).
 * - repair_planner.ts: which origins have work and which to look at
 *   again, which peer each origin was asked of (requested_from), request
 *   ids and deadlines; it alone sets and clears a peer's outstanding `want`.
 * - claims.ts (owned by the planner): who claims what, within
 *   claims_per_peer_max, origins_max and claimants_per_origin_max; it alone
 *   writes peer.claims.
 * - peers.ts: per-peer facts (claims, pull list, online, backoff, cooldown,
 *   traffic).
 * - answer_limiter.ts: per-requester answer budgets and what was just
 *   answered (repeats are not answered again).
 * - gap_buffer.ts, fragments.ts, merge.ts: incoming events (parked out of
 *   order, reassembled from fragments, checked and appended), each buffer
 *   bounded in memory in all and per peer.
 * - peer_quota.ts: the disk quota for synced events (peer_events_max_bytes).
 * - sync_status.ts: the status view computed from all of the above.
 * - topics.ts: every topic and subscription filter string.
 * - here: the connection (connected, session), the live push position
 *   (pushed_seq), the transport's room (outbound_room_bytes), the peer
 *   table (at most peers_max), the last tick, and the reused encoder,
 *   decoder and message pool.
 */
import { assert } from "../lib/assert.ts";
import { flag_signed, frame_flags, frame_seq, frame_size_at } from "../log/frame.ts";
import { Announcer } from "./announcer.ts";
import { AnswerLimiter } from "./answer_limiter.ts";
import { type DropReason, type SyncCounters, new_counters } from "./counters.ts";
import { Reassembler } from "./fragments.ts";
import { GapBuffer } from "./gap_buffer.ts";
import { Malformed } from "./malformed.ts";
import { Merger } from "./merge.ts";
import { MessagePool } from "./message_pool.ts";
import { type EntryMessage, type Part, type SyncMessage, type VvMessage, type WantMessage, decode_message, encode_message } from "./messages.ts";
import { type SeqRange, vv_entry_bytes } from "./packed.ts";
import { PeerQuota } from "./peer_quota.ts";
import { Peer } from "./peers.ts";
import { RepairPlanner, type UnavailableRange } from "./repair_planner.ts";
import type { ReplicaLog } from "./replica_log.ts";
import {
  type Outbound,
  type ReplicatorOptions,
  type SyncSettings,
  envelope_reserve_bytes,
  header_room_bytes,
  message_pool_keep_max,
  publish_overhead_bytes,
  resolve_sync_options,
} from "./sync_options.ts";
import { type SyncStatus, sync_status } from "./sync_status.ts";
import { Topics } from "./topics.ts";
import { DecodedEvents, EventsChunker, EventsEncoder, decode_events, region_events_max } from "./wire_events.ts";
import type { RangeCheck } from "../log/key_ring.ts";
import { type RangeProblem, signed_range_steps } from "../log/signed_ranges.ts";
import { Conflicts } from "./conflicts.ts";
import { RejectionMessages } from "./rejections.ts";

export { type Outbound, type ReplicatorOptions, envelope_reserve_bytes, sync_defaults } from "./sync_options.ts";
export type { PeerStatus, SyncStatus } from "./sync_status.ts";

/**
 * Requests ended by their deadline per tick, at most: many peers' requests
 * can expire at once (a flood of liars asked together), and each frees up
 * to want_ranges_max origins; 64 x 256 take about 10 ms.
 */
export const timeouts_per_tick_max = 64;

/** Events one reassembled fragment may hold: senders fragment single events only. */

/**
 * One replica's side of the sync protocol (design.md section 3), as a pure
 * state machine: inputs are local progress (`on_local`), received messages
 * (`on_message`), connection changes and timer ticks, each with the current
 * time; outputs are messages to publish. No MQTT, clock, timer or randomness
 * in here, so a seeded simulator can drive many replicas deterministically.
 */
export class Replicator {
  readonly id: string;
  readonly topics: Topics;
  readonly counters: SyncCounters = new_counters();
  readonly max_packet_bytes: number;

  private readonly log: ReplicaLog;
  private readonly settings: SyncSettings;
  private readonly pull_set: Set<string> | null;

  private readonly peers = new Map<string, Peer>();
  private readonly announcer: Announcer;
  private readonly planner: RepairPlanner;
  private readonly gap: GapBuffer;
  private readonly merger: Merger;
  private readonly reassembler: Reassembler;
  private readonly answers: AnswerLimiter;
  private readonly quota: PeerQuota;
  /** Reused for every outgoing batch and every received one: no per-message buffers on the hot path. */
  private readonly encoder: EventsEncoder;
  private readonly decoded = new DecodedEvents();
  /** Replica-id conflicts by origin (two devices with one key), for status and the dashboard. */
  readonly conflicts = new Conflicts();
  /** What the sync validator said of recent rejections, by event id. */
  readonly rejections = new RejectionMessages();
  private readonly pool: MessagePool;

  /**
   * Bytes the transport can still queue without dropping anything, kept up
   * to date by the transport. Answers and pushes stay within it (answers get
   * at least one message's worth, so a request always makes progress): an
   * answer bigger than a rate-limited queue would lose its first messages
   * every time, and the requester would ask again forever.
   */
  outbound_room_bytes = Number.POSITIVE_INFINITY;

  private connected = false;
  /** Identifies the current broker connection in the status message. */
  private session = 0;
  /** Own events up to this seq were pushed live. */
  private pushed_seq = 0;
  private warned_own_ahead = false;
  /** When tick last ran: backoffs that expired since then free their peers' origins. */
  private last_tick_ms = Number.NEGATIVE_INFINITY;
  private quota_was_open = true;

  constructor(options: ReplicatorOptions) {
    const s = resolve_sync_options(options);
    this.settings = s;
    this.log = s.log;
    this.id = s.log.id;
    this.topics = new Topics(s.prefix);
    this.pull_set = s.pull_set;
    this.max_packet_bytes = s.max_packet_bytes;
    this.encoder = new EventsEncoder(s.max_packet_bytes - envelope_reserve_bytes);
    this.pool = new MessagePool(header_room_bytes + s.max_packet_bytes, message_pool_keep_max);
    this.gap = new GapBuffer(s.gap_buffer_max_bytes, s.gap_buffer_per_peer_max_bytes);
    this.reassembler = new Reassembler(s.reassembly_max_bytes, s.reassembly_per_peer_max_bytes, (reason) => this.counters.forgotten[reason]++);
    this.answers = new AnswerLimiter(s);
    this.quota = new PeerQuota(this.log, s.peer_events_max_bytes);
    const pulls = (origin: string) => this.pulls(origin);
    this.merger = new Merger({
      log: this.log,
      counters: this.counters,
      gap: this.gap,
      quota: this.quota,
      pulls,
      validate: s.validate,
      accept_batch_max_bytes: s.accept_batch_max_bytes,
      conflicts: this.conflicts,
      rejections: this.rejections,
      on_warning: s.on_warning,
    });
    this.announcer = new Announcer(
      {
        log: this.log,
        topics: this.topics,
        pulls,
        publish: (out: Outbound[], topic: string, m: VvMessage | EntryMessage) => this.emit(out, topic, m, true, null),
        own_claim_max: () => this.pushed_seq,
      },
      s,
    );
    this.planner = new RepairPlanner(
      {
        log: this.log,
        counters: this.counters,
        pulls,
        send_want: (out: Outbound[], peer: Peer, m: WantMessage) => this.emit(out, this.topics.want(this.id, peer.id), m, false, peer),
        quota_open: () => this.quota.open,
        claim_rose: (peer: Peer, origin: string, seq: number) => s.on_claim_raised(peer.id, origin, seq),
      },
      s,
    );
  }

  /** The peers known (at most peers_max), by id: retention's acknowledgements read their claims (acks.ts). Read only. */
  get peer_table(): ReadonlyMap<string, Readonly<Peer>> {
    return this.peers;
  }

  /** Changes whenever some peer's pull list does (acks.ts caches who pulls what until then). */
  get pulls_version(): number {
    return this.pull_changes;
  }

  private pull_changes = 0;

  /** Whether events of `origin` are stored here (own events always are, but never taken from peers; an origin outside trust.replicas never is). */
  pulls(origin: string): boolean {
    return origin !== this.id && (this.pull_set === null || this.pull_set.has(origin)) && this.log.keys.trusts(origin);
  }

  /** Topic filters the transport subscribes to (with no-local where the broker supports it); see Topics.subscriptions. */
  subscriptions(): string[] {
    return this.topics.subscriptions(this.id, this.pull_set, this.settings.watch_set);
  }

  /** The last-will message the broker publishes when this replica's link dies. */
  will(): Outbound {
    return this.encode(this.topics.status(this.id), { kind: "status", from: this.id, online: false, session: this.session }, true);
  }

  get is_connected(): boolean {
    return this.connected;
  }

  // ------------------------------------------------------------------ inputs

  /** The transport (re)connected and subscribed: announce status and vv, and resume. */
  on_connect(now_ms: number): Outbound[] {
    this.connected = true;
    this.planner.on_connect(now_ms);
    this.session = Math.max(this.session + 1, Math.floor(now_ms));
    for (const peer of this.peers.values()) peer.backoff_until_ms = 0;
    // Own events appended while offline reach peers through their repair requests, not a burst of pushes.
    this.pushed_seq = this.log.durable_held(this.id);
    const out: Outbound[] = [];
    this.announce(out, now_ms);
    this.planner.mark_all();
    this.planner.plan(out, now_ms);
    return out;
  }

  /** The link is gone: outstanding requests are forgotten (not held against the peers). */
  on_disconnect(_now_ms: number): void {
    this.connected = false;
    for (const peer of this.peers.values()) if (peer.want !== null) this.planner.cancel(peer);
  }

  /** Own durable events not pushed yet (more than one push burst's worth were ready): call on_local again soon. */
  get push_pending(): boolean {
    return this.connected && this.log.durable_held(this.id) > this.pushed_seq;
  }

  /** Local appends or durability progress: push own durable events, maybe publish the vv. */
  on_local(now_ms: number): Outbound[] {
    const out: Outbound[] = [];
    if (!this.connected) return out;
    this.push_own(out);
    this.announcer.maybe_publish(out, now_ms);
    return out;
  }

  /**
   * Timers: request deadlines, expired backoffs, buffer expiry, vv refresh,
   * live push, repair planning. Call every 50-250 ms. Costs O(peers) plus
   * the origins whose sources changed, never O(all origins known).
   */
  tick(now_ms: number): Outbound[] {
    const out: Outbound[] = [];
    let timeouts = 0;
    for (const peer of this.peers.values()) {
      // Past their deadline: ended, a bounded number per tick (the others a tick later).
      if (peer.want !== null && now_ms >= peer.want.deadline_ms) {
        if (timeouts++ < timeouts_per_tick_max) this.planner.time_out(peer, now_ms);
      } else if (peer.backoff_until_ms > this.last_tick_ms && peer.backoff_until_ms <= now_ms) this.planner.mark_peer(peer); // available again
    }
    this.last_tick_ms = now_ms;
    this.gap.expire(now_ms - this.settings.gap_hold_ms);
    this.reassembler.expire(now_ms - this.settings.gap_hold_ms);
    this.answers.sweep(now_ms);
    this.quota.catch_up();
    const quota_open = this.quota.open;
    if (quota_open && !this.quota_was_open) this.planner.mark_all();
    this.quota_was_open = quota_open;
    if (!this.connected) return out;
    this.push_own(out);
    this.maybe_announce_again(out, now_ms);
    this.announcer.maybe_publish(out, now_ms);
    this.planner.plan(out, now_ms);
    return out;
  }

  /** A peer came online that may not get our retained status and vv from the broker (announce_to_new_peers): publish them again. */
  private maybe_announce_again(out: Outbound[], now_ms: number): void {
    if (!this.announce_due || now_ms - this.announced_ms < Math.max(this.settings.vv_interval_ms, this.settings.announce_min_interval_ms)) return;
    this.announce(out, now_ms);
  }

  /** Our online status, vv and every entry, now (on connect, and again for peers that came online). */
  private announce(out: Outbound[], now_ms: number): void {
    this.announce_due = false;
    this.announced_ms = now_ms;
    this.emit(out, this.topics.status(this.id), { kind: "status", from: this.id, online: true, session: this.session }, true, null);
    this.announcer.publish_all(out, now_ms);
  }

  /** A clean stop: the offline status to publish before disconnecting. */
  shutdown(now_ms: number): Outbound[] {
    const out: Outbound[] = [];
    this.emit(out, this.topics.status(this.id), { kind: "status", from: this.id, online: false, session: this.session }, true, null);
    this.on_disconnect(now_ms);
    return out;
  }

  /** Bytes of out-of-order events parked for what `peer` sent (its share of the gap buffer). */
  parked_bytes_from(peer: string): number {
    return this.gap.bytes_of(peer);
  }

  /** A message received from the broker. Never throws for anything a peer can send. */
  on_message(topic: string, payload: Uint8Array, now_ms: number): Outbound[] {
    const steps = this.receive(topic, payload, now_ms);
    let step = steps.next();
    while (!step.done) step = steps.next(step.value.map((check) => this.log.keys.verify_now(check)));
    return step.value;
  }

  /**
   * on_message with the signatures verified by `verify` (a browser's
   * WebCrypto, which only answers asynchronously), from the same code. The
   * caller must make no other call into this replicator until it resolves
   * (MqttTransport queues them): the message is handled as one step, as
   * on_message handles it.
   */
  async on_message_async(topic: string, payload: Uint8Array, now_ms: number, verify: (checks: readonly RangeCheck[]) => Promise<boolean[]>): Promise<Outbound[]> {
    const steps = this.receive(topic, payload, now_ms);
    let step = steps.next();
    while (!step.done) step = steps.next(await verify(step.value));
    return step.value;
  }

  /** Handles a message, yielding the signature checks of the events it carries for the caller to verify. */
  private *receive(topic: string, payload: Uint8Array, now_ms: number): Generator<RangeCheck[], Outbound[], boolean[]> {
    const out: Outbound[] = [];
    this.counters.bytes_in += payload.length;
    const parsed = this.topics.parse(topic);
    if (parsed === null) return this.drop(out, "bad_topic", null);
    const known = this.peers.get(parsed.from) ?? null;
    if (parsed.from === this.id) return this.drop(out, "own_echo", null);
    if (payload.length > this.max_packet_bytes) return this.drop(out, "oversize", known);
    if ((parsed.kind === "want" || parsed.kind === "to") && parsed.peer !== this.id) return this.drop(out, "not_for_me", known);
    try {
      const message = decode_message(payload, parsed);
      const peer = this.peer_for(parsed.from);
      if (peer === null) return this.drop(out, "peer_limit", null);
      peer.last_seen_ms = now_ms;
      this.planner.claims.new_message();
      peer.messages_in++;
      peer.bytes_in += payload.length;
      this.counters.messages_in[message.kind]++;
      yield* this.handle(out, peer, message, now_ms);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      return this.drop(out, err.reason, this.peers.get(parsed.from) ?? null);
    }
    if (this.connected && this.planner.pending) this.planner.plan(out, now_ms);
    return out;
  }

  // --------------------------------------------------------------- handling

  private *handle(out: Outbound[], peer: Peer, m: SyncMessage, now_ms: number): Generator<RangeCheck[], void, boolean[]> {
    switch (m.kind) {
      case "vv":
        return this.handle_vv(peer, m, now_ms);
      case "entry":
        return this.handle_entry(peer, m, now_ms);
      case "status": {
        const changed = m.online !== peer.online;
        if (m.online && m.session !== peer.session && this.settings.announce_to_new_peers) this.announce_due = true;
        if (m.online && peer.online === false) peer.backoff_until_ms = 0;
        // Offline, or back with a new session (clean start, subscriptions made anew): a request in flight to it is lost.
        if (peer.want !== null && (!m.online || (peer.session !== null && m.session !== peer.session))) this.planner.cancel(peer);
        peer.online = m.online;
        if (m.online) peer.session = m.session;
        // Its rank as a source changed: look again at what it could serve (a repeated status costs nothing).
        if (changed) this.planner.mark_peer(peer);
        return;
      }
      case "events":
        yield* this.take_events(peer, "events", m.events, m.part, now_ms, null);
        return;
      case "want":
        return this.serve(out, peer, m, now_ms);
      case "to":
        yield* this.take_events(peer, "to", m.events, m.part, now_ms, m.req);
        this.planner.answer(peer, m, now_ms);
        return;
    }
  }

  private handle_vv(peer: Peer, m: VvMessage, now_ms: number): void {
    peer.name = m.name;
    let pull: "*" | Set<string> = "*";
    if (m.pull !== "*") {
      // Only what matters here, within pulls_per_peer_max: this replica (it may want our entries) and origins held here.
      pull = new Set<string>();
      for (const origin of m.pull) {
        if (origin !== this.id && this.log.held(origin) === 0) continue;
        if (pull.size >= this.settings.pulls_per_peer_max) {
          this.counters.forgotten.pulls_per_peer++;
          break;
        }
        pull.add(origin);
      }
    }
    if (!same_pull(peer.pull, pull)) {
      this.announcer.peer_pull_changed(peer, peer.pull, pull); // it may want other entries of ours
      peer.pull = pull;
      this.pull_changes++;
    }
    // Only what matters here: origins this replica pulls (sources) and its own (the peer's acknowledgement).
    for (const [origin, seq] of m.vv) {
      if (origin === this.id || this.pulls(origin)) this.planner.raise(peer, origin, seq, now_ms);
      this.note_ack(peer, origin, seq);
    }
    this.check_own_claim(peer, m.vv.get(this.id) ?? 0);
    this.check_head(peer, m, now_ms);
  }

  /**
   * A peer's own newest event, as its vv names it: held here with another
   * crc, it was signed by another holder of the peer's key (a copied data
   * directory), even when nobody ever sends it here.
   */
  private check_head(peer: Peer, m: VvMessage, now_ms: number): void {
    const head = m.head ?? null;
    // Only against what is durable here: a head that just arrived is still being written (reading it would flush the
    // log's staging on every vv a hub hears); a later vv, at the latest the refresh, checks it.
    if (head === null || head.seq > this.log.durable_held(peer.id) || this.heads_reported.get(peer.id) === head.seq) return;
    const held = this.log.get(peer.id, head.seq);
    if (held === null || held.crc === head.crc) return;
    if (this.heads_reported.size >= this.settings.peers_max) this.heads_reported.clear();
    this.heads_reported.set(peer.id, head.seq);
    this.counters.conflicts++;
    if (this.conflicts.note(peer.id, head.seq, peer.id, now_ms)) {
      this.settings.on_warning(
        `replica-id conflict: replica ${peer.id} announces its event ${peer.id}:${head.seq} with content other than the one held here; two devices hold its key and write different events (was its data directory copied, e.g. an SD card cloned?). Keep one of them; give the other a new data directory (interlog init)`,
        { origin: peer.id, seq: head.seq },
      );
    }
  }

  /** A peer came online since our last announcement (announce_to_new_peers only). */
  private announce_due = false;
  private announced_ms = Number.NEGATIVE_INFINITY;

  /** Per peer, the head seq already reported as a conflict (so a repeated vv counts once). */
  private readonly heads_reported = new Map<string, number>();

  private handle_entry(peer: Peer, m: EntryMessage, now_ms: number): void {
    peer.name = m.name;
    if (peer.pull === null) {
      this.announcer.peer_pull_changed(peer, null, new Set());
      peer.pull = new Set();
      this.pull_changes++;
    }
    if (peer.pull !== "*" && peer.pull.has(m.origin) !== m.pulls) {
      this.pull_changes++;
      if (!m.pulls) {
        peer.pull.delete(m.origin);
        this.announcer.peer_pull_entry(m.origin, false);
      } else if (peer.pull.size < this.settings.pulls_per_peer_max) {
        peer.pull.add(m.origin);
        this.announcer.peer_pull_entry(m.origin, true);
      } else this.counters.forgotten.pulls_per_peer++;
    }
    if (m.origin === this.id || this.pulls(m.origin)) this.planner.raise(peer, m.origin, m.seq, now_ms);
    this.note_ack(peer, m.origin, m.seq);
    if (m.origin === this.id) this.check_own_claim(peer, m.seq);
  }

  /** The peer's durable vv says it holds origin up to seq: its acknowledgement (Peer.acked), within its bounds. */
  private note_ack(peer: Peer, origin: string, seq: number): void {
    const held = this.log.held(origin);
    if (held === 0 || (origin === this.id && seq > held)) return;
    const current = peer.acked.get(origin);
    if (current !== undefined) {
      if (seq > current) peer.acked.set(origin, seq);
      return;
    }
    if (peer.acked.size >= this.settings.claims_per_peer_max) {
      this.counters.forgotten.claims_per_peer++;
      return;
    }
    peer.acked.set(origin, seq);
  }

  private check_own_claim(peer: Peer, own_claim: number): void {
    if (own_claim > this.log.held(this.id) && !this.warned_own_ahead) {
      this.warned_own_ahead = true;
      this.settings.on_warning(
        `peer ${peer.id} claims events of this replica (${this.id}) up to seq ${own_claim} but only ${this.log.held(this.id)} are held here; another device may share this replica id, or this data directory was restored from an old copy`,
        { peer: peer.id, claim: own_claim, held: this.log.held(this.id) },
      );
    }
  }

  /**
   * Checks and merges received events (reassembling a fragmented range
   * first): crc of every frame, then the origin's signature over every range
   * (keep_signed_ranges); only verified ranges reach the merge. An answer is
   * taken only from a peer this replica asked, for the origins it asked.
   */
  private *take_events(peer: Peer, kind: "events" | "to", bytes: Uint8Array, part: Part | null, now_ms: number, req: number | null): Generator<RangeCheck[], void, boolean[]> {
    if (kind === "to" && (peer.want === null || peer.want.req !== req)) throw new Malformed("unsolicited_answer", `an answer from ${peer.id} to a request not outstanding`);
    let region = bytes;
    if (part !== null) {
      const whole = this.reassembler.add(peer.id, kind, part, bytes, now_ms);
      if (whole === null) return;
      region = whole;
    }
    if (region.length === 0) return;
    const decoded = this.decoded;
    // A reassembled region is one signed range: a region of many tiny events would only inflate memory and time.
    decode_events(region, decoded, part === null ? Number.POSITIVE_INFINITY : region_events_max);
    if (kind === "events") {
      // Live pushes carry only the publisher's own events.
      for (const first of decoded.run_first) {
        if (decoded.origin[first] !== peer.id) throw new Malformed("wrong_origin", `an event of another origin pushed by ${peer.id}`);
      }
    } else {
      const want = peer.want as NonNullable<Peer["want"]>;
      for (const first of decoded.run_first) {
        if (!want.ranges.some((r) => r.origin === decoded.origin[first])) throw new Malformed("unsolicited_answer", `an answer from ${peer.id} with events of ${decoded.origin[first]}, not asked of it`);
      }
    }
    const kept = yield* signed_range_steps(decoded, this.log.keys, this.count_refused);
    // Runs as the merge reads them (one origin's consecutive seqs): a sender may cut a range into two wire runs.
    decoded.reindex_runs();
    if (kept > 0) yield* this.merger.merge_steps(decoded, peer.id, now_ms, (origin, seq) => this.planner.raise(peer, origin, seq, now_ms));
    if (part !== null) decoded.shrink();
  }

  private readonly count_refused = (problem: RangeProblem, events: number): void => {
    if (problem === "unsigned") this.counters.events_dropped.partial_range += events;
    else this.counters.events_dropped[problem] += events;
  };

  // ----------------------------------------------------------------- serving

  /**
   * Answers a repair request with durable events, at most the window's
   * worth and what the requester's answer budget allows, chunked under the
   * packet size. The answer goes only to the replica named in the topic.
   * Events the requester evidently holds (its own vv says so) or was sent
   * in the last answer_repeat_ms are not sent (again): a replayed request
   * costs an empty final answer, and a requester whose budget is used up
   * gets nothing but, at most once per answer_repeat_ms, that empty answer.
   */
  private serve(out: Outbound[], peer: Peer, m: WantMessage, now_ms: number): void {
    this.counters.wants_received++;
    if (m.req === peer.last_served_req) return; // the broker delivered it twice
    peer.last_served_req = m.req;
    const answers = this.answers;
    const topic = this.topics.to(this.id, peer.id);
    const answer = (events: Uint8Array, part: Part | null, last: boolean, held: Map<string, number> | null, gone: Map<string, number> | null = null): void =>
      this.emit(out, topic, gone === null ? { kind: "to", from: this.id, to: peer.id, req: m.req, events, part, last, held } : { kind: "to", from: this.id, to: peer.id, req: m.req, events, part, last, held, gone }, false, peer);
    const bytes_out_before = peer.bytes_out;
    const allowed = answers.available(peer.id, now_ms);
    if (allowed <= 0) {
      this.drop(out, "answer_rate", peer);
      if (answers.may_say_nothing(peer.id, now_ms)) answer(new Uint8Array(0), null, true, null);
      answers.charge(peer.id, peer.bytes_out - bytes_out_before, now_ms);
      return;
    }
    const ranges: SeqRange[] = [];
    /** Origins asked from below what retention pruned here: origin -> pruned through. */
    const gone = new Map<string, number>();
    let repeated = false;
    for (const r of m.ranges) {
      const sent = answers.sent_upto(peer.id, r.origin, now_ms);
      if (sent > r.after) repeated = true;
      const after = Math.max(r.after, sent, peer.claim(r.origin));
      if (after >= r.upto) continue;
      const pruned = this.log.pruned_through(r.origin);
      if (after < pruned) {
        // Gone here: said so, and nothing of it served (the requester cannot take later events without these; it asks another peer).
        if (gone.size < this.settings.vv_entries_per_message_max) gone.set(r.origin, pruned);
        continue;
      }
      ranges.push({ origin: r.origin, after, upto: r.upto });
    }
    this.counters.ranges_gone_sent += gone.size;
    if (repeated && ranges.length === 0 && gone.size === 0) {
      this.drop(out, "want_repeated", peer);
      answer(new Uint8Array(0), null, true, null);
      answers.charge(peer.id, peer.bytes_out - bytes_out_before, now_ms);
      return;
    }
    let budget = Math.min(m.max_bytes, this.settings.window_bytes, Math.max(this.max_packet_bytes, this.outbound_room_bytes), allowed);
    const encoder = this.encoder;
    encoder.reset();
    const chunker = new EventsChunker(encoder, (events, part) => answer(events, part, false, null));
    const durable = this.log.durable_count;
    const held = new Map<string, number>();
    let events = 0;
    for (const r of ranges) {
      if (budget <= 0) break;
      const run = this.encode_run(chunker, r.origin, r.after, r.upto, durable, budget, events === 0, Math.max(this.max_packet_bytes, this.outbound_room_bytes));
      budget -= run.bytes;
      events += run.events;
      if (run.events > 0) answers.note_sent(peer.id, r.origin, run.last_seq, now_ms);
      if (run.out_of_budget) break;
      if (run.last_seq < r.upto) {
        held.set(r.origin, run.last_seq > r.after ? run.last_seq : Math.min(r.after, this.log.durable_held(r.origin)));
      }
    }
    // The last message also carries `held` and `gone`: trimmed to what a message holds (gone first), and alone when the chunk leaves no room.
    const held_room = this.settings.vv_entries_per_message_max - gone.size;
    for (const origin of held.keys()) if (held.size > held_room) held.delete(origin);
    if (encoder.bytes + (held.size + gone.size) * vv_entry_bytes > encoder.limit) chunker.flush();
    answer(encoder.chunk(), null, true, held, gone.size > 0 ? gone : null);
    encoder.reset();
    this.counters.events_served += events;
    answers.charge(peer.id, peer.bytes_out - bytes_out_before, now_ms);
  }

  /** Pushes own durable events not pushed yet on P/<id>/events, at most push_burst_bytes per call. */
  private push_own(out: Outbound[]): void {
    const durable_own = this.log.durable_held(this.id);
    if (durable_own <= this.pushed_seq || this.outbound_room_bytes < this.max_packet_bytes) return;
    const topic = this.topics.events(this.id);
    const encoder = this.encoder;
    encoder.reset();
    const chunker = new EventsChunker(encoder, (events, part) => this.emit(out, topic, { kind: "events", from: this.id, events, part }, false, null));
    const budget = Math.min(this.settings.push_burst_bytes, this.outbound_room_bytes);
    const run = this.encode_run(chunker, this.id, this.pushed_seq, durable_own, Number.POSITIVE_INFINITY, budget, true);
    this.pushed_seq = run.last_seq;
    chunker.flush();
    encoder.reset();
    this.counters.events_pushed += run.events;
  }

  /**
   * Feeds origin's events after seq `after` to the chunker, up to seq `upto`
   * and below position `pos_end`, in whole signed ranges (a receiver takes
   * nothing else): a range goes when it fits budget_bytes and room_bytes
   * (what the outbound queue takes without dropping); the first one whatever
   * its size if take_first, or a range bigger than the room would never go.
   * A range begun at or below upto is finished past it.
   */
  private encode_run(
    chunker: EventsChunker,
    origin: string,
    after: number,
    upto: number,
    pos_end: number,
    budget_bytes: number,
    take_first: boolean,
    room_bytes = this.outbound_room_bytes,
  ): { last_seq: number; events: number; bytes: number; out_of_budget: boolean } {
    const run = { last_seq: after, events: 0, bytes: 0, out_of_budget: false };
    const range = this.range_frames;
    range.clear();
    this.log.scan_origin(origin, after, (map, view, at, pos) => {
      if (pos >= pos_end) return false;
      const seq = frame_seq(view, at);
      if (range.count === 0 && seq > upto) return false;
      range.add(map, view, at, frame_size_at(view, at));
      if ((frame_flags(view, at) & flag_signed) === 0) return true;
      const first = run.events === 0 && take_first;
      // The first range goes whatever its size (else a range bigger than the room would never go); later ones only within the room.
      if (!first && (run.bytes + range.bytes > budget_bytes || run.bytes + range.bytes > room_bytes)) {
        run.out_of_budget = true;
        return false;
      }
      for (let i = 0; i < range.count; i++) chunker.add(range.maps[i], range.views[i], range.offsets[i]);
      run.bytes += range.bytes;
      run.events += range.count;
      run.last_seq = seq;
      range.clear();
      return true;
    });
    range.clear();
    return run;
  }

  /** Frames of the range encode_run is reading (reused). */
  private readonly range_frames = new RangeFrames();

  // ------------------------------------------------------------------ status

  /** Per-peer lag and counters for /metrics and /api/peers. */
  status(now_ms: number): SyncStatus {
    const { log, connected, pull_set, counters, gap, reassembler, planner, quota } = this;
    return sync_status(
      {
        log,
        connected,
        pull_set,
        pulls: (origin) => this.pulls(origin),
        peers: this.peers.values(),
        counters,
        gap,
        reassembler,
        origins_tracked: planner.claims.size,
        origins_with_work: planner.origins_with_work,
        peer_events_bytes: quota.limited ? quota.used_bytes() : null,
        unavailable: planner.unavailable(),
      },
      now_ms,
    );
  }

  /** Ranges no known peer still holds (they pruned them): see SyncStatus.unavailable. Cheap, for the admin API. */
  unavailable(): UnavailableRange[] {
    return this.planner.unavailable();
  }

  // --------------------------------------------------------------- plumbing

  private peer_for(id: string): Peer | null {
    let peer = this.peers.get(id);
    if (peer === undefined) {
      if (this.peers.size >= this.settings.peers_max) return null;
      peer = new Peer(id);
      this.peers.set(id, peer);
    }
    return peer;
  }

  private drop(out: Outbound[], reason: DropReason, peer: Peer | null): Outbound[] {
    this.counters.dropped[reason]++;
    if (peer !== null) peer.dropped++;
    return out;
  }

  private encode(topic: string, m: SyncMessage, retain: boolean): Outbound {
    // Batches go into pooled buffers, returned by the transport once acknowledged.
    const pooled = m.kind === "events" || m.kind === "to" ? this.pool.take() : null;
    // Encoded after header_room_bytes, which the transport may fill with its packet header (one buffer to the socket, no join).
    const payload = encode_message(m, pooled === null ? null : pooled.subarray(header_room_bytes));
    assert(payload.length + topic.length + publish_overhead_bytes <= this.max_packet_bytes, "an outgoing message fits in max_packet_bytes");
    const o: Outbound = { topic, payload, retain, qos: 1 };
    if (pooled !== null && payload.buffer === pooled.buffer) {
      o.release = () => this.pool.give(pooled);
      o.header_room_bytes = header_room_bytes;
    }
    return o;
  }

  private emit(out: Outbound[], topic: string, m: SyncMessage, retain: boolean, peer: Peer | null): void {
    const o = this.encode(topic, m, retain);
    this.counters.messages_out[m.kind]++;
    this.counters.bytes_out += o.payload.length;
    if (peer !== null) {
      peer.messages_out++;
      peer.bytes_out += o.payload.length;
    }
    out.push(o);
  }
}

function same_pull(a: "*" | ReadonlySet<string> | null, b: "*" | ReadonlySet<string> | null): boolean {
  if (a === null || b === null || a === "*" || b === "*") return a === b;
  if (a.size !== b.size) return false;
  for (const origin of a) if (!b.has(origin)) return false;
  return true;
}

/** The frames of one signed range, in place in their segment mappings. */
class RangeFrames {
  readonly maps: Uint8Array[] = [];
  readonly views: DataView[] = [];
  readonly offsets: number[] = [];
  count = 0;
  bytes = 0;

  add(map: Uint8Array, view: DataView, at: number, frame_bytes: number): void {
    this.maps[this.count] = map;
    this.views[this.count] = view;
    this.offsets[this.count] = at;
    this.count++;
    this.bytes += frame_bytes;
  }

  clear(): void {
    this.count = 0;
    this.bytes = 0;
    this.maps.length = 0;
    this.views.length = 0;
  }
}
