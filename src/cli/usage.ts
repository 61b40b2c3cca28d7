import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake in how a command was called: exit code 2 with the command's help. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const exit_ok = 0;
export const exit_failed = 1;
export const exit_usage = 2;

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Command {
  name: string;
  help: string;
  options: Options;
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: Output): Promise<number>;
}

export function parse(command: Command, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function required_string(values: Record<string, string | boolean | undefined>, key: string): string {
  const v = values[key];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${key.replaceAll("_", "-")} is required`);
  return v;
}

export function optional_int(values: Record<string, string | boolean | undefined>, key: string, min: number): number | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${key.replaceAll("_", "-")} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}
