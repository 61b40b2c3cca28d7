import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";
import type { Outbound } from "../sync/replicator.ts";

export interface PublishLimits {
  /** Publishes per second per connection (AWS IoT Core: 100); null for none. */
  publishes_per_s: number | null;
  /** Message bytes (topic + payload) per second per connection (AWS IoT Core: 512 KiB); null for none. */
  bytes_per_s: number | null;
  /** Publishes handed to the client whose PUBACK has not come back. */
  inflight_max: number;
  /** Bytes waiting here; beyond it the newest non-retained messages are dropped (repair makes them good). */
  queue_max_bytes: number;
}

/**
 * The window the publish count is kept over: a little longer than the
 * broker's second, so a message that reaches the broker late (network or
 * event-loop jitter) and one sent a window after it still fall in different
 * seconds there. AWS IoT Core discards publishes over its rate (no PUBACK:
 * the message stays in flight until the link drops), hence 100 ms of margin
 * (10 %; bulk data never comes near 100 publishes a second anyway).
 */
export const pacing_window_ms = { publishes: 1100 } as const;

/**
 * Of the byte limit, what pacing sends on average. A broker delays data over
 * its throughput ("delayed in processing", AWS IoT Core) rather than
 * discarding it, so the average may sit at the limit; 1 % below keeps a
 * queue from standing at the broker, where status and vv would wait behind it.
 */
export const pacing_bytes_share = 0.99;
/** Unused byte budget kept, in ms of the rate: what a drain that comes late makes good. */
export const pacing_bank_ms = 50;

/**
 * At most `rate_per_s` (bytes) per second on average: a message may go
 * while the budget is not negative and takes its cost off it, going into
 * debt by up to one message, which the next ones wait out. Unlike a window
 * that must hold each whole message (88 KB answers in a 512 KiB window: five
 * a second, 0.84 of the limit), the average reaches the limit whatever the
 * message size; any one second carries at most the rate plus one message
 * (and pacing_bank_ms of the rate), which a broker that delays the excess
 * absorbs without loss.
 */
export class ByteRate {
  private budget = 0;
  private last_ms: number;

  constructor(
    readonly rate_per_s: number,
    private readonly clock: Clock,
  ) {
    assert(rate_per_s > 0, "a byte rate is positive");
    this.last_ms = clock.now_ms();
  }

  private refill(now: number): void {
    if (now < this.last_ms) this.last_ms = now; // the clock stepped back: no time passed, and none is owed
    // Unused time banks only pacing_bank_ms (the queue is drained every few ms, so a message may go a little after its budget came back).
    this.budget = Math.min((pacing_bank_ms * this.rate_per_s) / 1000, this.budget + ((now - this.last_ms) * this.rate_per_s) / 1000);
    this.last_ms = now;
  }

  /** Milliseconds until a message may go (0: now). */
  wait_ms(_cost: number): number {
    this.refill(this.clock.now_ms());
    return this.budget >= 0 ? 0 : Math.max(1, Math.ceil((-this.budget * 1000) / this.rate_per_s));
  }

  /** Records a send of `cost` bytes now (after wait_ms said 0). */
  take(cost: number): void {
    this.refill(this.clock.now_ms());
    this.budget -= cost;
  }
}

/**
 * At most `limit` (publishes or bytes) in any window of `window_ms`: every
 * send is remembered until it leaves the window. Unlike a token bucket,
 * whose burst must hold the largest message and so takes it off the
 * sustained rate (rate + burst = limit: 384 of 512 KiB/s with 128 KiB
 * messages), this sustains the whole limit per window.
 */
export class SlidingWindowLimit {
  private readonly at: number[] = [];
  private readonly costs: number[] = [];
  private head = 0;
  private used = 0;

  constructor(
    readonly limit: number,
    readonly window_ms: number,
    private readonly clock: Clock,
  ) {
    assert(limit > 0 && window_ms > 0, "a window limit has a positive limit and window");
  }

  private expire(now: number): void {
    if (this.at.length > this.head && this.at[this.at.length - 1] > now) {
      // The clock stepped back: the window's times mean nothing now (waiting them out could stall publishing for the step).
      this.at.length = 0;
      this.costs.length = 0;
      this.head = 0;
      this.used = 0;
    }
    while (this.head < this.at.length && this.at[this.head] <= now - this.window_ms) {
      this.used -= this.costs[this.head];
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.at.length) {
      this.at.splice(0, this.head);
      this.costs.splice(0, this.head);
      this.head = 0;
    }
  }

  /**
   * Milliseconds until `cost` fits the window (0: now). A cost above the
   * limit fits an empty window, so nothing waits forever.
   */
  wait_ms(cost: number): number {
    const now = this.clock.now_ms();
    this.expire(now);
    let used = this.used;
    for (let i = this.head; i < this.at.length; i++) {
      if (used + cost <= this.limit || used === 0) return i === this.head ? 0 : Math.max(1, this.at[i - 1] + this.window_ms - now);
      used -= this.costs[i];
    }
    return this.at.length === this.head ? 0 : Math.max(1, this.at[this.at.length - 1] + this.window_ms - now);
  }

  /** Records a send of `cost` now (after wait_ms said 0). */
  take(cost: number): void {
    const now = this.clock.now_ms();
    this.expire(now);
    this.at.push(now);
    this.costs.push(cost);
    this.used += cost;
  }
}

/** What a message costs the byte limit: its topic and payload, as the broker counts a message's size. */
function message_bytes(m: Outbound): number {
  return m.payload.length + Buffer.byteLength(m.topic);
}

export interface PublishQueueStats {
  queued: number;
  queued_bytes: number;
  inflight: number;
  sent: number;
  sent_bytes: number;
  /** Dropped because the queue was full or the link went down; the protocol repairs the loss. */
  dropped: number;
  /** Retained messages replaced while queued by a newer one on the same topic (only the latest state matters). */
  superseded: number;
  failed: number;
}

/**
 * Outgoing messages between the replicator and the MQTT client: bounded in
 * bytes, at most inflight_max unacknowledged publishes, paced so a
 * broker's rate limits are honoured instead of tripped: no window of
 * pacing_window_ms (a little over a second) carries more publishes than the
 * per-second limit, and message bytes (topic + payload) average at most
 * pacing_bytes_share of theirs (ByteRate).
 */
export class PublishQueue {
  /** Queued messages from head on; null where one was dropped. */
  private readonly items: (Outbound | null)[] = [];
  private head = 0;
  private generation = 0;
  private readonly publishes: SlidingWindowLimit | null;
  private readonly bytes: ByteRate | null;
  readonly stats: PublishQueueStats = { queued: 0, queued_bytes: 0, inflight: 0, sent: 0, sent_bytes: 0, dropped: 0, failed: 0, superseded: 0 };
  /** Topic -> index in items of its queued retained message, so a newer state replaces it instead of queueing behind it. */
  private readonly retained_at = new Map<string, number>();

  constructor(
    private readonly limits: PublishLimits,
    clock: Clock,
    private readonly send: (message: Outbound, done: (err?: Error) => void) => void,
  ) {
    assert(limits.inflight_max >= 1, "at least one publish in flight");
    this.publishes = limits.publishes_per_s === null ? null : new SlidingWindowLimit(limits.publishes_per_s, pacing_window_ms.publishes, clock);
    this.bytes = limits.bytes_per_s === null ? null : new ByteRate(limits.bytes_per_s * pacing_bytes_share, clock);
  }

  push(messages: readonly Outbound[]): void {
    for (const m of messages) {
      if (m.retain) {
        const at = this.retained_at.get(m.topic);
        const queued = at === undefined ? null : this.items[at];
        if (at !== undefined && queued != null && at >= this.head) {
          this.items[at] = m;
          this.stats.queued_bytes += m.payload.length - queued.payload.length;
          this.stats.superseded++;
          continue;
        }
        this.retained_at.set(m.topic, this.items.length);
      }
      this.items.push(m);
      this.stats.queued++;
      this.stats.queued_bytes += m.payload.length;
    }
    while (this.stats.queued_bytes > this.limits.queue_max_bytes && this.drop_newest()) {}
  }

  /**
   * Drops everything (the link went down: what was queued is stale after a
   * reconnect) and stops counting publishes of the old connection as in
   * flight, whether or not the client ever reports them.
   */
  clear(): void {
    this.generation++;
    this.stats.inflight = 0;
    this.stats.dropped += this.stats.queued;
    this.items.length = 0;
    this.retained_at.clear();
    this.head = 0;
    this.stats.queued = 0;
    this.stats.queued_bytes = 0;
  }

  /** Sends what limits allow. Returns how long to wait before more can go when rate-limited (0: nothing waits on a rate). */
  drain(): number {
    while (this.head < this.items.length && this.stats.inflight < this.limits.inflight_max) {
      const m = this.items[this.head];
      if (m === null) {
        this.head++;
        continue;
      }
      const cost = this.bytes === null ? 0 : message_bytes(m);
      const wait = Math.max(this.publishes?.wait_ms(1) ?? 0, this.bytes?.wait_ms(cost) ?? 0);
      if (wait > 0) return wait;
      this.publishes?.take(1);
      this.bytes?.take(cost);
      if (m.retain && this.retained_at.get(m.topic) === this.head) this.retained_at.delete(m.topic);
      this.head++;
      this.stats.queued--;
      this.stats.queued_bytes -= m.payload.length;
      this.stats.inflight++;
      const generation = this.generation;
      this.send(m, (err) => {
        if (generation !== this.generation) return;
        this.stats.inflight--;
        if (err !== undefined) this.stats.failed++;
        else {
          this.stats.sent++;
          this.stats.sent_bytes += m.payload.length;
        }
      });
    }
    this.compact();
    return 0;
  }

  /**
   * Drops the newest non-retained message: what is already queued goes out
   * in order, so a receiver gets a prefix it can use and asks for the rest
   * (dropping the oldest made an answer bigger than the queue lose its first
   * messages every time it was asked for).
   */
  private drop_newest(): boolean {
    for (let i = this.items.length - 1; i >= this.head; i--) {
      const m = this.items[i];
      if (m === null || m.retain) continue;
      this.items[i] = null;
      this.stats.queued--;
      this.stats.queued_bytes -= m.payload.length;
      this.stats.dropped++;
      return true;
    }
    return false;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      for (const [topic, at] of this.retained_at) this.retained_at.set(topic, at - this.head);
      this.head = 0;
    }
  }
}
