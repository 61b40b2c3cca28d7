import fs from "node:fs";

/** Slots in a counter file. */
const slots = 8;

/**
 * A few float64 counters in a small file mapped shared by two processes:
 * the CPU benchmark's child publishes its progress here, and the parent
 * reads it without a message or a system call on either side (a pipe
 * would cost the child a write per batch, counted as its CPU).
 */
export class SharedCounters {
  private constructor(
    /** Held: Bun unmaps a mapping once it is collected. */
    private readonly map: Uint8Array,
    private readonly values: Float64Array,
  ) {}

  /** Makes the file (zeros) for open(). */
  static create(file: string): void {
    fs.writeFileSync(file, new Uint8Array(slots * 8));
  }

  static open(file: string): SharedCounters {
    const map = Bun.mmap(file, { shared: true });
    return new SharedCounters(map, new Float64Array(map.buffer, map.byteOffset, slots));
  }

  get(slot: number): number {
    return this.values[slot];
  }

  set(slot: number, value: number): void {
    this.values[slot] = value;
  }
}

/** What the CPU benchmark's child reports at the end. */
export interface CpuChildReport {
  user_us: number;
  system_us: number;
  /** From "go" to the last event held. */
  seconds: number;
  /** What the receiver's log and replicator did (replica mode), for the progress line. */
  details: string;
}

/**
 * The counter file's slots: what the child holds (durably, or received for
 * raw) and how many peers it heard from; `ready` (1: connected) and
 * `done` (1: report written) and `measuring` (1: it took `go`) are the
 * child's, `go` (1: start measuring) the parent's, who starts the load once
 * the child measures. No pipe between them: a pending read on a child's stdout cost
 * the parent measurable CPU in Bun.
 */
export const counter_slots = { held: 0, peers: 1, ready: 2, go: 3, done: 4, measuring: 5 } as const;

/** Where the child writes its ready line's id and its report (JSON). */
export function report_file(counter_file: string): string {
  return `${counter_file}.json`;
}
