import { InterlogError } from "./errors.ts";

/** Sizes and durations as people write them in config: `64MiB`, `128KiB`, `500ms`, `10s`. */
const size_units: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const duration_units: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

function parse_with_units(text: string | number, units: Record<string, number>, what: string, example: string): number {
  if (typeof text === "number") {
    if (Number.isFinite(text) && text >= 0) return text;
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
    if (m) {
      const unit = m[2].toLowerCase();
      const factor = unit === "" ? 1 : units[unit];
      if (factor !== undefined) return Math.round(Number(m[1]) * factor);
    }
  }
  throw new InterlogError(
    "BAD_ARGUMENT",
    `${JSON.stringify(text)} is not a ${what}; write a number with a unit, e.g. ${example} (units: ${Object.keys(units).join(", ")})`,
  );
}

export function parse_size_bytes(text: string | number): number {
  return parse_with_units(text, size_units, "size", "64MiB");
}

export function parse_duration_ms(text: string | number): number {
  return parse_with_units(text, duration_units, "duration", "500ms");
}

export function format_bytes(bytes: number): string {
  const steps = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < steps.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? value : value.toFixed(1)} ${steps[i]}`;
}
