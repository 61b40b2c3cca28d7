import fs from "node:fs";
import path from "node:path";
import { bun_runtime, runtime_cache_dir } from "./runtime.ts";
import { type FirmwareTarget, host_target } from "./targets.ts";

/** The repository root (this file is scripts/firmware/compile.ts). */
export const repo_root = path.resolve(import.meta.dir, "..", "..");
export const cli_entry = path.join(repo_root, "src", "cli.ts");

export interface CompileOptions {
  target: FirmwareTarget;
  outfile: string;
  /** Printed by `interlog version`; see source_commit(). */
  commit: string;
  /** Lay the bytecode out by the recorded profiles (bytecode_order_files); default true. false: the order of the bundle, as when recording a profile. */
  bytecode_order?: boolean;
  /** The program to compile; default src/cli.ts. scripts/measure-firmware.ts compiles its bare baseline with the same flags. */
  entry?: string;
  /** Other choices of Bun's build flags, for scripts/firmware/build-options.ts to compare; the firmware uses the defaults. */
  flags?: Partial<BuildFlags>;
}

/** The size and memory choices among Bun's build flags (issue 16). */
export interface BuildFlags {
  /** --bytecode: without it the executable holds only source, parsed at start. */
  bytecode: boolean;
  minify: boolean;
  /** --bytecode-depth; null: every level. */
  bytecode_depth: number | null;
  /** --compile-jit-policy. */
  jit_policy: number;
  /** --compile-exec-argv, e.g. ["--smol"]. */
  exec_argv: string[];
}

/**
 * Profiles of which functions a run uses (scripts/firmware/record-bytecode-order.ts),
 * most common way of starting first: `serve`, then one-shot CLI calls.
 * Functions are matched by a hash of their syntax, so a profile recorded on
 * an older commit still applies; changed functions go right after it.
 */
export const bytecode_order_dir = path.join(repo_root, "firmware", "bytecode-order");
export const bytecode_order_files = ["serve.order", "cli.order"].map((f) => path.join(bytecode_order_dir, f));

/**
 * Tier-up thresholds of JavaScriptCore are scaled by this until `serve` is
 * ready (it then calls Bun.unsafe.setJITPolicy(1)): code that only runs at
 * start-up (config, recovery, route set-up) stays in the interpreter instead
 * of being compiled, which costs start-up time and resident memory.
 */
export const start_jit_policy = 10;

/** Levels of nested functions compiled to bytecode at build time (see the flags below). */
export const bytecode_depth = 1;

export interface CompileResult {
  outfile: string;
  bytes: number;
  bun_version: string;
}

/**
 * `bun build --compile` of src/cli.ts into one executable for `target`.
 * Autoloading of .env and bunfig.toml is off, so the binary behaves the same
 * whatever directory it is started in (a stray .env cannot set a token, a
 * bunfig.toml cannot preload code). Bytecode is compiled in: it halves the
 * start-up time of every CLI call, which counts on a weak board. The bundle
 * is minified (names kept: errors and logs print class names), and the
 * bytecode is laid out by the recorded profiles, so a start reads and keeps
 * resident only the part of the bundle it runs (issue 16).
 */
export async function compile_interlog(options: CompileOptions): Promise<CompileResult> {
  const { target, outfile, commit } = options;
  const flags: BuildFlags = { bytecode: true, minify: true, bytecode_depth, jit_policy: start_jit_policy, exec_argv: [], ...options.flags };
  const bun_version = Bun.version;
  const args = [
    "build",
    options.entry ?? cli_entry,
    "--compile",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    ...(flags.bytecode ? ["--bytecode"] : []),
    // Module bodies only: deeper functions compile from the (minified) source when first called. All depths
    // cost 2 MiB more binary (6.1 MiB over a bare program, against 4.2) for 15-35 ms less start-up (build-options.ts).
    ...(flags.bytecode_depth === null || !flags.bytecode ? [] : [`--bytecode-depth=${flags.bytecode_depth}`]),
    ...(flags.minify ? ["--minify", "--keep-names"] : []),
    `--compile-jit-policy=${flags.jit_policy}`,
    ...(flags.exec_argv.length > 0 ? [`--compile-exec-argv=${flags.exec_argv.join(" ")}`] : []),
    "--format=esm",
    `--target=${target.bun_target}`,
    `--define=INTERLOG_COMMIT=${JSON.stringify(commit)}`,
    `--define=INTERLOG_TARGET=${JSON.stringify(target.name)}`,
    `--outfile=${outfile}`,
  ];
  const orders = options.bytecode_order === false || options.entry !== undefined || !flags.bytecode ? [] : bytecode_order_files.filter((f) => fs.existsSync(f));
  if (orders.length > 0) args.push(`--bytecode-order=${orders.join(",")}`);
  // The host's own runtime is the Bun running this; any other is fetched once from npm.
  if (target.name !== host_target().name) {
    args.push(`--compile-executable-path=${await bun_runtime(target, bun_version, runtime_cache_dir(repo_root))}`);
  }
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const build = Bun.spawn([process.execPath, ...args], { cwd: repo_root, stdout: "pipe", stderr: "pipe", env: build_env() });
  const [stdout, stderr, code] = await Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text(), build.exited]);
  if (code !== 0) throw new Error(`bun build for ${target.name} failed (exit ${code}):\n${stdout}${stderr}`);
  return { outfile, bytes: fs.statSync(outfile).size, bun_version };
}

/** The build must not pick up the caller's NODE_ENV or Bun settings. */
function build_env(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "TMPDIR", "npm_config_registry"]) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/**
 * The commit a binary is built from: INTERLOG_COMMIT when set (a CI that
 * builds from an exported tree), else the git HEAD (12 hex digits), with
 * "-dirty" when tracked files differ from it; "unknown" outside git.
 */
export function source_commit(): string {
  const forced = process.env.INTERLOG_COMMIT;
  if (forced !== undefined && forced !== "") return forced;
  const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: repo_root, stdout: "pipe", stderr: "ignore" });
  if (head.exitCode !== 0) return "unknown";
  const status = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: repo_root, stdout: "pipe", stderr: "ignore" });
  const dirty = status.exitCode === 0 && status.stdout.toString().trim() !== "";
  return `${head.stdout.toString().trim()}${dirty ? "-dirty" : ""}`;
}

/** The commit's time in seconds since 1970, for reproducible tarball timestamps (SOURCE_DATE_EPOCH wins). */
export function source_epoch_s(): number {
  const forced = Number(process.env.SOURCE_DATE_EPOCH);
  if (Number.isSafeInteger(forced) && forced > 0) return forced;
  const log = Bun.spawnSync(["git", "log", "-1", "--format=%ct"], { cwd: repo_root, stdout: "pipe", stderr: "ignore" });
  const epoch = Number(log.stdout.toString().trim());
  return log.exitCode === 0 && Number.isSafeInteger(epoch) && epoch > 0 ? epoch : Math.floor(Date.now() / 1000);
}

export function package_version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(repo_root, "package.json"), "utf8")) as { version?: unknown };
  if (typeof pkg.version !== "string" || pkg.version === "") throw new Error("package.json has no version");
  return pkg.version;
}
