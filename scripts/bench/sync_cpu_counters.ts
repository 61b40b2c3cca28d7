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

/** Where the child keeps its figures in its counter file. */
export const counter_slots = { held: 0, peers: 1 } as const;
