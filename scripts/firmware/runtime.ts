import fs from "node:fs";
import path from "node:path";
import { type FirmwareTarget, elf_machine_of } from "./targets.ts";

/**
 * The Bun runtime a cross-compiled binary is built on: `bin/bun` of the npm
 * package Bun publishes for the target, fetched with `npm pack` (the ordinary
 * npm client, so the registry's integrity check applies) and kept in a cache
 * directory, one subdirectory per package and version.
 */
export function runtime_cache_dir(root: string): string {
  return process.env.INTERLOG_RUNTIME_CACHE ?? path.join(root, "node_modules", ".cache", "interlog-bun-runtimes");
}

/** Path of the target's Bun runtime at `version`, fetching it on first use. */
export async function bun_runtime(target: FirmwareTarget, version: string, cache_dir: string): Promise<string> {
  const spec = `${target.runtime_package}@${version}`;
  const dir = path.join(cache_dir, `${target.runtime_package.replace("@", "").replace("/", "-")}-${version}`);
  const binary = path.join(dir, "bun");
  if (fs.existsSync(binary)) {
    check_runtime(binary, target, spec);
    return binary;
  }
  fs.mkdirSync(cache_dir, { recursive: true });
  const work = fs.mkdtempSync(path.join(cache_dir, ".fetch-"));
  try {
    const pack = Bun.spawnSync(["npm", "pack", spec, "--pack-destination", work, "--silent"], {
      cwd: work,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, npm_config_update_notifier: "false" },
    });
    const tarball = pack.stdout.toString().trim().split("\n").pop() ?? "";
    if (pack.exitCode !== 0 || tarball === "") {
      throw new Error(
        `could not fetch the Bun runtime for ${target.name}: \`npm pack ${spec}\` failed (exit ${pack.exitCode}): ` +
          `${pack.stderr.toString().trim() || "no output"}. It comes from the npm registry; check that npm can reach it.`,
      );
    }
    const untar = Bun.spawnSync(["tar", "-xzf", path.join(work, tarball), "-C", work, "package/bin/bun"], { stderr: "pipe" });
    if (untar.exitCode !== 0) throw new Error(`${spec}: cannot unpack ${tarball}: ${untar.stderr.toString().trim()}`);
    const unpacked = path.join(work, "package", "bin", "bun");
    check_runtime(unpacked, target, spec);
    fs.chmodSync(unpacked, 0o755);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    // Rename into place: a concurrent or interrupted fetch never leaves a half-written runtime behind.
    fs.renameSync(path.join(work, "package", "bin"), dir);
    return binary;
  } catch (err) {
    // Another build may have put it in place meanwhile.
    if ((err as NodeJS.ErrnoException).code === "ENOTEMPTY" || (err as NodeJS.ErrnoException).code === "EEXIST") return binary;
    throw err;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function check_runtime(binary: string, target: FirmwareTarget, spec: string): void {
  const machine = elf_machine_of(binary);
  if (machine !== target.elf_machine) {
    throw new Error(`${binary} (from ${spec}) is not a ${target.name} executable (ELF machine ${machine}); delete it and build again`);
  }
}

