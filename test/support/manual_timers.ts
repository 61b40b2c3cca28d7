import type { TimerHandle, Timers } from "../../src/lib/clock.ts";

/**
 * Timers a test drives by hand: `every` callbacks run only when the test
 * calls fire_every() (or advance_ms()), so a test decides when an interval
 * fsync or a refresh happens. `soon` work runs on the real event loop by
 * default (awaiting a promise lets it happen, as in production); with
 * `soon: "manual"` it waits for run_soon(). A scheduler with its own agenda
 * (the simulator) passes `on_every` to learn of each interval and calls
 * fire(timer) when its agenda says the interval is due.
 */
export class ManualTimers implements Timers {
  private readonly intervals = new Map<number, { interval_ms: number; fn: () => void; due_ms: number }>();
  private readonly soon_queue: (() => void)[] = [];
  private next_id = 1;
  private now_ms = 0;
  private readonly soon_mode: "immediate" | "manual";
  private readonly on_every: ((timer: number, interval_ms: number) => void) | null;

  constructor(options: { soon?: "immediate" | "manual"; on_every?: (timer: number, interval_ms: number) => void } = {}) {
    this.soon_mode = options.soon ?? "immediate";
    this.on_every = options.on_every ?? null;
  }

  every(interval_ms: number, fn: () => void): TimerHandle {
    const id = this.next_id++;
    this.intervals.set(id, { interval_ms, fn, due_ms: this.now_ms + interval_ms });
    this.on_every?.(id, interval_ms);
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

  /** Calls one interval callback (the id on_every was given) unless it was cancelled; returns whether it ran. */
  fire(timer: number): boolean {
    const t = this.intervals.get(timer);
    if (t === undefined) return false;
    t.fn();
    return true;
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
