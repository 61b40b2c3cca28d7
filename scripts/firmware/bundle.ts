import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { page_app_files_required } from "../../src/admin/routes/page_app.ts";
import { repo_root } from "./compile.ts";
import { type ReleaseKey, sign_manifest, signature_file } from "./signing.ts";
import type { FirmwareTarget } from "./targets.ts";

/** What goes into a bundle besides the binary, from the repository. */
export const bundle_sources = {
  "interlog.yaml": path.join(repo_root, "config", "device.yaml"),
  "interlog.service": path.join(repo_root, "firmware", "interlog.service"),
  "install.sh": path.join(repo_root, "firmware", "install.sh"),
} as const;

/**
 * The browser replica page (scripts/browser.ts) in the bundle, which install.sh
 * puts in /usr/local/share/interlog/app where the binary looks for it. Its
 * source maps stay out: 2 MiB more per bundle, and the page runs without them.
 */
export const bundle_app_dir = "app";
export const bundle_app_files: readonly string[] = [...page_app_files_required].sort().map((name) => `${bundle_app_dir}/${name}`);

/** Files of a bundle, in MANIFEST order; MANIFEST lists every one but itself (and MANIFEST.sig, its signature, in signed bundles). */
export const bundle_files: readonly string[] = ["VERSION", ...bundle_app_files, "install.sh", "interlog", "interlog.service", "interlog.yaml"];

export interface BundleOptions {
  target: FirmwareTarget;
  /** The compiled binary for `target`. */
  binary: string;
  /** The built browser page (build_browser's out_dir): the same for every target. */
  app_dir: string;
  version: string;
  commit: string;
  bun_version: string;
  out_dir: string;
  /** mtime of every file in the tarball, for byte-identical rebuilds. */
  epoch_s: number;
  /** gzip level, 1 (fast) to 9 (small); default 6. Tests use 1. */
  gzip_level?: number;
  /** Signs MANIFEST into MANIFEST.sig when given; the bundle is unsigned otherwise. */
  release_key?: ReleaseKey | null;
}

export interface Bundle {
  tarball: string;
  /** Name of the directory the tarball unpacks to. */
  name: string;
  bytes: number;
  sha256: string;
  /** sha256 of the release public key that signed MANIFEST, or null for an unsigned bundle. */
  signed_by: string | null;
}

export function bundle_name(version: string, target: FirmwareTarget): string {
  return `interlog-${version}-${target.name}`;
}

/** `VERSION`: key=value lines that install.sh reads with sed. */
export function version_text(options: Pick<BundleOptions, "target" | "version" | "commit" | "bun_version">): string {
  const { target } = options;
  return [
    `version=${options.version}`,
    `target=${target.name}`,
    `commit=${options.commit}`,
    `bun=${options.bun_version}`,
    `libc=${target.libc}`,
    `interpreter=${target.interpreter}`,
    "",
  ].join("\n");
}

export function sha256_of_file(file: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let n = fs.readSync(fd, chunk); n > 0; n = fs.readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** `MANIFEST` in `sha256sum` format, so `sha256sum -c MANIFEST` checks an unpacked bundle. */
export function manifest_text(dir: string): string {
  return bundle_files.map((name) => `${sha256_of_file(path.join(dir, name))}  ${name}\n`).join("");
}

/**
 * Stages the bundle's files in `out_dir/<name>/` (the page from `app_dir` in app/), writes VERSION, MANIFEST
 * and, with a release key, MANIFEST.sig (64 raw bytes, Ed25519), and packs `out_dir/<name>.tar.gz` with fixed owners, order and
 * times. The staging directory is removed afterwards.
 */
export function make_bundle(options: BundleOptions): Bundle {
  const name = bundle_name(options.version, options.target);
  const stage = path.join(options.out_dir, name);
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  try {
    fs.copyFileSync(options.binary, path.join(stage, "interlog"));
    fs.chmodSync(path.join(stage, "interlog"), 0o755);
    for (const [file, source] of Object.entries(bundle_sources)) {
      fs.copyFileSync(source, path.join(stage, file));
      fs.chmodSync(path.join(stage, file), file === "install.sh" ? 0o755 : 0o644);
    }
    fs.mkdirSync(path.join(stage, bundle_app_dir), { mode: 0o755 });
    fs.chmodSync(path.join(stage, bundle_app_dir), 0o755);
    for (const name of page_app_files_required) {
      const file = path.join(stage, bundle_app_dir, name);
      fs.copyFileSync(path.join(options.app_dir, name), file);
      fs.chmodSync(file, 0o644);
    }
    fs.writeFileSync(path.join(stage, "VERSION"), version_text(options), { mode: 0o644 });
    const manifest = manifest_text(stage);
    fs.writeFileSync(path.join(stage, "MANIFEST"), manifest, { mode: 0o644 });
    const key = options.release_key ?? null;
    if (key !== null) fs.writeFileSync(path.join(stage, signature_file), sign_manifest(key, Buffer.from(manifest)), { mode: 0o644 });
    const tarball = path.join(options.out_dir, `${name}.tar.gz`);
    // app itself is a member, so it unpacks with its mode and time; --no-recursion keeps its files in this order.
    const members = [...bundle_files, bundle_app_dir, "MANIFEST", ...(key === null ? [] : [signature_file])].sort().map((file) => `${name}/${file}`);
    // gzip -n: no name or time in the gzip header, so equal inputs give byte-identical tarballs.
    const tar = Bun.spawnSync(
      ["tar", "--no-recursion", "--owner=0", "--group=0", "--numeric-owner", `--mtime=@${options.epoch_s}`, `--use-compress-program=gzip -n -${options.gzip_level ?? 6}`, "-C", options.out_dir, "-cf", tarball, ...members],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (tar.exitCode !== 0) throw new Error(`tar failed for ${name}: ${tar.stderr.toString().trim()}`);
    return { tarball, name, bytes: fs.statSync(tarball).size, sha256: sha256_of_file(tarball), signed_by: key?.fingerprint ?? null };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
