import { type ParseArgsOptionsConfig, parseArgs } from "node:util";

/**
 * The argument handling the build scripts share: strict parsing plus
 * `--help`/`-h`. Returns the values, or the exit code to return at once: 0
 * after printing `usage` for --help, 2 after printing the error and `usage`.
 * V names the values' shape, as parseArgs cannot infer it through a helper.
 */
export function parse_script_args<V>(argv: string[], options: ParseArgsOptionsConfig, usage: string): V | number {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  return values as V;
}
