import { assert } from "../lib/assert.ts";
import { want_ranges_max } from "./messages.ts";
import type { SyncSettings } from "./sync_options.ts";

/** One requester's answer budget and what it was sent lately. */
interface Requester {
  /** Bytes it may still be sent: a token bucket, refilled at answer_rate_per_requester_bytes_per_s up to the burst; negative after a large event. */
  tokens: number;
  updated_ms: number;
  /** origin -> the highest seq sent to it and when, for the last answer_repeat_ms (at most want_ranges_max origins). */
  readonly sent: Map<string, { upto: number; at_ms: number }>;
  /** When it was last told "nothing now" with an empty final answer. */
  empty_answer_ms: number;
}

/**
 * Repair answers per requester: a byte budget (token bucket, time passed
 * in) so one requester, or someone naming a victim as the requester, gets
 * at most answer_rate_per_requester_bytes_per_s plus the burst; and a
 * memory of what was just sent to it, so a replayed or repeated request
 * (a new request number for the same ranges) is not answered again for
 * answer_repeat_ms. Memory: one record per requester (requesters are
 * peers, at most peers_max), each remembering at most want_ranges_max
 * origins, and only for answer_repeat_ms (see sweep).
 */
export class AnswerLimiter {
  private readonly requesters = new Map<string, Requester>();
  /** Requesters with something in `sent`, for the sweep. */
  private readonly remembering = new Set<Requester>();

  constructor(private readonly settings: Pick<SyncSettings, "answer_rate_per_requester_bytes_per_s" | "answer_burst_per_requester_bytes" | "answer_repeat_ms">) {}

  /** Bytes `requester` may be sent now; 0 or less: nothing (its rate is used up). */
  available(requester: string, now_ms: number): number {
    return this.refill(this.state(requester, now_ms), now_ms).tokens;
  }

  /** Counts bytes sent to `requester`. Its debt stops at one burst, so it can always be answered again within 2 x burst / rate. */
  charge(requester: string, bytes: number, now_ms: number): void {
    assert(bytes >= 0, "a charge is not negative");
    const r = this.refill(this.state(requester, now_ms), now_ms);
    r.tokens = Math.max(r.tokens - bytes, -this.settings.answer_burst_per_requester_bytes);
  }

  /** Whether an empty "nothing now" answer may go to `requester` (at most one per answer_repeat_ms); records it when so. */
  may_say_nothing(requester: string, now_ms: number): boolean {
    const r = this.state(requester, now_ms);
    if (now_ms - r.empty_answer_ms < this.settings.answer_repeat_ms) return false;
    r.empty_answer_ms = now_ms;
    return true;
  }

  /** The highest seq of `origin` sent to `requester` in the last answer_repeat_ms (0: none). */
  sent_upto(requester: string, origin: string, now_ms: number): number {
    const sent = this.requesters.get(requester)?.sent.get(origin);
    return sent === undefined || now_ms - sent.at_ms >= this.settings.answer_repeat_ms ? 0 : sent.upto;
  }

  /** Records that `requester` was sent `origin`'s events up to seq `upto`. */
  note_sent(requester: string, origin: string, upto: number, now_ms: number): void {
    const r = this.state(requester, now_ms);
    r.sent.delete(origin); // to the back: the map stays in sending order
    r.sent.set(origin, { upto, at_ms: now_ms });
    while (r.sent.size > want_ranges_max) r.sent.delete(r.sent.keys().next().value as string);
    this.remembering.add(r);
  }

  /** Forgets what was sent longer than answer_repeat_ms ago (call every tick). */
  sweep(now_ms: number): void {
    const horizon = now_ms - this.settings.answer_repeat_ms;
    for (const r of this.remembering) {
      // Oldest first: stop at the first one still remembered.
      for (const [origin, sent] of r.sent) {
        if (sent.at_ms > horizon) break;
        r.sent.delete(origin);
      }
      if (r.sent.size === 0) this.remembering.delete(r);
    }
  }

  /** Origins remembered as just sent, over all requesters (for tests and status). */
  get remembered(): number {
    let n = 0;
    for (const r of this.remembering) n += r.sent.size;
    return n;
  }

  private state(requester: string, now_ms: number): Requester {
    let r = this.requesters.get(requester);
    if (r === undefined) {
      r = { tokens: this.settings.answer_burst_per_requester_bytes, updated_ms: now_ms, sent: new Map(), empty_answer_ms: Number.NEGATIVE_INFINITY };
      this.requesters.set(requester, r);
    }
    return r;
  }

  private refill(r: Requester, now_ms: number): Requester {
    const s = this.settings;
    if (now_ms > r.updated_ms) {
      r.tokens = Math.min(s.answer_burst_per_requester_bytes, r.tokens + ((now_ms - r.updated_ms) * s.answer_rate_per_requester_bytes_per_s) / 1000);
      r.updated_ms = now_ms;
    }
    assert(r.tokens <= s.answer_burst_per_requester_bytes, "a requester's tokens never exceed its burst");
    return r;
  }
}
