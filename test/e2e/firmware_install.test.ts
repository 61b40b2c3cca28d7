import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, test } from "bun:test";
import { type Bundle, bundle_files, make_bundle } from "../../scripts/firmware/bundle.ts";
import { package_version, repo_root, source_commit } from "../../scripts/firmware/compile.ts";
import { host_target } from "../../scripts/firmware/targets.ts";
import { binary_builds, file_temp_dirs, run, wait_for } from "./binary_fixture.ts";

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
    // Enabled the way systemctl enable would, so an image starts it on first boot.
    expect(fs.readlinkSync(path.join(root, "etc/systemd/system/multi-user.target.wants/interlog.service"))).toBe("/etc/systemd/system/interlog.service");
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

describe("install.sh on a busybox system", () => {
  test("runs under busybox sh with only busybox's applets: install, rerun, upgrade", async () => {
    const busybox = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "busybox")).find((f) => fs.existsSync(f));
    if (busybox === undefined) throw new Error("busybox is not installed (apt-get install busybox; see .ci/run): devices often have only busybox");
    const applets = temp_dir("interlog-busybox-");
    for (const applet of (await run([busybox, "--list"])).stdout.trim().split("\n")) fs.symlinkSync(busybox, path.join(applets, applet));
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
const live_script = `set -eu
mount -t tmpfs interlog-test "$OVERLAYS"
for d in etc usr var; do
  mkdir -p "$OVERLAYS/$d/upper" "$OVERLAYS/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OVERLAYS/$d/upper,workdir=$OVERLAYS/$d/work" "/$d"
done
mount -t tmpfs interlog-test-run /run
mkdir -p /run/systemd/system
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
