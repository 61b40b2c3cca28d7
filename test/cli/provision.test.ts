import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { passwd_line, passwd_line_accepts, put_line } from "../../src/cli/commands/provision.ts";
import { new_origin } from "../../src/log/ids.ts";
import { interlog_command } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";

function run(args: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([...interlog_command(), ...args], { env: { PATH: process.env.PATH ?? "" } });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function has_mosquitto_passwd(): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => dir !== "" && fs.existsSync(path.join(dir, "mosquitto_passwd")));
}

describe("interlog provision", () => {
  test("on a device: the login is the data directory's replica id, the password goes to the env file (0600, other lines kept)", () => {
    const root = temp_dir();
    const data = path.join(root, "data");
    const { id } = JSON.parse(run(["init", "--data-dir", data]).out) as { id: string };
    const env_file = path.join(root, "interlog.env");
    // As firmware/install.sh leaves it: placeholders, mode 0600.
    fs.writeFileSync(env_file, "# Secrets for interlog.service\n# INTERLOG_MQTT_PASSWORD=\nINTERLOG_ADMIN_TOKEN=tok\n", { mode: 0o600 });
    const first = run(["provision", "--data-dir", data, "--env-file", env_file]);
    expect(first.code).toBe(0);
    const out = JSON.parse(first.out) as Record<string, string>;
    expect(out).toMatchObject({ id, username: id, password_env: "INTERLOG_MQTT_PASSWORD", env_file });
    expect(out.password).toBeUndefined(); // it is in the env file, not on the terminal
    const lines = fs.readFileSync(env_file, "utf8").split("\n");
    expect(lines[0]).toBe("# Secrets for interlog.service");
    expect(lines[1]).toMatch(/^INTERLOG_MQTT_PASSWORD=[A-Za-z0-9_-]{43}$/);
    expect(lines.slice(2)).toEqual(["INTERLOG_ADMIN_TOKEN=tok", ""]);
    expect(fs.statSync(env_file).mode & 0o777).toBe(0o600);
    const password = lines[1].split("=")[1];
    expect(out.password_file_line.startsWith(`${id}:$7$101$`)).toBe(true);
    expect(passwd_line_accepts(out.password_file_line, password)).toBe(true);
    expect(passwd_line_accepts(out.password_file_line, `${password}x`)).toBe(false);

    // Again: a new password replaces the old one in place (rotation).
    const second = JSON.parse(run(["provision", "--data-dir", data, "--env-file", env_file, "--password-env", "INTERLOG_MQTT_PASSWORD"]).out) as Record<string, string>;
    const again = fs.readFileSync(env_file, "utf8").split("\n");
    expect(again.filter((l) => l.includes("INTERLOG_MQTT_PASSWORD"))).toHaveLength(1);
    expect(again[1]).not.toBe(lines[1]);
    expect(passwd_line_accepts(second.password_file_line, again[1].split("=")[1])).toBe(true);
    expect(passwd_line_accepts(second.password_file_line, password)).toBe(false);

    // A new env file is made 0600.
    const fresh = path.join(root, "new.env");
    expect(run(["provision", "--data-dir", data, "--env-file", fresh, "--password-env", "MQTT_PW"]).code).toBe(0);
    expect(fs.statSync(fresh).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(fresh, "utf8")).toMatch(/^MQTT_PW=[A-Za-z0-9_-]{43}\n$/);

    // The id is all it needs: the private key (readable by serve's user only) is never read.
    fs.renameSync(path.join(data, "replica.key"), path.join(root, "replica.key.away"));
    const keyless = run(["provision", "--data-dir", data, "--env-file", fresh, "--password-env", "MQTT_PW"]);
    expect(keyless.code).toBe(0);
    expect(JSON.parse(keyless.out)).toMatchObject({ id, username: id });
  });

  test("on the broker host: --id adds or replaces the replica's line in the password file and prints the password", () => {
    const root = temp_dir();
    const passwd = path.join(root, "passwd");
    const [x, y] = [new_origin(), new_origin()];
    const px = JSON.parse(run(["provision", "--id", x, "--password-file", passwd]).out) as Record<string, string>;
    expect(fs.statSync(passwd).mode & 0o777).toBe(0o640);
    fs.chmodSync(passwd, 0o644); // an existing file keeps its mode
    const py = JSON.parse(run(["provision", "--id", y, "--password-file", passwd]).out) as Record<string, string>;
    const px2 = JSON.parse(run(["provision", "--id", x, "--password-file", passwd]).out) as Record<string, string>;
    expect(fs.statSync(passwd).mode & 0o777).toBe(0o644);
    const lines = fs.readFileSync(passwd, "utf8").trimEnd().split("\n");
    expect(lines).toEqual([px2.password_file_line, py.password_file_line]);
    expect(passwd_line_accepts(lines[0], px2.password)).toBe(true);
    expect(passwd_line_accepts(lines[0], px.password)).toBe(false);
    expect(passwd_line_accepts(lines[1], py.password)).toBe(true);
    expect(px.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  test("the line is in mosquitto_passwd's own format: each side verifies the other's", () => {
    expect(passwd_line_accepts(passwd_line("u", "pw", Buffer.alloc(12, 7)), "pw")).toBe(true);
    if (!has_mosquitto_passwd()) return;
    const file = path.join(temp_dir(), "pw");
    execFileSync("mosquitto_passwd", ["-b", "-c", file, "truck", "s3cret"], { stdio: "pipe" });
    const theirs = fs.readFileSync(file, "utf8").trim();
    expect(theirs).toMatch(/^truck:\$7\$101\$/);
    expect(passwd_line_accepts(theirs, "s3cret")).toBe(true);
    expect(passwd_line_accepts(theirs, "s3cre")).toBe(false);
    // Same salt, same password: the same line.
    const salt = Buffer.from(theirs.split("$")[3], "base64");
    expect(passwd_line("truck", "s3cret", salt)).toBe(theirs);
  });

  test("mistakes: no id or both, a bad id, a data directory without one", () => {
    const root = temp_dir();
    expect(run(["provision"]).code).toBe(2);
    expect(run(["provision", "--id", new_origin(), "--data-dir", root]).code).toBe(2);
    const bad = run(["provision", "--id", "truck-7"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("16 lowercase hex digits");
    expect(run(["provision", "--id", new_origin(), "--password-env", "1X"]).code).toBe(2);
    const empty = run(["provision", "--data-dir", path.join(root, "none")]);
    expect(empty.code).toBe(1);
    expect(empty.err).toContain("interlog init --data-dir");
  });

  test("put_line replaces the first match, drops later ones, keeps the rest, or appends", () => {
    const is_k = (l: string) => l.startsWith("k=");
    expect(put_line("", "k=1", is_k)).toBe("k=1\n");
    expect(put_line("a\nk=0\nb\nk=9\n", "k=1", is_k)).toBe("a\nk=1\nb\n");
    expect(put_line("a\n\nb", "k=1", is_k)).toBe("a\n\nb\nk=1\n");
  });
});
