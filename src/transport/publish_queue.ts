import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";
import type { Outbound } from "../sync/replicator.ts";
import { TokenBucket } from "./token_bucket.ts";

export interface PublishLimits {
  /** Publishes per second per connection (AWS IoT Core: 100); null for none. */
  publishes_per_s: number | null;
  /** Payload bytes per second per connection (AWS IoT Core: 512 KiB); null for none. */
  bytes_per_s: number | null;
  /** Publishes handed to the client whose PUBACK has not come back. */
  inflight_max: number;
  /** Bytes waiting here; beyond it the newest non-retained messages are dropped (repair makes them good). */
  queue_max_bytes: number;
  /** The largest message; the byte bucket's burst holds at least one. */
  max_message_bytes: number;
}

/**
 * A bucket that keeps every one-second window within `limit`: a window sees
 * at most one burst plus a second of refill, so rate + burst = limit. The
 * burst is a tenth of the limit, but at least one largest item.
 */
function window_bucket(limit_per_s: number, largest_item: number, clock: Clock): TokenBucket {
  let burst = Math.max(largest_item, limit_per_s / 10);
  if (burst >= limit_per_s) burst = limit_per_s / 2;
  return new TokenBucket(limit_per_s - burst, burst, clock);
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
 * bytes, at most inflight_max unacknowledged publishes, paced by token
 * buckets so a broker's rate limits are honoured instead of tripped: no
 * one-second window carries more publishes or bytes than the limits.
 */
export class PublishQueue {
  /** Queued messages from head on; null where one was dropped. */
  private readonly items: (Outbound | null)[] = [];
  private head = 0;
  private generation = 0;
  private readonly publishes: TokenBucket | null;
  private readonly bytes: TokenBucket | null;
  readonly stats: PublishQueueStats = { queued: 0, queued_bytes: 0, inflight: 0, sent: 0, sent_bytes: 0, dropped: 0, failed: 0, superseded: 0 };
  /** Topic -> index in items of its queued retained message, so a newer state replaces it instead of queueing behind it. */
  private readonly retained_at = new Map<string, number>();

  constructor(
    private readonly limits: PublishLimits,
    clock: Clock,
    private readonly send: (message: Outbound, done: (err?: Error) => void) => void,
  ) {
    assert(limits.inflight_max >= 1, "at least one publish in flight");
    this.publishes = limits.publishes_per_s === null ? null : window_bucket(limits.publishes_per_s, 1, clock);
    this.bytes = limits.bytes_per_s === null ? null : window_bucket(limits.bytes_per_s, limits.max_message_bytes, clock);
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
      const wait = Math.max(this.publishes?.wait_ms(1) ?? 0, this.bytes?.wait_ms(m.payload.length) ?? 0);
      if (wait > 0) return wait;
      this.publishes?.take(1);
      this.bytes?.take(m.payload.length);
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
