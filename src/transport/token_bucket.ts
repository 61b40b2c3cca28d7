import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";

/**
 * A token bucket: `rate_per_s` tokens per second, at most `burst` banked.
 * Time comes from the injected clock, so tests drive it by hand.
 */
export class TokenBucket {
  private tokens: number;
  private updated_ms: number;

  constructor(
    readonly rate_per_s: number,
    readonly burst: number,
    private readonly clock: Clock,
  ) {
    assert(rate_per_s > 0 && burst > 0, "a token bucket has a positive rate and burst");
    this.tokens = burst;
    this.updated_ms = clock.now_ms();
  }

  private refill(): void {
    const now = this.clock.now_ms();
    if (now > this.updated_ms) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated_ms) * this.rate_per_s) / 1000);
    }
    this.updated_ms = now;
  }

  /**
   * Takes `cost` tokens when available. A cost above the burst is allowed
   * once the bucket is full (and drives it negative), so nothing is refused
   * forever. Returns false, taking nothing, when the caller must wait.
   */
  take(cost: number): boolean {
    this.refill();
    const needed = Math.min(cost, this.burst);
    if (this.tokens < needed) return false;
    this.tokens -= cost;
    return true;
  }

  /** Milliseconds until `cost` could be taken. */
  wait_ms(cost: number): number {
    this.refill();
    const missing = Math.min(cost, this.burst) - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.rate_per_s);
  }
}
