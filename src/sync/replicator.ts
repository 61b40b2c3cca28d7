import { assert } from "../lib/assert.ts";
import { InterlogError } from "../lib/errors.ts";
import { frame_seq, frame_size_at } from "../log/frame.ts";
import { assert_origin } from "../log/ids.ts";
import { type DropReason, type SyncCounters, new_counters } from "./counters.ts";
import { Reassembler } from "./fragments.ts";
import { GapBuffer } from "./gap_buffer.ts";
import { Malformed } from "./malformed.ts";
import { Merger, type SyncValidator } from "./merge.ts";
import { MessagePool } from "./message_pool.ts";
import {
  type AnswerMessage,
  type EntryMessage,
  type Part,
  type SyncMessage,
  type VvMessage,
  type WantMessage,
  decode_message,
  encode_message,
  want_ranges_max,
} from "./messages.ts";
import { type SeqRange, vv_entry_bytes } from "./packed.ts";
import { Peer } from "./peers.ts";
import type { ReplicaLog } from "./replica_log.ts";
import { Topics } from "./topics.ts";
import { DecodedEvents, EventsChunker, EventsEncoder, decode_events } from "./wire_events.ts";

/** A message for the transport to publish. */
export interface Outbound {
  topic: string;
  payload: Uint8Array;
  retain: boolean;
  qos: 0 | 1;
  /** Call once the broker acknowledged the message and nothing reads `payload` any more: its buffer is reused. */
  release?: () => void;
}

export interface ReplicatorOptions {
  log: ReplicaLog;
  /** Topic prefix P (default "interlog"). */
  prefix?: string;
  /** Origins to replicate: "*" or a list of replica ids (design: replication.pull). Own events are always kept. */
  pull?: "*" | readonly string[];
  /** Replicas whose vv and status to follow, i.e. possible sources. Default: everyone when pull is "*", else the pulled origins. */
  watch?: "*" | readonly string[];
  /** Sync validator run on every incoming event before it is appended. */
  validate?: SyncValidator | null;
  /** Largest MQTT message, topic and headers included (default 128 KiB, the AWS IoT Core limit). */
  max_packet_bytes?: number;
  /** Flow-control window: frame bytes requested per repair request, and the most served per request. */
  window_bytes?: number;
  /** A repair request with no answer for this long is abandoned and the peer backed off. */
  want_timeout_ms?: number;
  retry_backoff_base_ms?: number;
  retry_backoff_max_ms?: number;
  /** Least time between two vv publications while it changes. */
  vv_interval_ms?: number;
  /**
   * Added to that least time per origin listed, so a hub's vv with many
   * origins costs each subscriber a bounded bandwidth (16 bytes per entry per
   * this many ms: ~16 KB/s at the default) whatever the fleet size.
   */
  vv_ms_per_origin?: number;
  /** The vv is republished at least this often even when unchanged, so a lost one is made good. */
  vv_refresh_ms?: number;
  gap_buffer_max_bytes?: number;
  /** Parked out-of-order events older than this are dropped. */
  gap_hold_ms?: number;
  /** Most own-event bytes pushed live per call (the rest follows on the next call). */
  push_burst_bytes?: number;
  /** Most peers tracked; messages from further unknown ids are dropped. */
  peers_max?: number;
  /** Largest batch handed to log.accept_checked at once. */
  accept_batch_max_bytes?: number;
  on_warning?: (message: string, details: Record<string, unknown>) => void;
}

export const sync_defaults = {
  prefix: "interlog",
  max_packet_bytes: 128 * 1024,
  window_bytes: 4 * 1024 * 1024,
  want_timeout_ms: 10_000,
  retry_backoff_base_ms: 1_000,
  retry_backoff_max_ms: 30_000,
  vv_interval_ms: 200,
  vv_ms_per_origin: 1,
  vv_refresh_ms: 15_000,
  gap_buffer_max_bytes: 4 * 1024 * 1024,
  gap_hold_ms: 60_000,
  push_burst_bytes: 1024 * 1024,
  peers_max: 10_000,
  accept_batch_max_bytes: 1024 * 1024,
} as const;

/** Idle outgoing buffers kept for reuse (at most 2 MiB at 128 KiB packets: a steady stream needs few, a device's idle memory stays small). */
const message_pool_keep_max = 16;

/** Kept free in every message for the topic, the MQTT fixed and variable header and the CBOR envelope. */
export const envelope_reserve_bytes = 512;
export const max_packet_min_bytes = 4096;

export interface PeerStatus {
  id: string;
  name: string;
  /** What the peer is known to hold: origin -> highest seq (its vv, pushes and answers). */
  vv: Record<string, number>;
  online: boolean | null;
  last_seen_ms: number;
  /** Events this replica holds durably, that the peer pulls, beyond what the peer is known to hold. */
  lag_events: number;
  /** Events the peer is known to hold, that this replica pulls, beyond what it holds. */
  behind_events: number;
  /** Age of the oldest own event the peer pulls but has not acknowledged in its vv; null when none. */
  oldest_unacked_age_ms: number | null;
  failures: number;
  want_outstanding: boolean;
  messages_in: number;
  bytes_in: number;
  messages_out: number;
  bytes_out: number;
  dropped: number;
}

export interface SyncStatus {
  id: string;
  connected: boolean;
  pull: "*" | string[];
  peers: PeerStatus[];
  counters: SyncCounters;
  gap_buffer_bytes: number;
  gap_buffer_events: number;
  reassembly_bytes: number;
}

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

  private readonly log: ReplicaLog;
  private readonly pull_set: Set<string> | null;
  private readonly watch_set: Set<string> | null;
  readonly max_packet_bytes: number;
  private readonly window_bytes: number;
  private readonly want_timeout_ms: number;
  private readonly retry_backoff_base_ms: number;
  private readonly retry_backoff_max_ms: number;
  private readonly vv_interval_ms: number;
  private readonly vv_ms_per_origin: number;
  private readonly vv_refresh_ms: number;
  private readonly gap_hold_ms: number;
  private readonly push_burst_bytes: number;
  private readonly peers_max: number;
  private readonly on_warning: (message: string, details: Record<string, unknown>) => void;

  private readonly peers = new Map<string, Peer>();
  /** origin -> the peer asked for it; one outstanding request per origin. */
  private readonly busy = new Map<string, Peer>();
  private readonly gap: GapBuffer;
  private readonly merger: Merger;
  private readonly reassembler = new Reassembler();
  /** Reused for every outgoing batch and every received one: no per-message buffers on the hot path. */
  private readonly encoder: EventsEncoder;
  private readonly decoded = new DecodedEvents();
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
  private req_counter = 0;
  /** Identifies the current broker connection in the status message. */
  private session = 0;
  /** Own events up to this seq were pushed live. */
  private pushed_seq = 0;
  private last_vv_ms = Number.NEGATIVE_INFINITY;
  private last_vv_count = -1;
  private last_vv_entries = 0;
  /** origin -> peers claiming to hold some of it. */
  private readonly claimants = new Map<string, Set<Peer>>();
  /** Origins whose sources changed since the last plan; `plan_all` asks for a full pass. */
  private readonly dirty = new Set<string>();
  private plan_all = true;
  private warned_own_ahead = false;
  /** vv entries last published (origin -> seq), and when. */
  private readonly entries_published = new Map<string, number>();
  private entries_dirty = false;
  private last_entries_ms = Number.NEGATIVE_INFINITY;
  private last_entries_refresh_ms = Number.NEGATIVE_INFINITY;
  private last_entries_count = -1;
  private warned_vv_truncated = false;

  constructor(options: ReplicatorOptions) {
    const d = sync_defaults;
    this.log = options.log;
    this.id = options.log.id;
    this.topics = new Topics(options.prefix ?? d.prefix);
    const pull = options.pull ?? "*";
    this.pull_set = pull === "*" ? null : id_set(pull, "replication.pull");
    const watch = options.watch ?? (pull === "*" ? "*" : pull);
    this.watch_set = watch === "*" ? null : id_set(watch, "replication.watch");
    this.pull_set?.delete(this.id);
    this.watch_set?.delete(this.id);
    this.max_packet_bytes = options.max_packet_bytes ?? d.max_packet_bytes;
    if (!Number.isSafeInteger(this.max_packet_bytes) || this.max_packet_bytes < max_packet_min_bytes) {
      throw new InterlogError("BAD_ARGUMENT", `max packet size ${this.max_packet_bytes} bytes is too small; use at least ${max_packet_min_bytes} bytes`);
    }
    this.window_bytes = Math.max(options.window_bytes ?? d.window_bytes, this.max_packet_bytes);
    this.want_timeout_ms = options.want_timeout_ms ?? d.want_timeout_ms;
    this.retry_backoff_base_ms = options.retry_backoff_base_ms ?? d.retry_backoff_base_ms;
    this.retry_backoff_max_ms = options.retry_backoff_max_ms ?? d.retry_backoff_max_ms;
    this.vv_interval_ms = options.vv_interval_ms ?? d.vv_interval_ms;
    this.vv_ms_per_origin = options.vv_ms_per_origin ?? d.vv_ms_per_origin;
    this.vv_refresh_ms = options.vv_refresh_ms ?? d.vv_refresh_ms;
    this.gap_hold_ms = options.gap_hold_ms ?? d.gap_hold_ms;
    this.push_burst_bytes = options.push_burst_bytes ?? d.push_burst_bytes;
    this.peers_max = options.peers_max ?? d.peers_max;
    this.on_warning = options.on_warning ?? (() => {});
    this.encoder = new EventsEncoder(this.max_packet_bytes - envelope_reserve_bytes);
    this.pool = new MessagePool(this.max_packet_bytes, message_pool_keep_max);
    this.gap = new GapBuffer(options.gap_buffer_max_bytes ?? d.gap_buffer_max_bytes);
    this.merger = new Merger({
      log: this.log,
      counters: this.counters,
      gap: this.gap,
      pulls: (origin) => this.pulls(origin),
      validate: options.validate ?? null,
      accept_batch_max_bytes: options.accept_batch_max_bytes ?? d.accept_batch_max_bytes,
      on_warning: this.on_warning,
    });
  }

  /** Whether events of `origin` are stored here (own events always are, but never taken from peers). */
  pulls(origin: string): boolean {
    return origin !== this.id && (this.pull_set === null || this.pull_set.has(origin));
  }

  /**
   * Topic filters the transport subscribes to (with no-local where the
   * broker supports it). A replica that pulls everything follows whole vvs;
   * one that pulls a list follows only the vv entries it needs (its own
   * acknowledgement and the origins it pulls), so its traffic does not grow
   * with the number of origins a hub holds.
   */
  subscriptions(): string[] {
    const t = this.topics;
    const p = t.prefix;
    const subs = [`${p}/+/want/${this.id}`, `${p}/+/to/${this.id}`];
    const watched = this.watch_set === null ? ["+"] : [...new Set([...this.watch_set, ...(this.pull_set ?? [])])];
    for (const w of watched) {
      subs.push(`${p}/${w}/status`);
      if (this.pull_set === null) subs.push(`${p}/${w}/vv`);
      else for (const origin of [this.id, ...this.pull_set]) subs.push(`${p}/${w}/vv/${origin}`);
    }
    if (this.pull_set === null) subs.push(`${p}/+/events`);
    else for (const id of this.pull_set) subs.push(t.events(id));
    return subs;
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
    if (this.req_counter === 0) this.req_counter = Math.max(1, Math.floor(now_ms));
    this.session = Math.max(this.session + 1, Math.floor(now_ms));
    for (const peer of this.peers.values()) peer.backoff_until_ms = 0;
    // Own events appended while offline reach peers through their repair requests, not a burst of pushes.
    this.pushed_seq = this.log.durable_held(this.id);
    const out: Outbound[] = [];
    this.emit(out, this.topics.status(this.id), { kind: "status", from: this.id, online: true, session: this.session }, true, null);
    this.publish_vv(out, now_ms);
    this.maybe_publish_entries(out, now_ms, true);
    this.plan_all = true;
    this.plan(out, now_ms);
    return out;
  }

  /** The link is gone: outstanding requests are forgotten (not held against the peers). */
  on_disconnect(_now_ms: number): void {
    this.connected = false;
    for (const peer of this.peers.values()) if (peer.want !== null) this.cancel_want(peer);
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
    this.maybe_publish_vv(out, now_ms);
    this.maybe_publish_entries(out, now_ms, false);
    return out;
  }

  /** Timers: request timeouts, vv refresh, live push, repair planning. Call every 50-250 ms. */
  tick(now_ms: number): Outbound[] {
    const out: Outbound[] = [];
    for (const peer of this.peers.values()) {
      if (peer.want !== null && now_ms >= peer.want.deadline_ms) {
        this.counters.wants_timed_out++;
        this.cancel_want(peer);
        peer.penalize(now_ms, this.retry_backoff_base_ms, this.retry_backoff_max_ms);
      }
    }
    this.gap.expire(now_ms - this.gap_hold_ms);
    if (!this.connected) return out;
    this.push_own(out);
    this.maybe_publish_vv(out, now_ms);
    this.maybe_publish_entries(out, now_ms, false);
    // Backoffs expire with time, so ticks look at every origin.
    this.plan_all = true;
    this.plan(out, now_ms);
    return out;
  }

  /** A clean stop: the offline status to publish before disconnecting. */
  shutdown(now_ms: number): Outbound[] {
    const out: Outbound[] = [];
    this.emit(out, this.topics.status(this.id), { kind: "status", from: this.id, online: false, session: this.session }, true, null);
    this.on_disconnect(now_ms);
    return out;
  }

  /** A message received from the broker. Never throws for anything a peer can send. */
  on_message(topic: string, payload: Uint8Array, now_ms: number): Outbound[] {
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
      peer.messages_in++;
      peer.bytes_in += payload.length;
      this.counters.messages_in[message.kind]++;
      this.handle(out, peer, message, now_ms);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      return this.drop(out, err.reason, this.peers.get(parsed.from) ?? null);
    }
    if (this.connected && (this.plan_all || this.dirty.size > 0)) this.plan(out, now_ms);
    return out;
  }

  // --------------------------------------------------------------- handling

  private handle(out: Outbound[], peer: Peer, m: SyncMessage, now_ms: number): void {
    switch (m.kind) {
      case "vv":
        return this.handle_vv(peer, m);
      case "entry":
        return this.handle_entry(peer, m);
      case "status":
        if (m.online && peer.online === false) peer.backoff_until_ms = 0;
        // Offline, or back with a new session (clean start, subscriptions made anew): a request in flight to it is lost.
        if (peer.want !== null && (!m.online || (peer.session !== null && m.session !== peer.session))) this.cancel_want(peer);
        peer.online = m.online;
        if (m.online) peer.session = m.session;
        for (const origin of peer.claims.keys()) this.dirty.add(origin);
        return;
      case "events":
        this.take_events(peer, "events", m.events, m.part, now_ms);
        return;
      case "want":
        return this.serve(out, peer, m);
      case "to":
        return this.handle_answer(peer, m, now_ms);
    }
  }

  private handle_vv(peer: Peer, m: VvMessage): void {
    peer.name = m.name;
    peer.pull = m.pull === "*" ? "*" : new Set(m.pull);
    if (m.pull !== "*") this.entries_dirty = true; // it may want entries of ours
    // Only what matters here: origins this replica pulls (sources) and its own (the peer's acknowledgement).
    for (const [origin, seq] of m.vv) if (origin === this.id || this.pulls(origin)) this.raise(peer, origin, seq);
    this.check_own_claim(peer, m.vv.get(this.id) ?? 0);
  }

  private handle_entry(peer: Peer, m: EntryMessage): void {
    peer.name = m.name;
    if (peer.pull !== "*") {
      if (peer.pull === null) peer.pull = new Set();
      if (m.pulls) peer.pull.add(m.origin);
      else peer.pull.delete(m.origin);
    }
    if (m.origin === this.id || this.pulls(m.origin)) this.raise(peer, m.origin, m.seq);
    if (m.origin === this.id) this.check_own_claim(peer, m.seq);
  }

  private check_own_claim(peer: Peer, own_claim: number): void {
    if (own_claim > this.log.held(this.id) && !this.warned_own_ahead) {
      this.warned_own_ahead = true;
      this.on_warning(
        `peer ${peer.id} claims events of this replica (${this.id}) up to seq ${own_claim} but only ${this.log.held(this.id)} are held here; another device may share this replica id, or this data directory was restored from an old copy`,
        { peer: peer.id, claim: own_claim, held: this.log.held(this.id) },
      );
    }
  }

  private handle_answer(peer: Peer, m: AnswerMessage, now_ms: number): void {
    this.take_events(peer, "to", m.events, m.part, now_ms);
    const want = peer.want;
    if (want === null || want.req !== m.req) return;
    want.deadline_ms = now_ms + this.want_timeout_ms;
    if (m.held !== null) {
      // The sender's own word on what it holds beats an older claim.
      for (const [origin, seq] of m.held) {
        if (seq >= peer.claim(origin)) continue;
        if (seq > 0) peer.claims.set(origin, seq);
        else {
          peer.claims.delete(origin);
          this.claimants.get(origin)?.delete(peer);
        }
      }
    }
    if (m.last) this.finish_want(peer, now_ms);
  }

  /** Checks and merges received events (reassembling a fragmented one first). */
  private take_events(peer: Peer, kind: "events" | "to", bytes: Uint8Array, part: Part | null, now_ms: number): void {
    let region = bytes;
    if (part !== null) {
      const whole = this.reassembler.add(`${kind}/${peer.id}`, part, bytes);
      if (whole === null) return;
      region = whole;
    }
    if (region.length === 0) return;
    const decoded = this.decoded;
    // Senders fragment single events only; a reassembled "event" of many tiny ones would only inflate memory.
    decode_events(region, decoded, part === null ? Number.POSITIVE_INFINITY : 1);
    if (kind === "events") {
      // Live pushes carry only the publisher's own events.
      for (const first of decoded.run_first) {
        if (decoded.origin[first] !== peer.id) throw new Malformed("wrong_origin", `an event of another origin pushed by ${peer.id}`);
      }
    }
    this.merger.merge(decoded, peer.id, now_ms, (origin, seq) => this.raise(peer, origin, seq));
  }

  /** Records that `peer` holds origin up to seq. */
  private raise(peer: Peer, origin: string, seq: number): void {
    if (!peer.raise_claim(origin, seq)) return;
    let set = this.claimants.get(origin);
    if (set === undefined) {
      set = new Set();
      this.claimants.set(origin, set);
    }
    set.add(peer);
    this.dirty.add(origin);
  }

  // ----------------------------------------------------------------- serving

  /** Answers a repair request with durable events, at most the window's worth, chunked under the packet size. */
  private serve(out: Outbound[], peer: Peer, m: WantMessage): void {
    this.counters.wants_received++;
    if (m.req === peer.last_served_req) return; // the broker delivered it twice
    peer.last_served_req = m.req;
    let budget = Math.min(m.max_bytes, this.window_bytes, Math.max(this.max_packet_bytes, this.outbound_room_bytes));
    const topic = this.topics.to(this.id, peer.id);
    const answer = (events: Uint8Array, part: Part | null, last: boolean, held: Map<string, number> | null): void =>
      this.emit(out, topic, { kind: "to", from: this.id, to: peer.id, req: m.req, events, part, last, held }, false, peer);
    const encoder = this.encoder;
    encoder.reset();
    const chunker = new EventsChunker(encoder, (events, part) => answer(events, part, false, null));
    const durable = this.log.durable_count;
    const held = new Map<string, number>();
    let events = 0;
    for (const r of m.ranges) {
      if (budget <= 0) break;
      const run = this.encode_run(chunker, r.origin, r.after, r.upto, durable, budget, events === 0);
      budget -= run.bytes;
      events += run.events;
      if (run.out_of_budget) break;
      if (run.last_seq < r.upto) {
        held.set(r.origin, run.last_seq > r.after ? run.last_seq : Math.min(r.after, this.log.durable_held(r.origin)));
      }
    }
    // The last message also carries `held`: trimmed to what a message holds, and alone when the chunk leaves no room.
    const held_room = Math.floor((this.max_packet_bytes - 2 * envelope_reserve_bytes) / vv_entry_bytes);
    for (const origin of held.keys()) if (held.size > held_room) held.delete(origin);
    if (encoder.bytes + held.size * vv_entry_bytes > encoder.limit) chunker.flush();
    answer(encoder.chunk(), null, true, held);
    encoder.reset();
    this.counters.events_served += events;
  }

  /** Pushes own durable events not pushed yet on P/<id>/events, at most push_burst_bytes per call. */
  private push_own(out: Outbound[]): void {
    const durable_own = this.log.durable_held(this.id);
    if (durable_own <= this.pushed_seq || this.outbound_room_bytes < this.max_packet_bytes) return;
    const topic = this.topics.events(this.id);
    const encoder = this.encoder;
    encoder.reset();
    const chunker = new EventsChunker(encoder, (events, part) => this.emit(out, topic, { kind: "events", from: this.id, events, part }, false, null));
    const budget = Math.min(this.push_burst_bytes, this.outbound_room_bytes);
    const run = this.encode_run(chunker, this.id, this.pushed_seq, durable_own, Number.POSITIVE_INFINITY, budget, true);
    this.pushed_seq = run.last_seq;
    chunker.flush();
    encoder.reset();
    this.counters.events_pushed += run.events;
  }

  /**
   * Feeds origin's events after seq `after` to the chunker, up to seq `upto`
   * and below position `pos_end`, within budget_bytes of frames (the first
   * event goes even when larger, if take_first).
   */
  private encode_run(
    chunker: EventsChunker,
    origin: string,
    after: number,
    upto: number,
    pos_end: number,
    budget_bytes: number,
    take_first: boolean,
  ): { last_seq: number; events: number; bytes: number; out_of_budget: boolean } {
    const run = { last_seq: after, events: 0, bytes: 0, out_of_budget: false };
    this.log.scan_origin(origin, after, (map, view, at, pos) => {
      const seq = frame_seq(view, at);
      if (seq > upto || pos >= pos_end) return false;
      const frame_bytes = frame_size_at(view, at);
      if (run.bytes + frame_bytes > budget_bytes && (run.events > 0 || !take_first)) {
        run.out_of_budget = true;
        return false;
      }
      chunker.add(map, view, at);
      run.bytes += frame_bytes;
      run.last_seq = seq;
      run.events++;
      return true;
    });
    return run;
  }

  /**
   * Publishes the vv entries that changed (all of them on connect and every
   * vv_refresh_ms), at most every vv_interval_ms whatever the number of
   * origins, so a spoke hears its acknowledgement as often in a fleet of a
   * thousand as in one of ten.
   */
  private maybe_publish_entries(out: Outbound[], now_ms: number, force: boolean): void {
    if (!this.entries_dirty && !force && this.log.durable_count === this.last_entries_count && now_ms - this.last_entries_refresh_ms < this.vv_refresh_ms) return;
    if (!force && now_ms - this.last_entries_ms < this.vv_interval_ms) return;
    const refresh = force || now_ms - this.last_entries_refresh_ms >= this.vv_refresh_ms;
    if (refresh) this.last_entries_refresh_ms = now_ms;
    this.last_entries_ms = now_ms;
    this.last_entries_count = this.log.durable_count;
    this.entries_dirty = false;
    const wanted = this.entries_wanted();
    const vv = this.log.durable_vv();
    for (const origin of wanted) {
      // Only what this replica holds: a peer's pull list cannot make it publish entries for origins it has never seen.
      const seq = vv.get(origin) ?? 0;
      if (seq === 0 || (!refresh && this.entries_published.get(origin) === seq)) continue;
      this.entries_published.set(origin, seq);
      const entry: EntryMessage = { kind: "entry", from: this.id, name: this.log.name, origin, seq, pulls: origin === this.id || this.pulls(origin) };
      this.emit(out, this.topics.entry(this.id, origin), entry, true, null);
    }
  }

  /**
   * Entries worth publishing: our own origin always; a partial replica all
   * it holds (a few origins); a full one only what known partial replicas
   * follow (their own acknowledgement and what they pull). A full replica
   * hears every partial one's vv, so it knows them.
   */
  private entries_wanted(): Set<string> {
    const wanted = new Set<string>([this.id]);
    if (this.pull_set !== null) {
      for (const origin of this.pull_set) if (this.log.held(origin) > 0) wanted.add(origin);
      return wanted;
    }
    for (const peer of this.peers.values()) {
      if (peer.pull === null || peer.pull === "*") continue;
      wanted.add(peer.id);
      for (const origin of peer.pull) wanted.add(origin);
    }
    return wanted;
  }

  private maybe_publish_vv(out: Outbound[], now_ms: number): void {
    const changed = this.log.durable_count !== this.last_vv_count;
    const since = now_ms - this.last_vv_ms;
    const interval = Math.max(this.vv_interval_ms, this.last_vv_entries * this.vv_ms_per_origin);
    if ((changed && since >= interval) || since >= Math.max(this.vv_refresh_ms, interval)) this.publish_vv(out, now_ms);
  }

  private publish_vv(out: Outbound[], now_ms: number): void {
    this.last_vv_count = this.log.durable_count;
    this.last_vv_ms = now_ms;
    let vv = this.log.durable_vv();
    const entries_max = Math.floor((this.max_packet_bytes - 2 * envelope_reserve_bytes) / vv_entry_bytes);
    if (vv.size > entries_max) {
      // Keep own events first: that entry is the acknowledgement peers wait for.
      const own = vv.get(this.id);
      const kept = new Map<string, number>();
      if (own !== undefined) kept.set(this.id, own);
      for (const [origin, seq] of vv) if (kept.size < entries_max) kept.set(origin, seq);
      vv = kept;
      if (!this.warned_vv_truncated) {
        this.warned_vv_truncated = true;
        this.on_warning(`the version vector has more origins than fit in one ${this.max_packet_bytes}-byte message; only ${entries_max} are published`, {});
      }
    }
    this.last_vv_entries = vv.size;
    const pull = this.pull_set === null ? "*" : [...this.pull_set];
    this.emit(out, this.topics.vv(this.id), { kind: "vv", from: this.id, name: this.log.name, vv, pull }, true, null);
  }

  // ---------------------------------------------------------------- repairs

  /**
   * Asks peers for what they hold and this replica lacks: per origin the best
   * available peer, one request per peer. Looks at the origins whose sources
   * changed, or at all of them on ticks and (re)connects.
   */
  private plan(out: Outbound[], now_ms: number): void {
    if (!this.connected) return;
    const origins = this.plan_all ? [...this.claimants.keys()] : [...this.dirty];
    this.plan_all = false;
    this.dirty.clear();
    const best = new Map<string, Peer>();
    for (const origin of origins) {
      if (this.busy.has(origin) || !this.pulls(origin)) continue;
      const held = this.log.held(origin);
      let chosen: Peer | null = null;
      for (const peer of this.claimants.get(origin) ?? []) {
        if (!peer.available(now_ms) || peer.claim(origin) <= held) continue;
        if (chosen === null || peer.better_than(chosen, origin)) chosen = peer;
      }
      if (chosen !== null) best.set(origin, chosen);
    }
    if (best.size === 0) return;
    const wants = new Map<Peer, SeqRange[]>();
    for (const [origin, peer] of best) {
      let ranges = wants.get(peer);
      if (ranges === undefined) {
        ranges = [];
        wants.set(peer, ranges);
      }
      if (ranges.length >= want_ranges_max) continue;
      ranges.push({ origin, after: this.log.held(origin), upto: peer.claim(origin) });
    }
    for (const [peer, ranges] of wants) {
      const req = this.req_counter++;
      peer.want = { req, ranges, sent_ms: now_ms, deadline_ms: now_ms + this.want_timeout_ms };
      for (const r of ranges) this.busy.set(r.origin, peer);
      this.counters.wants_sent++;
      const want: WantMessage = { kind: "want", from: this.id, to: peer.id, req, max_bytes: this.window_bytes, ranges };
      this.emit(out, this.topics.want(this.id, peer.id), want, false, peer);
    }
  }

  private finish_want(peer: Peer, now_ms: number): void {
    const want = peer.want;
    assert(want !== null, "finishing an outstanding request");
    this.cancel_want(peer);
    const progress = want.ranges.some((r) => this.log.held(r.origin) > r.after);
    const satisfied = want.ranges.every((r) => this.log.held(r.origin) >= r.upto);
    if (progress || satisfied) {
      peer.failures = 0;
      peer.backoff_until_ms = 0;
    } else {
      this.counters.wants_unproductive++;
      peer.penalize(now_ms, this.retry_backoff_base_ms, this.retry_backoff_max_ms);
    }
  }

  private cancel_want(peer: Peer): void {
    const want = peer.want;
    if (want === null) return;
    peer.want = null;
    for (const r of want.ranges) {
      if (this.busy.get(r.origin) === peer) this.busy.delete(r.origin);
      this.dirty.add(r.origin);
    }
  }

  // ------------------------------------------------------------------ status

  /** Per-peer lag and counters for /metrics and /api/peers. */
  status(now_ms: number): SyncStatus {
    const mine = this.log.durable_vv();
    const own = mine.get(this.id) ?? 0;
    const peers: PeerStatus[] = [];
    for (const p of this.peers.values()) {
      let lag = 0;
      for (const [origin, seq] of mine) if (origin !== p.id && p.pulls(origin)) lag += Math.max(0, seq - p.claim(origin));
      let behind = 0;
      for (const [origin, seq] of p.claims) if (this.pulls(origin)) behind += Math.max(0, seq - this.log.held(origin));
      let oldest: number | null = null;
      if (p.pulls(this.id) && p.claim(this.id) < own) {
        const e = this.log.get(this.id, p.claim(this.id) + 1);
        if (e !== null) oldest = Math.max(0, now_ms - e.time_ms);
      }
      peers.push({
        id: p.id,
        name: p.name,
        vv: Object.fromEntries(p.claims),
        online: p.online,
        last_seen_ms: p.last_seen_ms,
        lag_events: lag,
        behind_events: behind,
        oldest_unacked_age_ms: oldest,
        failures: p.failures,
        want_outstanding: p.want !== null,
        messages_in: p.messages_in,
        bytes_in: p.bytes_in,
        messages_out: p.messages_out,
        bytes_out: p.bytes_out,
        dropped: p.dropped,
      });
    }
    return {
      id: this.id,
      connected: this.connected,
      pull: this.pull_set === null ? "*" : [...this.pull_set],
      peers,
      counters: this.counters,
      gap_buffer_bytes: this.gap.bytes,
      gap_buffer_events: this.gap.count,
      reassembly_bytes: this.reassembler.bytes,
    };
  }

  // --------------------------------------------------------------- plumbing

  private peer_for(id: string): Peer | null {
    let peer = this.peers.get(id);
    if (peer === undefined) {
      if (this.peers.size >= this.peers_max) return null;
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
    const payload = encode_message(m, pooled);
    assert(payload.length + topic.length + 16 <= this.max_packet_bytes, "an outgoing message fits in max_packet_bytes");
    const o: Outbound = { topic, payload, retain, qos: 1 };
    if (pooled !== null && payload.buffer === pooled.buffer) o.release = () => this.pool.give(pooled);
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

function id_set(ids: readonly string[], what: string): Set<string> {
  for (const id of ids) {
    try {
      assert_origin(id);
    } catch {
      throw new InterlogError("BAD_ARGUMENT", `${what}: "${id}" is not a replica id; expected 16 lowercase hex digits`);
    }
  }
  return new Set(ids);
}
