import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, test } from "bun:test";
import { type Bundle, bundle_files, make_bundle } from "../../scripts/firmware/bundle.ts";
import { package_version, repo_root, source_commit } from "../../scripts/firmware/compile.ts";
import { host_target } from "../../scripts/firmware/targets.ts";
import { binary_builds, file_temp_dirs, run } from "./binary_fixture.ts";

/**
 * The firmware bundle as a technician uses it: unpack the tarball, check the
 * MANIFEST, run install.sh (here with --prefix into a temp root, since the
 * test machine has no systemd of its own), then upgrade with a newer bundle.
 */
const version = package_version();
const commit = source_commit();
const next_commit = `${commit.slice(0, 12)}-next`;

const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let first: Bundle;
let second: Bundle;
beforeAll(async () => {
  const out_dir = temp_dir("interlog-bundles-");
  const target = host_target();
  const bundle_of = async (c: string, dir: string) => {
    const binary = await binaries.get(target, c);
    fs.mkdirSync(dir);
    return make_bundle({ target, binary, version, commit: c, bun_version: Bun.version, out_dir: dir, epoch_s: 1_700_000_000, gzip_level: 1 });
  };
  [first, second] = await Promise.all([bundle_of(commit, path.join(out_dir, "first")), bundle_of(next_commit, path.join(out_dir, "second"))]);
}, 180_000);

/** Unpacks a bundle's tarball the way a technician would; returns the bundle directory. */
async function unpack(bundle: Bundle): Promise<string> {
  const dir = temp_dir("interlog-unpack-");
  const untar = await run(["tar", "-xzf", bundle.tarball, "-C", dir]);
  expect(untar.code).toBe(0);
  return path.join(dir, bundle.name);
}

/** The first bundle unpacked once, for the tests that only read it. */
let shared_first: Promise<string> | null = null;
const unpacked_first = () => (shared_first ??= unpack(first));

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** Every path under root with its mode and content hash: what an install may change. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      const mode = (fs.statSync(file).mode & 0o7777).toString(8);
      if (entry.isDirectory()) {
        out[`${path.relative(root, file)}/`] = mode;
        walk(file);
      } else {
        out[path.relative(root, file)] = `${mode} ${sha256(file)}`;
      }
    }
  };
  walk(root);
  return out;
}

function manifest_entries(bundle_dir: string): Record<string, string> {
  const lines = fs.readFileSync(path.join(bundle_dir, "MANIFEST"), "utf8").trim().split("\n");
  return Object.fromEntries(lines.map((line) => line.split(/\s+/).reverse()));
}

const install = (bundle_dir: string, ...args: string[]) => run(["sh", path.join(bundle_dir, "install.sh"), ...args], { cwd: temp_dir() });

describe("the firmware bundle", () => {
  test("holds the binary, config, unit, install script and VERSION, each checked by MANIFEST", async () => {
    const dir = await unpacked_first();
    expect(fs.readdirSync(dir).sort()).toEqual([...bundle_files, "MANIFEST"].sort());
    const check = await run(["sha256sum", "-c", "MANIFEST"], { cwd: dir });
    expect(check.code).toBe(0);
    expect(check.stdout.trim().split("\n").sort()).toEqual(bundle_files.map((f) => `${f}: OK`).sort());
    expect(fs.readFileSync(path.join(dir, "VERSION"), "utf8")).toContain(`version=${version}\ntarget=${host_target().name}\ncommit=${commit}\n`);
    expect(fs.readFileSync(path.join(dir, "interlog.yaml"), "utf8")).toBe(fs.readFileSync(path.join(repo_root, "config", "device.yaml"), "utf8"));
    expect(fs.statSync(path.join(dir, "interlog")).mode & 0o111).toBe(0o111);
    const info = await run([path.join(dir, "interlog"), "version"]);
    expect(JSON.parse(info.stdout)).toEqual({ version, target: host_target().name, commit });
  });

  test("the systemd unit passes systemd-analyze verify", async () => {
    const dir = await unpacked_first();
    // verify insists that ExecStart exists: point it at the unpacked binary.
    const unit = path.join(temp_dir(), "interlog.service");
    fs.writeFileSync(unit, fs.readFileSync(path.join(dir, "interlog.service"), "utf8").replace("/usr/local/bin/interlog", path.join(dir, "interlog")));
    const verify = await run(["systemd-analyze", "verify", unit]);
    expect(`${verify.stdout}${verify.stderr}`).toBe("");
    expect(verify.code).toBe(0);
  });

  test("a damaged bundle is refused and nothing is installed", async () => {
    const dir = await unpack(first);
    fs.appendFileSync(path.join(dir, "interlog.yaml"), "data_dir: /tmp/elsewhere\n");
    const root = temp_dir("interlog-root-");
    const out = await install(dir, "--prefix", root);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("interlog.yaml: FAILED");
    expect(out.stderr).toContain("does not match its MANIFEST");
    expect(fs.readdirSync(root)).toEqual([]);
  });

  test("install --prefix, then an upgrade over it: binary swapped by rename, config and data kept, reruns change nothing", async () => {
    const v1 = await unpack(first);
    const v2 = await unpack(second);
    const root = temp_dir("interlog-root-");
    const binary = path.join(root, "usr/local/bin/interlog");
    const config = path.join(root, "etc/interlog/interlog.yaml");
    const data = path.join(root, "var/lib/interlog");

    // A dry run changes nothing.
    const dry = await install(v1, "--dry-run", "--prefix", root);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would: install ${v1}/interlog as ${binary}`);
    expect(fs.readdirSync(root)).toEqual([]);

    // First install.
    const installed = await install(v1, "--prefix", root);
    expect(installed.stderr).toBe("");
    expect(installed.code).toBe(0);
    expect(installed.stdout).toContain(`interlog ${version} (${commit}) for ${host_target().name}: installed under ${root}`);
    expect(sha256(binary)).toBe(manifest_entries(v1).interlog);
    expect(fs.readFileSync(config, "utf8")).toBe(fs.readFileSync(path.join(v1, "interlog.yaml"), "utf8"));
    expect(fs.statSync(path.join(root, "etc/interlog/interlog.env")).mode & 0o777).toBe(0o600);
    expect(fs.statSync(data).mode & 0o777).toBe(0o750);
    expect(fs.readFileSync(path.join(root, "etc/systemd/system/interlog.service"), "utf8")).toBe(fs.readFileSync(path.join(v1, "interlog.service"), "utf8"));
    expect(fs.readFileSync(path.join(root, "usr/lib/sysusers.d/interlog.conf"), "utf8")).toContain("u interlog -");
    expect(JSON.parse((await run([binary, "version"])).stdout)).toMatchObject({ commit });

    // The device runs a while: data in the state directory, a technician edits the config.
    const init = await run([binary, "init", "--data-dir", data, "--name", "truck-0042"]);
    const { id } = JSON.parse(init.stdout) as { id: string };
    expect((await run([binary, "append", "--data-dir", data], { stdin: "a\nb\nc\n" })).code).toBe(0);
    fs.writeFileSync(config, `name: truck-0042\n${fs.readFileSync(config, "utf8")}`);
    fs.writeFileSync(path.join(root, "etc/interlog/interlog.env"), "INTERLOG_MQTT_PASSWORD=secret\n");

    // The same bundle again: nothing changes.
    const before_rerun = snapshot(root);
    const rerun = await install(v1, "--prefix", root);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain("already installed, nothing changed");
    expect(snapshot(root)).toEqual(before_rerun);

    // A dry run of the upgrade says what it would do and does nothing.
    const dry_upgrade = await install(v2, "--dry-run", "--prefix", root);
    expect(dry_upgrade.code).toBe(0);
    expect(dry_upgrade.stdout).toContain(`would: install ${v2}/interlog as ${binary}`);
    expect(dry_upgrade.stdout).not.toContain(`${config} (`);
    expect(snapshot(root)).toEqual(before_rerun);

    // The upgrade. A second link to the old binary shows it is replaced by rename, never rewritten in place.
    const old_link = path.join(temp_dir(), "old-interlog");
    fs.linkSync(binary, old_link);
    const upgraded = await install(v2, "--prefix", root);
    expect(upgraded.stderr).toBe("");
    expect(upgraded.code).toBe(0);
    expect(upgraded.stdout).toContain(`interlog ${version} (${next_commit}) for ${host_target().name}: upgraded from ${version} (${commit})`);
    expect(sha256(old_link)).toBe(manifest_entries(v1).interlog);
    expect(sha256(binary)).toBe(manifest_entries(v2).interlog);
    expect(fs.statSync(binary).ino).not.toBe(fs.statSync(old_link).ino);
    expect(JSON.parse((await run([binary, "version"])).stdout)).toMatchObject({ commit: next_commit });
    expect(fs.readdirSync(path.dirname(binary))).toEqual(["interlog"]);

    // Config, secrets and data are as the device left them.
    const after = snapshot(root);
    for (const [file, entry] of Object.entries(before_rerun)) {
      if (file.startsWith("etc/interlog/interlog.") && !file.endsWith(".default")) expect(after[file]).toBe(entry);
      if (file.startsWith("var/lib/interlog/")) expect(after[file]).toBe(entry);
    }
    expect(fs.readFileSync(config, "utf8")).toStartWith("name: truck-0042\n");
    const read = await run([binary, "read", "--data-dir", data]);
    expect(read.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { id: string }).id)).toEqual([`${id}:1`, `${id}:2`, `${id}:3`]);
    expect(JSON.parse((await run([binary, "verify", "--data-dir", data])).stdout)).toMatchObject({ ok: true, events: 3 });
    // The installed record of the bundle is the new one, and its MANIFEST still checks the bundle.
    expect(fs.readFileSync(path.join(root, "usr/local/share/interlog/VERSION"), "utf8")).toContain(`commit=${next_commit}\n`);
    expect((await run(["sha256sum", "-c", path.join(root, "usr/local/share/interlog/MANIFEST")], { cwd: v2 })).code).toBe(0);
  });
});
