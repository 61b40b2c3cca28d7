/**
 * `npm run firmware`: one bundle per target in dist/firmware/:
 * interlog-<version>-<target>.tar.gz holding the binary, interlog.yaml
 * (config/device.yaml), interlog.service, install.sh, the browser replica
 * page in app/ (built once for all targets), VERSION and MANIFEST,
 * plus SHA256SUMS of the tarballs. linux-x64 and linux-arm64 are required;
 * the musl targets are built when npm has their Bun runtime, else skipped
 * with a warning. Prints one JSON line per bundle.
 *
 *   INTERLOG_RELEASE_KEY_FILE=keys/release.key bun scripts/firmware.ts [--target NAME]... [--out-dir DIR]
 *
 * With INTERLOG_RELEASE_KEY_FILE (the path of an Ed25519 private key in PEM,
 * made by scripts/release-key.ts) every bundle carries MANIFEST.sig, the
 * key's signature of its MANIFEST; devices configured with the public key
 * install only bundles it signed. Without the variable the bundles are
 * unsigned, and a warning says so. A path rather than the key itself: the
 * key stays in a 0600 file instead of the environment every child inherits.
 */
import fs from "node:fs";
import path from "node:path";
import { build_browser } from "./browser.ts";
import { parse_script_args } from "./script_args.ts";
import { type Bundle, make_bundle } from "./firmware/bundle.ts";
import { compile_interlog, package_version, repo_root, source_commit, source_epoch_s } from "./firmware/compile.ts";
import { type ReleaseKey, release_key_env, release_key_from_env } from "./firmware/signing.ts";
import { type FirmwareTarget, find_target, firmware_targets } from "./firmware/targets.ts";

const usage = `usage: [${release_key_env}=KEY.pem] bun scripts/firmware.ts [--target NAME]... [--out-dir DIR]
targets: ${firmware_targets.map((t) => `${t.name}${t.required ? "" : " (when available)"}`).join(", ")}; default all
${release_key_env}: Ed25519 private key (PEM) that signs each MANIFEST (bun scripts/release-key.ts makes one); unsigned without it`;

export interface FirmwareBuild {
  target: FirmwareTarget;
  bundle: Bundle;
  binary_bytes: number;
}

/**
 * Builds the bundles of `targets` into `out_dir`, signed with `release_key`
 * when given; a target that is not required and cannot be built is reported and skipped.
 */
export async function build_firmware(
  targets: readonly FirmwareTarget[],
  out_dir: string,
  report: (line: Record<string, unknown>) => void,
  release_key: ReleaseKey | null = null,
): Promise<FirmwareBuild[]> {
  const version = package_version();
  const commit = source_commit();
  const epoch_s = source_epoch_s();
  fs.mkdirSync(out_dir, { recursive: true });
  const work = fs.mkdtempSync(path.join(out_dir, ".build-"));
  const built: FirmwareBuild[] = [];
  try {
    // Plain JavaScript, the same for every target: built once.
    const app_dir = path.join(work, "app");
    for (const warning of (await build_browser(app_dir)).warnings) process.stderr.write(`firmware: browser page: warning: ${warning}\n`);
    for (const target of targets) {
      let build: FirmwareBuild;
      try {
        const binary = path.join(work, `interlog-${target.name}`);
        const compiled = await compile_interlog({ target, outfile: binary, commit });
        const bundle = make_bundle({ target, binary, app_dir, version, commit, bun_version: compiled.bun_version, out_dir, epoch_s, release_key });
        fs.rmSync(binary, { force: true });
        build = { target, bundle, binary_bytes: compiled.bytes };
      } catch (err) {
        if (target.required) throw err;
        report({ target: target.name, skipped: (err as Error).message });
        continue;
      }
      built.push(build);
      report({
        target: target.name,
        tarball: path.relative(process.cwd(), build.bundle.tarball),
        tarball_bytes: build.bundle.bytes,
        binary_bytes: build.binary_bytes,
        sha256: build.bundle.sha256,
        commit,
        signed_by: build.bundle.signed_by,
      });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  write_sums(out_dir);
  return built;
}

/** SHA256SUMS of every bundle in the directory, for `sha256sum -c SHA256SUMS` after a download. */
function write_sums(out_dir: string): void {
  const tarballs = fs.readdirSync(out_dir).filter((f) => f.endsWith(".tar.gz")).sort();
  const lines = tarballs.map((f) => {
    const hash = Bun.spawnSync(["sha256sum", f], { cwd: out_dir, stdout: "pipe" });
    return hash.stdout.toString();
  });
  fs.writeFileSync(path.join(out_dir, "SHA256SUMS"), lines.join(""));
}

async function main(argv: string[]): Promise<number> {
  const values = parse_script_args<{ target?: string[]; "out-dir"?: string }>(
    argv,
    { target: { type: "string", multiple: true }, "out-dir": { type: "string" } },
    usage,
  );
  if (typeof values === "number") return values;
  let targets: FirmwareTarget[];
  try {
    targets = values.target === undefined ? [...firmware_targets] : values.target.map((name) => ({ ...find_target(name), required: true }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const out_dir = path.resolve(values["out-dir"] ?? path.join(repo_root, "dist", "firmware"));
  // Read before compiling: a wrong key path fails at once, not after minutes of builds.
  const release_key = release_key_from_env();
  if (release_key === null) {
    process.stderr.write(`firmware: ${release_key_env} is not set: the bundles are UNSIGNED (no MANIFEST.sig); devices with a release key will refuse them\n`);
  } else {
    process.stderr.write(`firmware: signing each MANIFEST with the release key ${release_key.fingerprint} (sha256 of the public key)\n`);
  }
  await build_firmware(targets, out_dir, (line) => process.stdout.write(`${JSON.stringify(line)}\n`), release_key);
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`firmware: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
