import type { BenchRecord, Benchmark } from "./types.ts";

/** Significant digits a human can compare at a glance. */
export function format_number(value: number | null): string {
  if (value === null) return "-";
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

export function verdict(bench: Benchmark, record: BenchRecord): string {
  if (bench.target === undefined) return "";
  return bench.target.met(record) ? "pass" : "MISS";
}

/** The human table: figure, baseline, ratio, target and pass/miss per benchmark. */
export function format_table(rows: readonly { bench: Benchmark; record: BenchRecord }[]): string {
  const header = ["name", "value", "unit", "baseline", "ratio", "target", ""];
  const lines = rows.map(({ bench, record }) => [
    record.name,
    format_number(record.value),
    record.unit,
    format_number(record.baseline),
    record.ratio === null ? "-" : `${record.ratio.toFixed(2)}x`,
    bench.target?.text ?? "-",
    verdict(bench, record),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c].length)));
  const right = new Set([1, 3, 4]);
  const render = (cells: string[]): string =>
    cells
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ")
      .trimEnd();
  return [render(header), render(widths.map((w) => "-".repeat(w))), ...lines.map(render)].join("\n");
}

/** `--json`: only the records, with the exact field set consumers rely on. */
export function format_json(records: readonly BenchRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({ name: r.name, value: r.value, unit: r.unit, baseline: r.baseline, ratio: r.ratio })),
    null,
    2,
  );
}
