/**
 * `npm run build`: compiles dist/interlog, one executable for this machine
 * (or --target NAME, see scripts/firmware/targets.ts), and prints
 * {"target","outfile","bytes","commit"}.
 *
 *   bun scripts/build.ts [--target linux-arm64] [--outfile dist/interlog-arm64]
 */
import path from "node:path";
import { compile_interlog, repo_root, source_commit } from "./firmware/compile.ts";
import { find_target, firmware_targets, host_target } from "./firmware/targets.ts";
import { parse_script_args } from "./script_args.ts";

const usage = `usage: bun scripts/build.ts [--target NAME] [--outfile FILE]
targets: ${firmware_targets.map((t) => t.name).join(", ")} (default: this machine)`;

async function main(argv: string[]): Promise<number> {
  const values = parse_script_args<{ target?: string; outfile?: string }>(argv, { target: { type: "string" }, outfile: { type: "string" } }, usage);
  if (typeof values === "number") return values;
  const target = values.target === undefined ? host_target() : find_target(values.target);
  const outfile = path.resolve(values.outfile ?? path.join(repo_root, "dist", "interlog"));
  const commit = source_commit();
  const result = await compile_interlog({ target, outfile, commit });
  process.stdout.write(`${JSON.stringify({ target: target.name, outfile: path.relative(process.cwd(), outfile), bytes: result.bytes, commit })}\n`);
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`build: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
