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
}

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
 * start-up time of every CLI call, which counts on a weak board.
 */
export async function compile_interlog(options: CompileOptions): Promise<CompileResult> {
  const { target, outfile, commit } = options;
  const bun_version = Bun.version;
  const args = [
    "build",
    cli_entry,
    "--compile",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--bytecode",
    "--format=esm",
    `--target=${target.bun_target}`,
    `--define=INTERLOG_COMMIT=${JSON.stringify(commit)}`,
    `--define=INTERLOG_TARGET=${JSON.stringify(target.name)}`,
    `--outfile=${outfile}`,
  ];
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
