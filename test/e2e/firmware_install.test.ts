import { createHash, generateKeyPairSync, sign } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, test } from "bun:test";
import { build_browser } from "../../scripts/browser.ts";
import { type Bundle, bundle_app_files, bundle_files, make_bundle } from "../../scripts/firmware/bundle.ts";
import { package_version, repo_root, source_commit } from "../../scripts/firmware/compile.ts";
import { type ReleaseKey, load_release_key, make_release_key_pair, release_key_env, release_key_from_env, signature_file } from "../../scripts/firmware/signing.ts";
import { host_target } from "../../scripts/firmware/targets.ts";
import { page_app_files_required } from "../../src/admin/routes/page_app.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { binary_builds, file_temp_dirs, run, wait_for } from "./binary_fixture.ts";

/**
 * The firmware bundle as a technician uses it: unpack the tarball, check the
 * MANIFEST, run install.sh (here with --prefix into a temp root, since the
 * test machine has no systemd of its own), then upgrade with a newer bundle.
 * Signed bundles (MANIFEST.sig) are made with a release key from
 * scripts/release-key.ts, as `npm run firmware` does with INTERLOG_RELEASE_KEY_FILE.
 * The first bundles carry the browser page as scripts/browser.ts builds it,
 * the second ones a changed copy, so an upgrade has a new page to install.
 */
const version = package_version();
const commit = source_commit();
const next_commit = `${commit.slice(0, 12)}-next`;

const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let first: Bundle;
let second: Bundle;
/** The page of the first bundles (build_browser's output, source maps included) and of the second ones. */
let first_app: string;
let second_app: string;
/** The same two builds, signed with the release key. */
let signed_first: Bundle;
let signed_second: Bundle;
/** release.key and release.pub, made by scripts/release-key.ts. */
let keys: { private_key: string; public_key: string; fingerprint: string };
let release_key: ReleaseKey;
/** Someone else's key pair: what an attacker can sign with. */
let attacker: ReleaseKey;
let attacker_pub: string;
beforeAll(async () => {
  const out_dir = temp_dir("interlog-bundles-");
  const made = await run([process.execPath, path.join(repo_root, "scripts", "release-key.ts"), "--out", path.join(out_dir, "keys")]);
  expect(made.stderr).toBe("");
  keys = JSON.parse(made.stdout);
  release_key = load_release_key(keys.private_key);
  const attacker_pair = make_release_key_pair(path.join(out_dir, "attacker-keys"));
  attacker = load_release_key(attacker_pair.private_key);
  attacker_pub = attacker_pair.public_key;
  first_app = path.join(out_dir, "app-first");
  await build_browser(first_app);
  second_app = path.join(out_dir, "app-second");
  fs.cpSync(first_app, second_app, { recursive: true });
  fs.appendFileSync(path.join(second_app, "app.js"), "\n// the next build\n");
  const target = host_target();
  const bundle_of = async (c: string, dir: string, key: ReleaseKey | null = null) => {
    const binary = await binaries.get(target, c);
    fs.mkdirSync(dir);
    const app_dir = c === commit ? first_app : second_app;
    return make_bundle({ target, binary, app_dir, version, commit: c, bun_version: Bun.version, out_dir: dir, epoch_s: 1_700_000_000, gzip_level: 1, release_key: key });
  };
  [first, second, signed_first, signed_second] = await Promise.all([
    bundle_of(commit, path.join(out_dir, "first")),
    bundle_of(next_commit, path.join(out_dir, "second")),
    bundle_of(commit, path.join(out_dir, "signed-first"), release_key),
    bundle_of(next_commit, path.join(out_dir, "signed-second"), release_key),
  ]);
}, 240_000);

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
      if (entry.isSymbolicLink()) {
        out[path.relative(root, file)] = `-> ${fs.readlinkSync(file)}`;
        continue;
      }
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

/** The names at the top of a bundle: bundle_files with app/... as app. */
const top_level = (names: readonly string[]) => [...new Set(names.map((name) => name.split("/")[0] ?? name))].sort();

/** Where install.sh puts the page, under an install root. */
const installed_app = (root: string) => path.join(root, "usr/local/share/interlog/app");

/** The installed page matches the bundle's MANIFEST: every file of it, mode 0644 in a 0755 directory, nothing else. */
function expect_app_of(root: string, bundle_dir: string): void {
  const dir = installed_app(root);
  const entries = manifest_entries(bundle_dir);
  expect(fs.readdirSync(dir).sort()).toEqual([...page_app_files_required].sort());
  expect(fs.statSync(dir).mode & 0o7777).toBe(0o755);
  for (const name of page_app_files_required) {
    expect(sha256(path.join(dir, name))).toBe(entries[`app/${name}`]);
    expect(fs.statSync(path.join(dir, name)).mode & 0o7777).toBe(0o644);
  }
}

/** A directory of links to every busybox applet: a PATH with busybox's tools only, as on many devices. */
async function busybox_path(): Promise<{ busybox: string; applets: string }> {
  const busybox = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "busybox")).find((f) => fs.existsSync(f));
  if (busybox === undefined) throw new Error("busybox is not installed (apt-get install busybox; see .ci/run): devices often have only busybox");
  const applets = temp_dir("interlog-busybox-");
  for (const applet of (await run([busybox, "--list"])).stdout.trim().split("\n")) fs.symlinkSync(busybox, path.join(applets, applet));
  return { busybox, applets };
}

describe("the firmware bundle", () => {
  test("holds the binary, config, unit, install script and VERSION, each checked by MANIFEST", async () => {
    const dir = await unpacked_first();
    expect(fs.readdirSync(dir).sort()).toEqual(top_level([...bundle_files, "MANIFEST"]));
    const check = await run(["sha256sum", "-c", "MANIFEST"], { cwd: dir });
    expect(check.code).toBe(0);
    expect(check.stdout.trim().split("\n").sort()).toEqual(bundle_files.map((f) => `${f}: OK`).sort());
    // The browser page, as scripts/browser.ts built it, without its source maps; MANIFEST covers each file.
    expect(bundle_app_files).toEqual(["app/app.js", "app/index.html", "app/sw.js", "app/ui.js"]);
    expect(fs.readdirSync(path.join(dir, "app")).sort()).toEqual([...page_app_files_required].sort());
    expect(fs.readdirSync(first_app).filter((f) => f.endsWith(".map")).length).toBeGreaterThan(0);
    expect(fs.statSync(path.join(dir, "app")).mode & 0o7777).toBe(0o755);
    for (const name of page_app_files_required) {
      expect(sha256(path.join(dir, "app", name))).toBe(sha256(path.join(first_app, name)));
      expect(manifest_entries(dir)[`app/${name}`]).toBe(sha256(path.join(first_app, name)));
      expect(fs.statSync(path.join(dir, "app", name)).mode & 0o7777).toBe(0o644);
    }
    const listing = await run(["tar", "-tvzf", first.tarball]);
    expect(listing.stdout).toMatch(new RegExp(`^drwxr-xr-x 0/0 .* ${first.name}/app/$`, "m"));
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
    expect(dry.stdout).toContain(`would: install ${v1}/app (app.js index.html sw.js ui.js) as ${installed_app(root)}`);
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
    // Enabled the way systemctl enable would, so an image starts it on first boot.
    expect(fs.readlinkSync(path.join(root, "etc/systemd/system/multi-user.target.wants/interlog.service"))).toBe("/etc/systemd/system/interlog.service");
    expect(JSON.parse((await run([binary, "version"])).stdout)).toMatchObject({ commit });
    expect_app_of(root, v1);

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
    expect(dry_upgrade.stdout).toContain(`would: install ${v2}/app (`);
    expect(dry_upgrade.stdout).not.toContain(`${config} (`);
    expect(snapshot(root)).toEqual(before_rerun);

    // The upgrade. A second link to the old binary shows it is replaced by rename, never rewritten in place.
    const old_link = path.join(temp_dir(), "old-interlog");
    fs.linkSync(binary, old_link);
    // The page directory is replaced whole: the old one (held open here) keeps the old files.
    const old_app = fs.statSync(installed_app(root)).ino;
    const old_app_js = fs.openSync(path.join(installed_app(root), "app.js"), "r");
    const upgraded = await install(v2, "--prefix", root);
    expect(upgraded.stderr).toBe("");
    expect(upgraded.code).toBe(0);
    expect(upgraded.stdout).toContain(`interlog ${version} (${next_commit}) for ${host_target().name}: upgraded from ${version} (${commit})`);
    expect(sha256(old_link)).toBe(manifest_entries(v1).interlog);
    expect(sha256(binary)).toBe(manifest_entries(v2).interlog);
    expect(fs.statSync(binary).ino).not.toBe(fs.statSync(old_link).ino);
    expect(JSON.parse((await run([binary, "version"])).stdout)).toMatchObject({ commit: next_commit });
    expect(fs.readdirSync(path.dirname(binary))).toEqual(["interlog"]);
    expect_app_of(root, v2);
    expect(manifest_entries(v2)["app/app.js"]).not.toBe(manifest_entries(v1)["app/app.js"]);
    expect(fs.statSync(installed_app(root)).ino).not.toBe(old_app);
    expect(createHash("sha256").update(fs.readFileSync(old_app_js)).digest("hex")).toBe(manifest_entries(v1)["app/app.js"]);
    fs.closeSync(old_app_js);
    // No temp directory is left beside it.
    expect(fs.readdirSync(path.join(root, "usr/local/share/interlog")).sort()).toEqual(["MANIFEST", "VERSION", "app", "install.sh"]);

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

  test("the installed binary serves the installed page at /app/ with admin.app: true and no app_dir; a page missing a file is CONFIG_INVALID naming that directory", async () => {
    const v1 = await unpacked_first();
    const root = temp_dir("interlog-root-");
    expect((await install(v1, "--prefix", root)).code).toBe(0);
    const binary = path.join(root, "usr/local/bin/interlog");
    // A working directory with no dist/browser: the page can only come from beside the binary.
    const dir = temp_dir("interlog-device-");
    const config = write_config(dir, "interlog.yaml", "data_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n  app: true\n");
    const serve = await ServeProcess.start(config, { command: [binary], cwd: dir });
    try {
      const page = await serve.fetch("/app/");
      expect(page.status).toBe(200);
      expect(await page.text()).toBe(fs.readFileSync(path.join(installed_app(root), "index.html"), "utf8"));
      const app_js = await serve.fetch("/app/app.js");
      expect(app_js.status).toBe(200);
      expect(createHash("sha256").update(new Uint8Array(await app_js.arrayBuffer())).digest("hex")).toBe(manifest_entries(v1)["app/app.js"]);
    } finally {
      expect(await serve.stop()).toBe(0);
    }

    fs.rmSync(path.join(installed_app(root), "sw.js"));
    const refused = await run([binary, "serve", "--config", config], { cwd: dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${installed_app(root)} lacks sw.js`);
    expect(refused.stderr).toContain("install a firmware bundle");
    // The next install puts the page back whole.
    const repaired = await install(v1, "--prefix", root);
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain(`upgraded from ${version} (${commit})`);
    expect_app_of(root, v1);
  });

  test("a changed page file is refused like any other; a bundle without app/ (older than the page) leaves the installed page; a MANIFEST listing part of it is refused", async () => {
    const v1 = await unpacked_first();
    const root = temp_dir("interlog-root-");
    const damaged = await unpack(second);
    fs.appendFileSync(path.join(damaged, "app", "ui.js"), "alert(1);\n");
    const refused = await install(damaged, "--prefix", root);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("app/ui.js: FAILED");
    expect(fs.readdirSync(root)).toEqual([]);

    expect((await install(v1, "--prefix", root)).code).toBe(0);
    // An older bundle: no app/, and a MANIFEST without it (unsigned, as bundles from before the page are here).
    const older = await unpack(second);
    fs.rmSync(path.join(older, "app"), { recursive: true });
    const old_files = bundle_files.filter((f) => !f.startsWith("app/"));
    fs.writeFileSync(path.join(older, "MANIFEST"), (await run(["sha256sum", ...old_files], { cwd: older })).stdout);
    const downgraded = await install(older, "--prefix", root);
    expect(downgraded.stderr).toBe("");
    expect(downgraded.code).toBe(0);
    expect(downgraded.stdout).toContain(`the bundle has no browser page (app/: it predates the page); ${installed_app(root)} is left as it is`);
    expect(sha256(path.join(root, "usr/local/bin/interlog"))).toBe(manifest_entries(older).interlog);
    expect_app_of(root, v1);

    const partial = await unpack(second);
    const manifest = fs.readFileSync(path.join(partial, "MANIFEST"), "utf8");
    fs.writeFileSync(path.join(partial, "MANIFEST"), manifest.split("\n").filter((line) => !line.endsWith("  app/sw.js")).join("\n"));
    const before = snapshot(root);
    const half = await install(partial, "--prefix", root);
    expect(half.code).toBe(1);
    expect(half.stderr).toContain("MANIFEST lists app/index.html but not app/sw.js; nothing was installed");
    expect(snapshot(root)).toEqual(before);
  });
});

describe("install.sh on a busybox system", () => {
  test("runs under busybox sh with only busybox's applets: install, rerun, upgrade", async () => {
    const { busybox, applets } = await busybox_path();
    const [v1, v2] = await Promise.all([unpack(first), unpack(second)]);
    const root = temp_dir("interlog-root-");
    const sh = (bundle_dir: string) => run([busybox, "sh", path.join(bundle_dir, "install.sh"), "--prefix", root], { env: { PATH: applets } });
    const installed = await sh(v1);
    expect(installed.stderr).toBe("");
    expect(installed.stdout).toContain(": installed under");
    expect((await sh(v1)).stdout).toContain("already installed, nothing changed");
    const upgraded = await sh(v2);
    expect(upgraded.stderr).toBe("");
    expect(upgraded.stdout).toContain(`upgraded from ${version} (${commit})`);
    expect(sha256(path.join(root, "usr/local/bin/interlog"))).toBe(manifest_entries(v2).interlog);
    expect(fs.statSync(path.join(root, "etc/interlog/interlog.env")).mode & 0o777).toBe(0o600);
    expect_app_of(root, v2);
    expect(fs.readdirSync(path.join(root, "usr/local/share/interlog")).sort()).toEqual(["MANIFEST", "VERSION", "app", "install.sh"]);
  });
});

/** A directory outside the install root that a planted link points at: mode 0700, one file in it. */
function victim_dir(): string {
  const dir = path.join(temp_dir("interlog-victim-"), "private");
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.writeFileSync(path.join(dir, "secret"), "not for interlog\n", { mode: 0o600 });
  return dir;
}

/** A file outside the install root that planted links point at. */
function victim_file(): string {
  const file = path.join(temp_dir("interlog-victim-"), "victim");
  fs.writeFileSync(file, "precious\n", { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}

const file_state = (file: string) => `${(fs.statSync(file).mode & 0o7777).toString(8)} ${fs.readFileSync(file, "utf8")}`;

describe("install.sh and symlinks", () => {
  test.each(["etc/interlog", "usr/local", "var/lib/interlog", "etc/systemd/system", "usr/lib/sysusers.d", "usr/local/share/interlog/app"])(
    "a symlinked %s under --prefix is refused: nothing changes, the 0700 directory it points at keeps its mode",
    async (linked) => {
      const dir = await unpacked_first();
      const root = temp_dir("interlog-root-");
      const victim = victim_dir();
      fs.mkdirSync(path.dirname(path.join(root, linked)), { recursive: true });
      fs.symlinkSync(victim, path.join(root, linked));
      const before = snapshot(root);
      for (const args of [["--prefix", root], ["--dry-run", "--prefix", root]]) {
        const out = await install(dir, ...args);
        expect(out.code).toBe(1);
        expect(out.stderr).toContain(`${path.join(root, linked)} is a symlink (to ${victim})`);
        expect(out.stderr).toContain("nothing was changed");
        expect(snapshot(root)).toEqual(before);
        expect(fs.statSync(victim).mode & 0o7777).toBe(0o700);
        expect(fs.readdirSync(victim)).toEqual(["secret"]);
      }
    },
  );

  test("a symlinked file is refused: an upgrade over a linked record changes nothing, a dangling interlog.env is not written through", async () => {
    const [v1, v2] = await Promise.all([unpacked_first(), unpack(second)]);
    const root = temp_dir("interlog-root-");
    expect((await install(v1, "--prefix", root)).code).toBe(0);
    const victim = victim_file();
    const record = path.join(root, "usr/local/share/interlog/VERSION");
    fs.rmSync(record);
    fs.symlinkSync(victim, record);
    const before = snapshot(root);
    const upgrade = await install(v2, "--prefix", root);
    expect(upgrade.code).toBe(1);
    expect(upgrade.stderr).toContain(`${record} is a symlink`);
    expect(snapshot(root)).toEqual(before);
    expect(sha256(path.join(root, "usr/local/bin/interlog"))).toBe(manifest_entries(v1).interlog);
    expect(file_state(victim)).toBe("600 precious\n");

    // On a first install the secrets file is created only when absent: a link to nowhere there would be followed.
    const fresh = temp_dir("interlog-root-");
    fs.mkdirSync(path.join(fresh, "etc/interlog"), { recursive: true });
    const nowhere = path.join(temp_dir("interlog-victim-"), "planted-secrets");
    fs.symlinkSync(nowhere, path.join(fresh, "etc/interlog/interlog.env"));
    const first_install = await install(v1, "--prefix", fresh);
    expect(first_install.code).toBe(1);
    expect(first_install.stderr).toContain("interlog.env is a symlink");
    expect(fs.existsSync(nowhere)).toBe(false);
    expect(fs.readdirSync(fresh)).toEqual(["etc"]);
  });

  test("temp files have unpredictable names: links planted at the old fixed temp names (.NAME.new.PID) redirect nothing", async () => {
    const dir = await unpacked_first();
    const root = temp_dir("interlog-root-");
    const victim = victim_file();
    const targets = [
      "usr/local/bin/interlog",
      "etc/interlog/interlog.yaml",
      "etc/interlog/interlog.yaml.default",
      "etc/interlog/interlog.env",
      "etc/systemd/system/interlog.service",
      "usr/lib/sysusers.d/interlog.conf",
      "usr/local/share/interlog/VERSION",
      "usr/local/share/interlog/MANIFEST",
      "usr/local/share/interlog/install.sh",
    ].map((f) => path.join(root, f));
    for (const target of targets) fs.mkdirSync(path.dirname(target), { recursive: true });
    // exec keeps the PID, so $$ in install.sh is the $$ the links were planted with.
    const script = `for t in "$@"; do ln -s "$VICTIM" "$(dirname "$t")/.$(basename "$t").new.$$"; done
exec sh "$INSTALL" --prefix "$ROOT"`;
    const out = await run(["sh", "-c", script, "sh", ...targets], { env: { VICTIM: victim, INSTALL: path.join(dir, "install.sh"), ROOT: root } });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(": installed under");
    expect(file_state(victim)).toBe("600 precious\n");
    expect(sha256(path.join(root, "usr/local/bin/interlog"))).toBe(manifest_entries(dir).interlog);
    // Each directory holds the installed files and the planted links, untouched: no temp file is left behind.
    for (const target of targets) {
      const names = fs.readdirSync(path.dirname(target));
      for (const name of names.filter((n) => n.startsWith("."))) {
        expect(name).toMatch(/\.new\.\d+$/);
        expect(fs.readlinkSync(path.join(path.dirname(target), name))).toBe(victim);
      }
      expect(fs.lstatSync(target).isFile()).toBe(true);
    }
  });
});

/** Unpacks a signed bundle and rewrites it as an attacker would: a changed config, MANIFEST made anew so every sha256 matches. */
async function tampered(bundle: Bundle, signature: "none" | "stale" | "attacker"): Promise<string> {
  const dir = await unpack(bundle);
  fs.appendFileSync(path.join(dir, "interlog.yaml"), "data_dir: /tmp/attacker\n");
  const sums = await run(["sha256sum", ...bundle_files], { cwd: dir });
  fs.writeFileSync(path.join(dir, "MANIFEST"), sums.stdout);
  expect((await run(["sha256sum", "-c", "MANIFEST"], { cwd: dir })).code).toBe(0);
  const sig = path.join(dir, signature_file);
  if (signature === "none") fs.rmSync(sig);
  if (signature === "attacker") fs.writeFileSync(sig, sign(null, fs.readFileSync(path.join(dir, "MANIFEST")), attacker.private_key));
  return dir;
}

/**
 * Who checks signatures for an install into an image (--prefix): a program of this machine, never one
 * from the image tree. The test machine has no interlog of its own in /usr/local/bin, so openssl.
 */
const host_judge = fs.existsSync("/usr/local/bin/interlog") ? "/usr/local/bin/interlog" : "openssl";

/** An install root whose device trusts the release key (etc/interlog/release.pub), nothing installed yet. */
function root_with_key(pub = keys.public_key): string {
  const root = temp_dir("interlog-root-");
  fs.mkdirSync(path.join(root, "etc/interlog"), { recursive: true });
  fs.copyFileSync(pub, path.join(root, "etc/interlog/release.pub"));
  return root;
}

/** A device that trusts the release key and has the signed first bundle installed, shared by tests that must leave it unchanged. */
let shared_keyed_root: Promise<string> | null = null;
const keyed_installed_root = () =>
  (shared_keyed_root ??= (async () => {
    const root = root_with_key();
    const out = await install(await unpack(signed_first), "--prefix", root);
    expect(out.code).toBe(0);
    return root;
  })());

describe("signed bundles", () => {
  test("release-key.ts makes a 0600 key it never overwrites; a signed bundle carries MANIFEST.sig that openssl verifies", async () => {
    expect(fs.statSync(keys.private_key).mode & 0o777).toBe(0o600);
    expect(release_key.fingerprint).toBe(keys.fingerprint);
    const again = await run([process.execPath, path.join(repo_root, "scripts", "release-key.ts"), "--out", path.dirname(keys.private_key)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("not overwriting");
    expect(signed_first.signed_by).toBe(keys.fingerprint);
    expect(first.signed_by).toBeNull();

    const dir = await unpack(signed_first);
    expect(fs.readdirSync(dir).sort()).toEqual(top_level([...bundle_files, "MANIFEST", signature_file]));
    expect(fs.statSync(path.join(dir, signature_file)).size).toBe(64);
    const check = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", keys.public_key, "-rawin", "-in", "MANIFEST", "-sigfile", signature_file];
    const verified = await run(check, { cwd: dir });
    expect(verified.stdout).toContain("Signature Verified Successfully");
    expect(verified.code).toBe(0);

    // npm run firmware reads the key from INTERLOG_RELEASE_KEY_FILE: unset is unsigned, a wrong key is an error, never a silent unsigned build.
    expect(release_key_from_env({})).toBeNull();
    expect(release_key_from_env({ [release_key_env]: keys.private_key })?.fingerprint).toBe(keys.fingerprint);
    expect(() => release_key_from_env({ [release_key_env]: path.join(dir, "missing.key") })).toThrow("cannot read the release key");
    const rsa = path.join(temp_dir(), "rsa.key");
    fs.writeFileSync(rsa, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }));
    expect(() => release_key_from_env({ [release_key_env]: rsa })).toThrow("release keys are Ed25519");
    expect(() => release_key_from_env({ [release_key_env]: keys.public_key })).toThrow("not a PEM private key");
  });

  test("interlog verify-manifest: exit 0 for the release key's signature, 1 for a wrong one or a wrong key, 2 on misuse", async () => {
    const binary = await binaries.get();
    const dir = await unpack(signed_first);
    const manifest = path.join(dir, "MANIFEST");
    const sig = path.join(dir, signature_file);
    const verify = (key: string, signature = sig) => run([binary, "verify-manifest", "--key", key, "--manifest", manifest, "--signature", signature]);
    const ok = await verify(keys.public_key);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, key_sha256: keys.fingerprint });
    const wrong_key = await verify(attacker_pub);
    expect(wrong_key.code).toBe(1);
    expect(wrong_key.stderr).toContain("is not a signature of");
    const flipped = path.join(temp_dir(), "flipped.sig");
    const bytes = fs.readFileSync(sig);
    bytes[10] = (bytes[10] ?? 0) ^ 1;
    fs.writeFileSync(flipped, bytes);
    expect((await verify(keys.public_key, flipped)).code).toBe(1);
    const short = path.join(temp_dir(), "short.sig");
    fs.writeFileSync(short, bytes.subarray(0, 63));
    expect((await verify(keys.public_key, short)).stderr).toContain("holds 63 bytes");
    const rsa_pub = path.join(temp_dir(), "rsa.pub");
    fs.writeFileSync(rsa_pub, generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }));
    const rsa = await verify(rsa_pub);
    expect(rsa.code).toBe(1);
    expect(rsa.stderr).toContain("release keys are Ed25519");
    const private_key = await verify(keys.private_key);
    expect(private_key.code).toBe(1);
    expect(private_key.stderr).toContain("is a private key");
    expect((await run([binary, "verify-manifest", "--manifest", manifest])).code).toBe(2);
  });

  test("with the release key in the image, a signed bundle installs and the install.sh it keeps upgrades it (--bundle); the image's own binary is never run to judge", async () => {
    const [v1, v2] = await Promise.all([unpack(signed_first), unpack(signed_second)]);
    const root = root_with_key();
    const installed = await install(v1, "--prefix", root);
    expect(installed.stderr).toBe("");
    expect(installed.code).toBe(0);
    expect(installed.stdout).toContain(`MANIFEST.sig verified with the release key ${root}/etc/interlog/release.pub (by ${host_judge})`);
    expect(installed.stdout).toContain(": installed under");
    const share = path.join(root, "usr/local/share/interlog");
    expect(fs.readFileSync(path.join(share, signature_file))).toEqual(fs.readFileSync(path.join(v1, signature_file)));
    expect(sha256(path.join(share, "install.sh"))).toBe(manifest_entries(v1)["install.sh"]);

    // A binary planted in the image that would approve anything: with --prefix it is not run.
    const image_binary = path.join(root, "usr/local/bin/interlog");
    const real = fs.readFileSync(image_binary);
    const ran = path.join(temp_dir(), "ran");
    fs.writeFileSync(image_binary, `#!/bin/sh\ntouch ${ran}\necho '{"ok":true}'\n`);
    const bad = await tampered(signed_second, "attacker");
    const refused = await install(bad, "--prefix", root);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`(checked by ${host_judge})`);
    expect(fs.existsSync(ran)).toBe(false);
    fs.writeFileSync(image_binary, real);

    // The upgrade run by the install.sh the last (verified) install kept.
    const upgraded = await run(["sh", path.join(share, "install.sh"), "--bundle", v2, "--prefix", root]);
    expect(upgraded.stderr).toBe("");
    expect(upgraded.code).toBe(0);
    expect(upgraded.stdout).toContain(`(by ${host_judge})`);
    expect(upgraded.stdout).toContain(`upgraded from ${version} (${commit})`);
    expect(sha256(image_binary)).toBe(manifest_entries(v2).interlog);
    expect(fs.readdirSync(share).sort()).toEqual(["MANIFEST", signature_file, "VERSION", "app", "install.sh"]);
    expect_app_of(root, v2);
  });

  test.each(["none", "stale", "attacker"] as const)(
    "a bundle whose MANIFEST was rewritten (valid sha256 sums, signature: %s) is refused when a release key is configured; without one it would install",
    async (signature) => {
      const [bad, upgraded_root] = await Promise.all([tampered(signed_second, signature), keyed_installed_root()]);
      const fresh = root_with_key();
      const attempts = [
        { root: fresh, out: () => install(bad, "--prefix", fresh) },
        { root: upgraded_root, out: () => run(["sh", path.join(upgraded_root, "usr/local/share/interlog/install.sh"), "--bundle", bad, "--prefix", upgraded_root]) },
      ];
      for (const attempt of attempts) {
        const before = snapshot(attempt.root);
        const out = await attempt.out();
        expect(out.code).toBe(1);
        if (signature === "none") {
          expect(out.stderr).toContain("the bundle has no MANIFEST.sig, but this device installs only bundles signed with the release key");
        } else {
          expect(out.stderr).toContain(`MANIFEST.sig does not verify with the release key ${attempt.root}/etc/interlog/release.pub (checked by ${host_judge})`);
        }
        expect(out.stderr).toContain("nothing was changed");
        expect(snapshot(attempt.root)).toEqual(before);
      }
      // The bundle's own install.sh refuses it too on that device. Without a release key it would install:
      // the sums are valid, only the signature tells it from the real one.
      expect((await install(bad, "--prefix", upgraded_root)).code).toBe(1);
      const keyless = temp_dir("interlog-root-");
      expect((await install(bad, "--prefix", keyless)).code).toBe(0);
      expect(fs.readFileSync(path.join(keyless, "etc/interlog/interlog.yaml"), "utf8")).toEndWith("data_dir: /tmp/attacker\n");
    },
  );

  test("--release-key: a first install checks the signature and keeps the key, after which unsigned bundles and other keys are refused", async () => {
    const [unsigned_v1, v1, unsigned_v2, v2] = await Promise.all([unpacked_first(), unpack(signed_first), unpack(second), unpack(signed_second)]);
    const root = temp_dir("interlog-root-");
    const device_key = path.join(root, "etc/interlog/release.pub");

    const unsigned = await install(unsigned_v1, "--release-key", keys.public_key, "--prefix", root);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toContain("the bundle has no MANIFEST.sig");
    expect(fs.readdirSync(root)).toEqual([]);

    const dry = await install(v1, "--dry-run", "--release-key", keys.public_key, "--prefix", root);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would: install ${keys.public_key} as ${device_key} (mode 0644)`);
    expect(fs.readdirSync(root)).toEqual([]);

    const installed = await install(v1, "--release-key", keys.public_key, "--prefix", root);
    expect(installed.stderr).toBe("");
    expect(installed.code).toBe(0);
    expect(installed.stdout).toContain(`MANIFEST.sig verified with the release key ${keys.public_key} (by ${host_judge})`);
    expect(fs.readFileSync(device_key, "utf8")).toBe(fs.readFileSync(keys.public_key, "utf8"));
    expect(fs.statSync(device_key).mode & 0o777).toBe(0o644);

    const before = snapshot(root);
    const later_unsigned = await install(unsigned_v2, "--prefix", root);
    expect(later_unsigned.code).toBe(1);
    expect(later_unsigned.stderr).toContain(`signed with the release key ${device_key}`);
    const other_key = await install(v2, "--release-key", attacker_pub, "--prefix", root);
    expect(other_key.code).toBe(1);
    expect(other_key.stderr).toContain(`differs from ${device_key}, the release key this device already trusts`);
    expect(snapshot(root)).toEqual(before);

    const upgraded = await install(v2, "--prefix", root);
    expect(upgraded.code).toBe(0);
    expect(upgraded.stdout).toContain(`MANIFEST.sig verified with the release key ${device_key} (by ${host_judge})`);
  });

  test("without a release key, signed and unsigned bundles both install", async () => {
    const [v1, unsigned_v1] = await Promise.all([unpack(signed_first), unpacked_first()]);
    const root = temp_dir("interlog-root-");
    const signed = await install(v1, "--prefix", root);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toContain("MANIFEST.sig not checked: no release key configured");
    // Back to an unsigned bundle: its record drops the old signature.
    const unsigned = await install(unsigned_v1, "--prefix", root);
    expect(unsigned.code).toBe(0);
    expect(fs.existsSync(path.join(root, "usr/local/share/interlog", signature_file))).toBe(false);
  });
});

/**
 * install.sh as root on a live system, without touching this machine: a
 * private mount namespace with throwaway overlays over /etc, /usr and /var,
 * so useradd, chown and the paths are real and vanish with the namespace.
 * No systemd runs here, so the service is started the way its unit would:
 * as the user interlog, in its state directory; install.sh's systemctl calls
 * go to a stand-in that records them (with /run/systemd/system present, as
 * on a systemd machine).
 */
const live_mounts = `set -eu
mount -t tmpfs interlog-test "$OVERLAYS"
for d in etc usr var; do
  mkdir -p "$OVERLAYS/$d/upper" "$OVERLAYS/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OVERLAYS/$d/upper,workdir=$OVERLAYS/$d/work" "/$d"
done
mount -t tmpfs interlog-test-run /run
`;
const live_script = `${live_mounts}mkdir -p /run/systemd/system
PATH="$FAKE_BIN:$PATH" sh "$V1/install.sh"
PATH="$FAKE_BIN:$PATH" sh "$V1/install.sh"
echo "systemctl calls after the rerun"
echo "uid=$(id -u interlog)"
# A technician's edit: any free port, so the test does not depend on 8080 being free.
sed -i 's/^  listen: 127.0.0.1:8080/  listen: 127.0.0.1:0/' /etc/interlog/interlog.yaml
cd /var/lib/interlog
setpriv --reuid=interlog --regid=interlog --init-groups /usr/local/bin/interlog serve --config /etc/interlog/interlog.yaml &
echo "serve_pid=$!"
serve_exit=0
wait $! || serve_exit=$?
echo "serve_exit=$serve_exit"
find /var/lib/interlog -exec stat -c 'owner=%U:%G %n' {} +
PATH="$FAKE_BIN:$PATH" sh "$V2/install.sh"
echo "uid=$(id -u interlog)"
grep -c '^  listen: 127.0.0.1:0 ' /etc/interlog/interlog.yaml | sed 's/^/kept_listen=/'
/usr/local/bin/interlog version
/usr/local/bin/interlog read --data-dir /var/lib/interlog
`;

describe("install.sh as root on a live system (private mount namespace)", () => {
  test("creates the user, the service runs as it in its state directory, and an upgrade keeps user, config and data", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (for unshare and mount); CI runs as root");
    const [v1, v2] = await Promise.all([unpack(first), unpack(second)]);
    const work = temp_dir("interlog-live-");
    const overlays = path.join(work, "overlays");
    fs.mkdirSync(overlays);
    const script = path.join(work, "live.sh");
    fs.writeFileSync(script, live_script);
    const fake_bin = path.join(work, "fake-bin");
    fs.mkdirSync(fake_bin);
    // Prints each call as a line of the script's output; is-enabled answers "enabled".
    fs.writeFileSync(path.join(fake_bin, "systemctl"), `#!/bin/sh\necho "systemctl: $*"\n`, { mode: 0o755 });
    const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", script], {
      env: { PATH: process.env.PATH ?? "", OVERLAYS: overlays, V1: v1, V2: v2, FAKE_BIN: fake_bin },
      stdout: "pipe",
      stderr: "pipe",
    });
    const lines: string[] = [];
    void (async () => {
      let pending = "";
      for await (const chunk of proc.stdout) {
        pending += new TextDecoder().decode(chunk);
        const parts = pending.split("\n");
        pending = parts.pop() ?? "";
        lines.push(...parts);
      }
    })();
    const stderr = new Response(proc.stderr).text();
    const value = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    try {
      const started = await wait_for("serve to start as the user interlog", async () => {
        if (proc.exitCode !== null) throw new Error(`the script ended early (exit ${proc.exitCode}): ${await stderr}\n${lines.join("\n")}`);
        const line = lines.find((l) => l.includes(`"msg":"replica started"`));
        return line === undefined ? null : (JSON.parse(line) as { admin_url: string; id: string });
      });
      const res = await fetch(`${started.admin_url}/api/events`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "written by the service user" });
      expect(res.status).toBe(201);
      process.kill(Number(value("serve_pid")[0]), "SIGTERM");
      expect(await proc.exited).toBe(0);
      await Bun.sleep(50); // let the reader take the last lines
      expect(await stderr).toBe("");
      const out = lines.join("\n");
      // systemctl: reload and enable --now on the first install, nothing on the rerun, restart on the upgrade.
      expect(lines.filter((l) => l.startsWith("systemctl"))).toEqual([
        "systemctl: daemon-reload",
        "systemctl: enable --now interlog.service",
        "systemctl calls after the rerun",
        "systemctl: is-enabled --quiet interlog.service",
        "systemctl: restart interlog.service",
      ]);
      expect(value("serve_exit")).toEqual(["0"]);
      // The data directory and everything the service wrote belong to interlog, not root.
      const owners = value("owner");
      expect(owners.length).toBeGreaterThan(2);
      for (const owner of owners) expect(owner).toStartWith("interlog:interlog ");
      // The upgrade reused the user and kept the edited config and the data.
      expect(out).toContain(`upgraded from ${version} (${commit})`);
      const uids = value("uid");
      expect(uids.length).toBe(2);
      expect(uids[1]).toBe(uids[0]);
      expect(value("kept_listen")).toEqual(["1"]);
      const json = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(json.find((j) => "target" in j && "commit" in j)).toEqual({ version, target: host_target().name, commit: next_commit });
      const event = json.find((j) => j.id === `${started.id}:1`);
      expect(Buffer.from(String(event?.payload), "base64").toString()).toBe("written by the service user");
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await proc.exited;
    }
  });
});

/**
 * A device with the release key in /etc/interlog/release.pub, as root in the
 * same kind of throwaway namespace: no systemd here, so install.sh only says
 * how to start the replica. APPLETS is a PATH of busybox's tools only (no openssl).
 */
const live_signed_script = `${live_mounts}rm -f /usr/local/bin/interlog
mkdir -p /etc/interlog
cp "$KEY" /etc/interlog/release.pub
r=0; PATH="$APPLETS" sh "$V1/install.sh" >/dev/null 2>"$OUT/no_judge.err" || r=$?
echo "no_judge_exit=$r"
echo "user_after_refusal=$(id -u interlog 2>/dev/null || echo none)"
find /etc/interlog /usr/local/bin/interlog /usr/local/share/interlog /var/lib/interlog 2>/dev/null | sed 's/^/after_refusal=/'
sh "$V1/install.sh" | sed 's/^/first: /'
r=0; PATH="$APPLETS" sh /usr/local/share/interlog/install.sh --bundle "$BAD" >/dev/null 2>"$OUT/bad.err" || r=$?
echo "bad_exit=$r"
sha256sum /usr/local/bin/interlog | sed 's/^/binary_after_refusal=/'
PATH="$APPLETS" sh /usr/local/share/interlog/install.sh --bundle "$V2" | sed 's/^/upgrade: /'
/usr/local/bin/interlog version
`;

describe("install.sh as root on a live system with a release key (private mount namespace)", () => {
  test("no verifier on a busybox device refuses; openssl checks the first install; on busybox the installed interlog checks upgrades and refuses a rewritten bundle", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (for unshare and mount); CI runs as root");
    const [v1, v2, bad] = await Promise.all([unpack(signed_first), unpack(signed_second), tampered(signed_second, "attacker")]);
    const { applets } = await busybox_path();
    const work = temp_dir("interlog-live-");
    const overlays = path.join(work, "overlays");
    fs.mkdirSync(overlays);
    const script = path.join(work, "live.sh");
    fs.writeFileSync(script, live_signed_script);
    const out = await run(["unshare", "--mount", "--propagation", "private", "sh", script], {
      env: { OVERLAYS: overlays, V1: v1, V2: v2, BAD: bad, KEY: keys.public_key, APPLETS: applets, OUT: work },
    });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split("\n");
    const value = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

    // busybox only and no interlog yet: nothing can check the signature, so nothing is done.
    expect(value("no_judge_exit")).toEqual(["1"]);
    expect(fs.readFileSync(path.join(work, "no_judge.err"), "utf8")).toContain(
      "nothing here can check the bundle's signature: there is no /usr/local/bin/interlog on this machine, and openssl is missing",
    );
    expect(value("user_after_refusal")).toEqual(["none"]);
    expect(value("after_refusal")).toEqual(["/etc/interlog", "/etc/interlog/release.pub"]);

    expect(lines).toContain("first: install.sh: MANIFEST.sig verified with the release key /etc/interlog/release.pub (by openssl)");
    expect(lines.some((l) => l.startsWith("first: ") && l.endsWith(": installed"))).toBe(true);

    expect(value("bad_exit")).toEqual(["1"]);
    expect(fs.readFileSync(path.join(work, "bad.err"), "utf8")).toContain(
      "MANIFEST.sig does not verify with the release key /etc/interlog/release.pub (checked by /usr/local/bin/interlog): ",
    );
    expect(value("binary_after_refusal")).toEqual([`${manifest_entries(v1).interlog}  /usr/local/bin/interlog`]);

    expect(lines).toContain("upgrade: install.sh: MANIFEST.sig verified with the release key /etc/interlog/release.pub (by /usr/local/bin/interlog)");
    expect(lines.some((l) => l.startsWith("upgrade: ") && l.includes(`upgraded from ${version} (${commit})`))).toBe(true);
    expect(JSON.parse(lines.at(-1) ?? "")).toEqual({ version, target: host_target().name, commit: next_commit });
  });
});
