import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";
import type { Log } from "../log/log.ts";

/**
 * The fleet view (issue 14): one row per replica this one knows, that is
 * every peer sync has heard from (peers.ts) and every origin whose events
 * are held here (the log's vv), this replica included. Per row:
 *
 * - last_seen_ms: when this replica last received a well-formed message of
 *   any kind from that replica (Peer.last_seen_ms, set in
 *   Replicator.on_message), since this process started; null when never
 *   (an origin whose events only came through others, or this replica).
 * - lag_events: how far behind this replica is on that replica's own
 *   events, the number an operator of a hub needs ("how much of truck 7's
 *   data has not reached the hub yet"): the seq the replica claims for its
 *   own origin (its vv, vv entries and pushes: Peer.claims; else its
 *   acknowledged vv, Peer.acked) minus the seq held here, at least 0.
 *   Null when no such claim is known: never heard from, its origin not
 *   pulled here (replication.pull), or the claim forgotten at sync's
 *   limits. This replica's own row has 0. (The other direction, what a
 *   peer lacks of this replica's events, is /api/peers' lag_events.)
 * - events_per_day: how fast the seq held here of that origin grew, over a
 *   sliding window of up to fleet_rate_window_ms (24 h), scaled to a day:
 *   (held now - held at the oldest reading in the window) / time between.
 *   Readings are one global sample per fleet_sample_spacing_ms (1 h) of
 *   every tracked origin, plus the origin's first sighting; null until a
 *   reading is at least fleet_rate_min_span_ms old. rate_window_ms says over
 *   how long it was measured.
 * - last_event_time_ms: the time_ms the origin wrote into its newest event
 *   held here (its own wall clock, information only: events carry one,
 *   log_event.ts); null when none is held or it was pruned.
 * - conflicts: conflicting events seen for that origin (a copied data
 *   directory, conflicts.ts); 0 when none (or past conflict_origins_max).
 *
 * Memory: per tracked origin fleet_samples_max readings plus four numbers
 * (first sighting, cached newest event time), all in Float64Arrays indexed
 * by a slot, and one map entry id -> slot (the id string is the log's or
 * the peer's): 224 B of arrays (up to twice that while capacity doubles),
 * about 300 B in all (measured: see fleet_bytes_per_origin). At most
 * origins_max origins are tracked (default fleet_origins_max_default);
 * past it rows still show, without a rate (counted in `untracked`).
 *
 * Pure: the clock is injected, nothing here does I/O or holds a timer; the
 * host calls sample() now and then (node.ts every fleet_sample_check_ms,
 * and page() itself), a reading is taken only when one is due.
 */

/** The window events_per_day is measured over, at most. */
export const fleet_rate_window_ms = 24 * 60 * 60 * 1000;
/** Least time between two global readings. */
export const fleet_sample_spacing_ms = 60 * 60 * 1000;
/** Readings kept per origin: one window's worth. */
export const fleet_samples_max = 24;
/** A rate needs a reading at least this old. */
export const fleet_rate_min_span_ms = 60 * 1000;
/** Origins tracked (readings kept) at most by default. */
export const fleet_origins_max_default = 100_000;
/** How often the node asks whether a reading is due (cheap when not). */
export const fleet_sample_check_ms = 60 * 1000;
/** Rows per page at most (GET /api/fleet limit). */
export const fleet_page_rows_max = 1000;
/**
 * A page is cut from the rows sorted for an earlier request with the same
 * sort and order when that was less than this long ago (by the clock): a
 * page scrolled through asks for several blocks at once, and each would
 * otherwise rebuild and sort every row (tens of ms at 10 000 rows). One
 * such snapshot is kept, and dropped by the next sample() once stale.
 */
export const fleet_snapshot_max_age_ms = 1000;
/** Rows per page when the request names no limit. */
export const fleet_page_rows_default = 100;
/** Slots first allocated; the arrays double up to origins_max. */
const slots_initial = 64;
/** Numbers kept per slot besides the readings: first sighting time and seq, newest event's seq and time. */
const slot_fields = 4;
/** Bytes of typed arrays per tracked origin. */
export const fleet_array_bytes_per_origin = (fleet_samples_max + slot_fields) * 8;
/**
 * Heap per tracked origin, arrays and map entry, measured with bun:jsc
 * heapStats().heapSize after full collections, 100 000 origins, Bun 1.4.5
 * x64 (test/sync/fleet.test.ts): 224 B of arrays (RSS agrees) and about
 * 70 B of map entry.
 */
export const fleet_bytes_per_origin = 300;

const day_ms = 24 * 60 * 60 * 1000;

// The readings kept cover the window: one per spacing.
assert(fleet_samples_max * fleet_sample_spacing_ms === fleet_rate_window_ms, "fleet readings cover the rate window");
assert(fleet_rate_min_span_ms < fleet_sample_spacing_ms, "a rate is shown before the second reading");
assert(fleet_page_rows_default <= fleet_page_rows_max, "the default page fits the maximum");

/** Columns the fleet sorts by (GET /api/fleet ?sort=). */
export const fleet_sort_keys = ["id", "name", "last_seen", "events_per_day", "lag", "last_event", "conflicts"] as const;
export type FleetSortKey = (typeof fleet_sort_keys)[number];
export type FleetOrder = "asc" | "desc";

export interface FleetRow {
  /** The replica id (16 hex digits). */
  id: string;
  /** Its name from its vv messages; this replica's own name; "" when unknown. */
  name: string;
  /** This replica. */
  self: boolean;
  /** Sync has heard from it since start. */
  peer: boolean;
  /** From its retained status; null when unknown. */
  online: boolean | null;
  last_seen_ms: number | null;
  /** Highest seq of its origin held here (0 when none). */
  held_seq: number;
  /** Highest seq of its own origin it claims to hold; null when unknown. */
  claimed_seq: number | null;
  lag_events: number | null;
  events_per_day: number | null;
  /** The span events_per_day was measured over (0 when null). */
  rate_window_ms: number;
  last_event_time_ms: number | null;
  conflicts: number;
}

export interface FleetQuery {
  sort: FleetSortKey;
  order: FleetOrder;
  offset: number;
  limit: number;
}

export interface FleetPage {
  /** This replica's clock when answering (ages on the page are computed against it). */
  time_ms: number;
  /** Rows in all. */
  total: number;
  offset: number;
  limit: number;
  sort: FleetSortKey;
  order: FleetOrder;
  rows: FleetRow[];
  /** Origins past origins_max: shown, without a rate. */
  untracked: number;
}

/** What the fleet reads of a peer (peers.ts's Peer has it). */
export interface FleetPeer {
  readonly id: string;
  readonly name: string;
  readonly online: boolean | null;
  /** 0 when never. */
  readonly last_seen_ms: number;
  readonly claims: ReadonlyMap<string, number>;
  readonly acked: ReadonlyMap<string, number>;
}

/** Everything the fleet is computed from; read only, each call cheap. */
export interface FleetSource {
  readonly id: string;
  readonly name: string;
  /** origin -> highest seq held here. */
  vv(): Record<string, number>;
  /** The origin's time_ms of its event `seq` held here, or null (not held, pruned). */
  event_time_ms(origin: string, seq: number): number | null;
  peers(): Iterable<FleetPeer>;
  conflicts(): Iterable<{ readonly origin: string; readonly events: number }>;
}

/** The source for a log and, when sync runs, its replicator (peer_table, conflicts). */
export function fleet_source(
  log: Pick<Log, "id" | "name" | "vv" | "get">,
  sync: { readonly peer_table: ReadonlyMap<string, FleetPeer>; readonly conflicts: { list(): { origin: string; events: number }[] } } | null,
): FleetSource {
  return {
    id: log.id,
    name: log.name,
    vv: () => log.vv(),
    event_time_ms: (origin, seq) => log.get(origin, seq)?.time_ms ?? null,
    peers: () => (sync === null ? [] : sync.peer_table.values()),
    conflicts: () => (sync === null ? [] : sync.conflicts.list()),
  };
}

export class Fleet {
  private readonly slots = new Map<string, number>();
  private capacity = 0;
  /** slot * fleet_samples_max + k: the seq held at global reading k (NaN: not tracked then). */
  private readings = new Float64Array(0);
  /** slot * slot_fields + (0 first sighting time, 1 its seq, 2 newest event's seq, 3 its time or NaN). */
  private fields = new Float64Array(0);
  private readonly reading_times = new Float64Array(fleet_samples_max);
  private readings_taken = 0;
  /** The ring index of the next reading. */
  private reading_next = 0;
  private last_reading_ms = Number.NaN;
  /** Origins seen past origins_max at the last rows(). */
  untracked = 0;
  private snapshot: { sort: FleetSortKey; order: FleetOrder; at_ms: number; rows: FleetRow[] } | null = null;

  constructor(
    private readonly source: FleetSource,
    private readonly clock: Clock,
    readonly origins_max: number = fleet_origins_max_default,
  ) {
    assert(Number.isSafeInteger(origins_max) && origins_max >= 1, "origins_max is a positive integer");
    this.sample();
  }

  /** Origins tracked (with readings). */
  get tracked(): number {
    return this.slots.size;
  }

  /** Bytes of the typed arrays (capacity, not only what is used). */
  get array_bytes(): number {
    return this.readings.byteLength + this.fields.byteLength + this.reading_times.byteLength;
  }

  /** Takes a global reading of every replica's held seq when one is due (or the clock went back); true when it did. */
  sample(): boolean {
    const now = this.clock.now_ms();
    // The sorted rows of the last page go once stale, so an idle fleet holds only its readings.
    const snap = this.snapshot;
    if (snap !== null && (now < snap.at_ms || now - snap.at_ms >= fleet_snapshot_max_age_ms)) this.snapshot = null;
    const last = this.last_reading_ms;
    if (!Number.isNaN(last) && now - last < fleet_sample_spacing_ms && now >= last) return false;
    const k = this.reading_next;
    for (let slot = 0; slot < this.slots.size; slot++) this.readings[slot * fleet_samples_max + k] = Number.NaN;
    const vv = this.source.vv();
    const seen = (id: string): void => {
      const slot = this.slot_of(id, vv[id] ?? 0, now);
      if (slot >= 0) this.readings[slot * fleet_samples_max + k] = vv[id] ?? 0;
    };
    for (const origin of Object.keys(vv)) seen(origin);
    for (const peer of this.source.peers()) seen(peer.id);
    this.reading_times[k] = now;
    this.reading_next = (k + 1) % fleet_samples_max;
    this.readings_taken = Math.min(fleet_samples_max, this.readings_taken + 1);
    this.last_reading_ms = now;
    return true;
  }

  /** Every replica known, unsorted. O(origins held + peers). */
  rows(): FleetRow[] {
    const now = this.clock.now_ms();
    const vv = this.source.vv();
    const conflicts = new Map<string, number>();
    for (const c of this.source.conflicts()) conflicts.set(c.origin, (conflicts.get(c.origin) ?? 0) + c.events);
    const rows: FleetRow[] = [];
    let untracked = 0;
    const row = (id: string, peer: FleetPeer | null): FleetRow => {
      const held = vv[id] ?? 0;
      const slot = this.slot_of(id, held, now);
      if (slot < 0) untracked++;
      const self = id === this.source.id;
      let claimed: number | null = null;
      if (self) claimed = held;
      else if (peer !== null) {
        const claim = Math.max(peer.claims.get(id) ?? 0, peer.acked.get(id) ?? 0);
        claimed = claim > 0 ? claim : null;
      }
      const rate = slot < 0 ? null : this.rate(slot, held, now);
      return {
        id,
        name: self ? this.source.name : (peer?.name ?? ""),
        self,
        peer: peer !== null,
        online: peer?.online ?? null,
        last_seen_ms: peer !== null && peer.last_seen_ms > 0 ? peer.last_seen_ms : null,
        held_seq: held,
        claimed_seq: claimed,
        lag_events: claimed === null ? null : Math.max(0, claimed - held),
        events_per_day: rate === null ? null : rate.per_day,
        rate_window_ms: rate === null ? 0 : rate.span_ms,
        last_event_time_ms: this.newest_time(id, held, slot),
        conflicts: conflicts.get(id) ?? 0,
      };
    };
    const listed = new Set<string>();
    for (const peer of this.source.peers()) {
      rows.push(row(peer.id, peer));
      listed.add(peer.id);
    }
    for (const origin of Object.keys(vv)) if (!listed.has(origin)) rows.push(row(origin, null));
    if (!listed.has(this.source.id) && vv[this.source.id] === undefined) rows.push(row(this.source.id, null));
    this.untracked = untracked;
    assert(this.slots.size <= this.origins_max, "at most origins_max origins tracked");
    return rows;
  }

  /**
   * One page of the rows sorted by query.sort (nulls and unknown names last
   * in either order, then by id); takes a reading first when one is due.
   * Reuses the last sorted rows when they are of the same sort and order and
   * younger than fleet_snapshot_max_age_ms.
   */
  page(query: FleetQuery): FleetPage {
    assert(Number.isSafeInteger(query.offset) && query.offset >= 0, "offset is a non-negative integer");
    assert(Number.isSafeInteger(query.limit) && query.limit >= 1 && query.limit <= fleet_page_rows_max, "limit within 1..fleet_page_rows_max");
    const now = this.clock.now_ms();
    let snap = this.snapshot;
    if (snap === null || snap.sort !== query.sort || snap.order !== query.order || now < snap.at_ms || now - snap.at_ms >= fleet_snapshot_max_age_ms) {
      this.snapshot = null; // the old rows can go before the new ones are built
      this.sample();
      snap = { sort: query.sort, order: query.order, at_ms: now, rows: sort_fleet(this.rows(), query.sort, query.order) };
      this.snapshot = snap;
    }
    const rows = snap.rows;
    return {
      time_ms: snap.at_ms,
      total: rows.length,
      offset: query.offset,
      limit: query.limit,
      sort: query.sort,
      order: query.order,
      rows: rows.slice(query.offset, query.offset + query.limit),
      untracked: this.untracked,
    };
  }

  /** The slot of `id`, made at its first sighting (held seq now); -1 when origins_max are tracked already. */
  private slot_of(id: string, held: number, now: number): number {
    const known = this.slots.get(id);
    if (known !== undefined) return known;
    if (this.slots.size >= this.origins_max) return -1;
    const slot = this.slots.size;
    if (slot >= this.capacity) this.grow();
    this.slots.set(id, slot);
    this.readings.fill(Number.NaN, slot * fleet_samples_max, (slot + 1) * fleet_samples_max);
    const f = slot * slot_fields;
    this.fields[f] = now;
    this.fields[f + 1] = held;
    this.fields[f + 2] = 0;
    this.fields[f + 3] = Number.NaN;
    return slot;
  }

  private grow(): void {
    const capacity = Math.min(this.origins_max, Math.max(slots_initial, this.capacity * 2));
    assert(capacity > this.capacity, "the slot arrays grow");
    const readings = new Float64Array(capacity * fleet_samples_max);
    readings.set(this.readings);
    const fields = new Float64Array(capacity * slot_fields);
    fields.set(this.fields);
    this.readings = readings;
    this.fields = fields;
    this.capacity = capacity;
  }

  /** Growth per day from the oldest reading within the window that is at least fleet_rate_min_span_ms old; null when none is. */
  private rate(slot: number, held: number, now: number): { per_day: number; span_ms: number } | null {
    const oldest_ok = now - fleet_rate_window_ms;
    const newest_ok = now - fleet_rate_min_span_ms;
    // The first sighting, then every reading (NaN: the origin was not tracked yet; NaN compares false).
    let best_t = this.fields[slot * slot_fields];
    let best_seq = this.fields[slot * slot_fields + 1];
    if (!(best_t >= oldest_ok && best_t <= newest_ok)) best_t = Number.POSITIVE_INFINITY;
    const base = slot * fleet_samples_max;
    for (let k = 0; k < this.readings_taken; k++) {
      const t = this.reading_times[k];
      const seq = this.readings[base + k];
      if (seq === seq && t >= oldest_ok && t <= newest_ok && t < best_t) {
        best_t = t;
        best_seq = seq;
      }
    }
    if (best_t === Number.POSITIVE_INFINITY) return null;
    const span_ms = now - best_t;
    assert(span_ms >= fleet_rate_min_span_ms && span_ms <= fleet_rate_window_ms, "a rate is measured within the window");
    return { per_day: (Math.max(0, held - best_seq) * day_ms) / span_ms, span_ms };
  }

  /** The origin's time of its newest event held here, looked up once per new seq. */
  private newest_time(id: string, held: number, slot: number): number | null {
    if (held === 0) return null;
    if (slot < 0) return this.source.event_time_ms(id, held);
    const f = slot * slot_fields;
    if (this.fields[f + 2] !== held) {
      this.fields[f + 2] = held;
      this.fields[f + 3] = this.source.event_time_ms(id, held) ?? Number.NaN;
    }
    const t = this.fields[f + 3];
    return Number.isNaN(t) ? null : t;
  }
}

/** Sorts rows in place by `key` in `order`; rows without a value (null, or "" for name) last in either order; ties by id. */
export function sort_fleet(rows: FleetRow[], key: FleetSortKey, order: FleetOrder): FleetRow[] {
  const dir = order === "asc" ? 1 : -1;
  const value = sort_value[key];
  // The sort keys read once per row, not per comparison.
  const keyed = rows.map((row) => ({ v: value(row), id: row.id, row }));
  keyed.sort((a, b) => {
    const x = a.v;
    const y = b.v;
    if (x !== y) {
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  for (let i = 0; i < rows.length; i++) rows[i] = keyed[i].row;
  return rows;
}

const sort_value: Record<FleetSortKey, (r: FleetRow) => string | number | null> = {
  id: (r) => r.id,
  name: (r) => (r.name === "" ? null : r.name),
  last_seen: (r) => r.last_seen_ms,
  events_per_day: (r) => r.events_per_day,
  lag: (r) => r.lag_events,
  last_event: (r) => r.last_event_time_ms,
  conflicts: (r) => r.conflicts,
};
