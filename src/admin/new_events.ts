import { assert } from "../lib/assert.ts";

/**
 * Wakes SSE tails: at once when this API appended something, otherwise after
 * a poll interval (events written by sync arrive without telling us). The
 * number of waiters is bounded by the number of open streams.
 */
export class NewEvents {
  private readonly waiters = new Set<() => void>();

  constructor(private readonly waiters_max: number) {}

  /** Something new may be durable: wake every waiter. */
  notify(): void {
    const wake = [...this.waiters];
    this.waiters.clear();
    for (const w of wake) w();
  }

  /** Resolves on notify(), after timeout_ms, or when `stop` is called, whichever is first. */
  wait(timeout_ms: number): { done: Promise<void>; stop: () => void } {
    assert(this.waiters.size < this.waiters_max, "no more waiters than open streams");
    let stop = () => {};
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeout_ms);
      const waiters = this.waiters;
      function finish(): void {
        clearTimeout(timer);
        waiters.delete(finish);
        resolve();
      }
      this.waiters.add(finish);
      stop = finish;
    });
    return { done, stop };
  }

  get waiting(): number {
    return this.waiters.size;
  }
}
