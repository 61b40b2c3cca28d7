/**
 * `bun run bench`: runs the benchmarks of scripts/bench/registry.ts in one
 * process on one disk and prints a table (or `--json`). See bench/args.ts for
 * the options.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError, bench_usage, parse_bench_args } from "./bench/args.ts";
import { BenchContext } from "./bench/context.ts";
import { benchmarks, opt_in_benchmarks } from "./bench/registry.ts";
import { format_json, format_number, format_table, verdict } from "./bench/report.ts";
import type { BenchRecord, Benchmark } from "./bench/types.ts";

async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parse_bench_args(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n${bench_usage}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${bench_usage}\n`);
    return 0;
  }
  // Opt-in benchmarks (too long for every run) run only when named with --only.
  const all = [...benchmarks, ...opt_in_benchmarks];
  const unknown = args.only.filter((name) => !all.some((b) => b.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`no benchmark named ${unknown.join(", ")}; names: ${all.map((b) => b.name).join(", ")}\n`);
    return 2;
  }
  const selected = args.only.length > 0 ? all.filter((b) => args.only.includes(b.name) && b.name.startsWith(args.filter)) : benchmarks.filter((b) => b.name.startsWith(args.filter));
  if (args.list) {
    for (const b of selected) process.stdout.write(`${b.name}\t${b.description}\n`);
    if (args.only.length === 0) for (const b of opt_in_benchmarks) if (b.name.startsWith(args.filter)) process.stdout.write(`${b.name}\t(opt-in: --only ${b.name}) ${b.description}\n`);
    return 0;
  }
  if (selected.length === 0) {
    process.stderr.write(`no benchmark name starts with "${args.filter}"; names: ${benchmarks.map((b) => b.name).join(", ")}\n`);
    return 2;
  }

  const parent = args.dir ?? os.tmpdir();
  fs.mkdirSync(parent, { recursive: true });
  const root = fs.mkdtempSync(path.join(parent, "interlog-bench-"));
  const cleanup = (): void => fs.rmSync(root, { recursive: true, force: true });
  const on_signal = (signal: NodeJS.Signals): void => {
    cleanup();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.on("SIGINT", on_signal);
  process.on("SIGTERM", on_signal);

  // Other work on the box skews every figure; the load average lets a reader judge a run.
  const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(" ");
  process.stderr.write(`interlog bench: ${selected.length} benchmark(s) in ${root} (${os.cpus().length} cpus, bun ${Bun.version}, load ${load()})\n`);
  const ctx = new BenchContext(root);
  const rows: { bench: Benchmark; record: BenchRecord }[] = [];
  let failures = 0;
  const run_started = performance.now();
  try {
    for (const [i, bench] of selected.entries()) {
      process.stderr.write(`[${i + 1}/${selected.length}] ${bench.name}: ${bench.description}\n`);
      const started = performance.now();
      try {
        const result = await bench.run(ctx);
        const record: BenchRecord = { name: bench.name, unit: bench.unit, ...result };
        rows.push({ bench, record });
        const target = bench.target === undefined ? "" : `  target ${bench.target.text}: ${verdict(bench, record)}`;
        process.stderr.write(
          `  => ${format_number(record.value)} ${record.unit}` +
            `${record.ratio === null ? "" : ` (${record.ratio.toFixed(2)}x baseline ${format_number(record.baseline)})`}` +
            `${target}  [${((performance.now() - started) / 1000).toFixed(1)} s]\n`,
        );
      } catch (err) {
        failures++;
        process.stderr.write(`  !! ${bench.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      }
    }
  } finally {
    cleanup();
  }
  process.stderr.write(`done in ${((performance.now() - run_started) / 1000).toFixed(1)} s (load ${load()})\n`);
  if (args.json) {
    process.stdout.write(`${format_json(rows.map((r) => r.record))}\n`);
  } else {
    process.stdout.write(`\n${format_table(rows)}\n`);
  }
  return failures > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
