/** Wall clock and timers, injected so simulations and tests control time. */
export interface Clock {
  /** Milliseconds since the Unix epoch. Information only: never used for ordering. */
  now_ms(): number;
}

export const system_clock: Clock = { now_ms: () => Date.now() };

export interface TimerHandle {
  cancel(): void;
}

export interface Timers {
  /** Calls fn every interval_ms until cancelled; must not keep the process alive on its own. */
  every(interval_ms: number, fn: () => void): TimerHandle;
  /**
   * Calls fn once, after the current turn of the event loop and its I/O
   * callbacks (setImmediate): work queued here runs after every append of
   * the same turn, which is what lets them share one fsync.
   */
  soon(fn: () => void): void;
}

export const system_timers: Timers = {
  every(interval_ms, fn) {
    const handle = setInterval(fn, interval_ms);
    handle.unref?.();
    return { cancel: () => clearInterval(handle) };
  },
  soon(fn) {
    setImmediate(fn);
  },
};
