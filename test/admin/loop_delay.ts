import fs from "node:fs";

/**
 * How long a thread waited for a CPU (ns, cumulative), from Linux's
 * schedstat (second field); null where there is none. Tests run on shared
 * machines: a timer late because other processes had the CPUs is not the
 * event loop being blocked, so that wait is taken out of the lateness.
 */
export class RunQueueWait {
  private readonly fd: number | null;
  private readonly buf = Buffer.alloc(128);

  /** `file`: /proc/thread-self/schedstat (the calling thread, this process's event loop) or /proc/PID/task/PID/schedstat. */
  constructor(file = "/proc/thread-self/schedstat") {
    let fd: number | null = null;
    try {
      fd = fs.openSync(file, "r");
    } catch {}
    this.fd = fd;
  }

  /** Cumulative ms this thread sat runnable without a CPU; 0 without schedstat. */
  ms(): number {
    if (this.fd === null) return 0;
    const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
    const fields = this.buf.toString("latin1", 0, n).trim().split(/\s+/);
    return Number(fields[1]) / 1e6;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
  }
}

export interface LoopDelay {
  /** Largest lateness of a 1 ms timer, wall clock. */
  late_ms: number;
  /** The same with the time the thread waited for a CPU taken out: how long the event loop itself was busy (or asleep in a blocking call). */
  blocked_ms: number;
  ticks: number;
}

/**
 * Measures this process's event-loop delay with a timer that records its
 * lateness, until stop(). A 1 ms interval: any stretch the loop cannot run
 * timers shows as one late tick.
 */
export function measure_loop_delay(): { stop(): LoopDelay } {
  const queue = new RunQueueWait();
  const interval_ms = 1;
  let last = performance.now();
  let last_queued = queue.ms();
  const result: LoopDelay = { late_ms: 0, blocked_ms: 0, ticks: 0 };
  const timer = setInterval(() => {
    const now = performance.now();
    const queued = queue.ms();
    const late = now - last - interval_ms;
    result.late_ms = Math.max(result.late_ms, late);
    result.blocked_ms = Math.max(result.blocked_ms, late - (queued - last_queued));
    result.ticks++;
    last = now;
    last_queued = queued;
  }, interval_ms);
  return {
    stop() {
      clearInterval(timer);
      queue.close();
      return { ...result };
    },
  };
}
