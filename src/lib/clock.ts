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
}

export const system_timers: Timers = {
  every(interval_ms, fn) {
    const handle = setInterval(fn, interval_ms);
    handle.unref?.();
    return { cancel: () => clearInterval(handle) };
  },
};
