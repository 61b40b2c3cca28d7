import type { TimerHandle, Timers } from "../../src/lib/clock.ts";

/**
 * Timers a test drives by hand: `every` callbacks run only when the test
 * calls fire_every() (or advance_ms()), so a test decides when an interval
 * fsync or a refresh happens. `soon` work runs on the real event loop by
 * default (awaiting a promise lets it happen, as in production); with
 * `soon: "manual"` it waits for run_soon().
 */
export class ManualTimers implements Timers {
  private readonly intervals = new Map<number, { interval_ms: number; fn: () => void; due_ms: number }>();
  private readonly soon_queue: (() => void)[] = [];
  private next_id = 1;
  private now_ms = 0;
  private readonly soon_mode: "immediate" | "manual";

  constructor(options: { soon?: "immediate" | "manual" } = {}) {
    this.soon_mode = options.soon ?? "immediate";
  }

  every(interval_ms: number, fn: () => void): TimerHandle {
    const id = this.next_id++;
    this.intervals.set(id, { interval_ms, fn, due_ms: this.now_ms + interval_ms });
    return { cancel: () => this.intervals.delete(id) };
  }

  soon(fn: () => void): void {
    if (this.soon_mode === "immediate") setImmediate(fn);
    else this.soon_queue.push(fn);
  }

  /** Interval callbacks not cancelled. */
  get active_count(): number {
    return this.intervals.size;
  }

  /** Calls every interval callback once, whatever its period. */
  fire_every(): void {
    for (const timer of [...this.intervals.values()]) timer.fn();
  }

  /** Moves time forward, calling each interval callback once per period that elapsed. */
  advance_ms(ms: number): void {
    const until = this.now_ms + ms;
    for (;;) {
      let next: { interval_ms: number; fn: () => void; due_ms: number } | null = null;
      for (const t of this.intervals.values()) if (t.due_ms <= until && (next === null || t.due_ms < next.due_ms)) next = t;
      if (next === null) break;
      this.now_ms = next.due_ms;
      next.due_ms += next.interval_ms;
      next.fn();
    }
    this.now_ms = until;
  }

  /** Runs queued `soon` work (manual mode), including work it queues, until none is left; returns how many ran. */
  run_soon(): number {
    let ran = 0;
    while (this.soon_queue.length > 0) {
      const fn = this.soon_queue.shift() as () => void;
      fn();
      ran++;
    }
    return ran;
  }

  /** Cancels every interval (what a process exit does to its timers). */
  cancel_all(): void {
    this.intervals.clear();
    this.soon_queue.length = 0;
  }
}
