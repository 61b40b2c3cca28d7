import fs from "node:fs";
import path from "node:path";

const write_bytes = 4096;
const file_bytes = 16 * 1024 * 1024;

interface Tally {
  syncs: number;
  seconds: number;
}

/**
 * Measures the disk's rate of "write 4 KiB, fdatasync" on a preallocated,
 * fsynced file, sequential like a log's tail: the most small durable writes
 * per second this disk gives one writer. Baseline of append_durable_*.
 *
 * Each measurement is split between a blocking fdatasyncSync loop and an
 * awaited fs.fdatasync loop (the thread-pool path the log uses); the higher
 * rate counts. On a quiet box both agree; on a busy one the blocking call
 * measured ~265/s (about one 4 ms scheduler tick per wake-up) while the
 * thread-pool path reached 330-1300/s at the same moments, and a baseline
 * the log can beat by 3x says nothing.
 */
export class FdatasyncProbe {
  private readonly file: string;
  private readonly fd: number;
  private readonly block = new Uint8Array(write_bytes);
  private at = 0;
  private readonly blocking: Tally = { syncs: 0, seconds: 0 };
  private readonly pooled: Tally = { syncs: 0, seconds: 0 };

  constructor(dir: string) {
    this.file = path.join(dir, "fdatasync-probe");
    this.fd = fs.openSync(this.file, "w+");
    const zeros = new Uint8Array(1024 * 1024);
    for (let at = 0; at < file_bytes; at += zeros.length) fs.writeSync(this.fd, zeros, 0, zeros.length, at);
    fs.fsyncSync(this.fd);
  }

  /** Writes and fdatasyncs for about `ms`, half blocking and half through the thread pool, adding to the tallies. */
  async measure(ms: number): Promise<void> {
    let started = performance.now();
    let now = started;
    while (now - started < ms / 2) {
      this.write_next();
      fs.fdatasyncSync(this.fd);
      this.blocking.syncs++;
      now = performance.now();
    }
    this.blocking.seconds += (now - started) / 1000;
    started = now;
    while (now - started < ms / 2) {
      this.write_next();
      await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
      this.pooled.syncs++;
      now = performance.now();
    }
    this.pooled.seconds += (now - started) / 1000;
  }

  private write_next(): void {
    this.block[0]++;
    fs.writeSync(this.fd, this.block, 0, write_bytes, this.at);
    this.at = (this.at + write_bytes) % file_bytes;
  }

  get blocking_per_s(): number {
    return this.blocking.seconds > 0 ? this.blocking.syncs / this.blocking.seconds : 0;
  }

  get pooled_per_s(): number {
    return this.pooled.seconds > 0 ? this.pooled.syncs / this.pooled.seconds : 0;
  }

  /** The disk's rate as the better of the two paths. */
  get per_s(): number {
    return Math.max(this.blocking_per_s, this.pooled_per_s);
  }

  reset(): void {
    this.blocking.syncs = this.blocking.seconds = 0;
    this.pooled.syncs = this.pooled.seconds = 0;
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}
