/**
 * The benchmark harness's vocabulary. A benchmark is a named module that
 * measures one figure against a baseline measured in the same run on the same
 * disk; the harness runs the ones selected by --filter and reports them.
 * Benchmarks never assert: they measure and report, targets are printed
 * beside the figures so a reader sees pass or miss.
 */
import type { BenchContext } from "./context.ts";

/** One line of the report and one record of `--json`. */
export interface BenchRecord {
  name: string;
  value: number;
  unit: string;
  /** The comparison figure measured in the same run (in `unit` unless the benchmark says otherwise), or null. */
  baseline: number | null;
  /** How the figure compares with the baseline, as the target reads it; null without a baseline. */
  ratio: number | null;
}

export interface BenchTarget {
  /** What a reader sees next to the figure, e.g. "ratio >= 0.8 and >= 1.5M/s". */
  text: string;
  met(record: BenchRecord): boolean;
}

export interface Benchmark {
  name: string;
  unit: string;
  /** One line: what is measured against what. */
  description: string;
  target?: BenchTarget;
  run(ctx: BenchContext): Promise<Omit<BenchRecord, "name" | "unit">>;
}
