import fs from "node:fs";
import path from "node:path";

/**
 * What every benchmark gets: a place on the disk under test, a progress line,
 * and measurements shared between benchmarks (a baseline that two benchmarks
 * compare against is measured once per run, the first time one asks).
 */
export class BenchContext {
  readonly root_dir: string;
  private readonly shared_results = new Map<string, Promise<unknown>>();
  private dir_counter = 0;

  constructor(root_dir: string) {
    this.root_dir = root_dir;
  }

  /** Progress for a human, always on stderr so `--json` keeps stdout clean. */
  progress(message: string): void {
    process.stderr.write(`  ${message}\n`);
  }

  /** A new empty directory under the run's root; remove it with `remove_dir` when done. */
  fresh_dir(label: string): string {
    this.dir_counter++;
    const dir = path.join(this.root_dir, `${String(this.dir_counter).padStart(3, "0")}-${label}`);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * Writes back every dirty page (sync(1)) so one measurement does not pay
   * for the previous one's writeback.
   */
  settle(): void {
    Bun.spawnSync(["sync"]);
  }

  remove_dir(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Runs `measure` once per run and hands every caller the same result. */
  shared<T>(key: string, measure: () => Promise<T>): Promise<T> {
    let result = this.shared_results.get(key) as Promise<T> | undefined;
    if (result === undefined) {
      result = measure();
      this.shared_results.set(key, result);
    }
    return result;
  }
}
