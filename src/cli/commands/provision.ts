import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { InterlogError } from "../../lib/errors.ts";
import { node_file_io } from "../../log/file_io.ts";
import { is_origin } from "../../log/ids.ts";
import { read_replica } from "../../log/replica.ts";
import { type Command, UsageError, exit_ok } from "../usage.ts";

/**
 * Per-device MQTT credentials for the broker setup in config/mosquitto/: the
 * login is the replica id, so the broker's ACL (`pattern write P/%u/#`) and
 * `use_username_as_clientid` bind what a device may publish, and which
 * session it may take over, to the password it holds.
 */

/** mosquitto_passwd's sha512-pbkdf2 ("$7$") parameters in mosquitto 2.0: 12 salt bytes, 101 iterations, 64 hash bytes. */
export const passwd_salt_bytes = 12;
export const passwd_iterations = 101;
export const passwd_hash_bytes = 64;
export const password_env_default = "INTERLOG_MQTT_PASSWORD";

/** A random password: 32 bytes, base64url (43 characters, safe in an env file and a shell). */
export function new_password(): string {
  return crypto.randomBytes(32).toString("base64url");
}

/**
 * One line of a mosquitto password file, hashed the way `mosquitto_passwd`
 * (2.0, default -H sha512-pbkdf2) does: `user:$7$101$<salt b64>$<hash b64>`,
 * hash = PBKDF2-HMAC-SHA512(password, salt, 101, 64 bytes). Made here so a
 * device without mosquitto's tools can produce it. 101 iterations is
 * mosquitto's own choice; stretching matters for guessable passwords, and
 * these are 256 random bits.
 */
export function passwd_line(username: string, password: string, salt: Buffer = crypto.randomBytes(passwd_salt_bytes)): string {
  const hash = crypto.pbkdf2Sync(password, salt, passwd_iterations, passwd_hash_bytes, "sha512");
  return `${username}:$7$${passwd_iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** True when `line` (a password-file line) accepts `password` for its user; understands "$7$" lines. */
export function passwd_line_accepts(line: string, password: string): boolean {
  const m = /^[^:]+:\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(line.trim());
  if (m === null) return false;
  const expected = Buffer.from(m[3], "base64");
  const got = crypto.pbkdf2Sync(password, Buffer.from(m[2], "base64"), Number(m[1]), expected.length, "sha512");
  return crypto.timingSafeEqual(got, expected);
}

/** `text` with `line` in place of the first line `matches` accepts (later ones dropped), or appended. */
export function put_line(text: string, line: string, matches: (existing: string) => boolean): string {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const out: string[] = [];
  let placed = false;
  for (const existing of lines) {
    if (!matches(existing)) out.push(existing);
    else if (!placed) {
      out.push(line);
      placed = true;
    }
  }
  if (!placed) out.push(line);
  return `${out.join("\n")}\n`;
}

/**
 * Replaces `file` with `text` durably (temporary file, fsync, rename, fsync
 * of the directory). An existing file keeps its mode and owner; a new one
 * gets `new_mode`.
 */
function replace_file(file: string, text: string, new_mode: number): void {
  let stat: fs.Stats | null = null;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fchmodSync(fd, stat === null ? new_mode : stat.mode & 0o7777);
    if (stat !== null && process.getuid?.() === 0) fs.fchownSync(fd, stat.uid, stat.gid);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), "r");
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

function read_text(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw new InterlogError("IO_ERROR", `cannot read ${file}: ${(err as Error).message}`);
  }
}

function replica_id(values: Record<string, string | boolean | undefined>): string {
  const dir = values["data-dir"];
  const id = values.id;
  if ((typeof dir === "string") === (typeof id === "string")) throw new UsageError("give either --data-dir DIR or --id ID");
  if (typeof id === "string") {
    if (!is_origin(id)) throw new UsageError(`--id must be a replica id (16 lowercase hex digits, as interlog status shows), got ${JSON.stringify(id)}`);
    return id;
  }
  const info = read_replica(node_file_io, dir as string, false);
  if (info === null) {
    throw new InterlogError("DATA_DIR_INVALID", `${dir} has no replica id yet; create it with "interlog init --data-dir ${dir}" (as the user serve runs as), or start serve once`);
  }
  return info.info.id;
}

export const provision_command: Command = {
  name: "provision",
  help: `interlog provision (--data-dir DIR | --id ID) [--env-file FILE] [--password-env NAME] [--password-file FILE]

Makes one replica's MQTT login for the broker setup in config/mosquitto/:
the username is the replica id (read from DIR, or given as ID) and the
password 32 random bytes. The broker's ACL lets a login publish only under
PREFIX/<its username>/, and use_username_as_clientid stops it from taking
over another replica's session.

  --env-file FILE      set NAME=<password> in this env file (the device's
                       /etc/interlog/interlog.env; created mode 0600, other
                       lines kept). Without it the password is printed.
  --password-env NAME  the variable (default ${password_env_default}); the
                       device's config names it in mqtt.password_env
  --password-file FILE add or replace the replica's line in this mosquitto
                       password file (on the broker host). Without it, append
                       the printed password_file_line to the broker's file.

Prints {"id","username","password_env","password_file_line",...} as JSON.
The line is hashed like mosquitto_passwd (sha512-pbkdf2, "$7$"), so a device
needs no mosquitto tools. Running it again for the same replica makes a new
password (rotation). The broker reads new lines on a reload (SIGHUP).`,
  options: {
    "data-dir": { type: "string" },
    id: { type: "string" },
    "env-file": { type: "string" },
    "password-env": { type: "string" },
    "password-file": { type: "string" },
  },
  async run(values, _positionals, io) {
    const id = replica_id(values);
    const password_env = typeof values["password-env"] === "string" ? values["password-env"] : password_env_default;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(password_env)) throw new UsageError(`--password-env must be an environment variable name (letters, digits, _), got ${JSON.stringify(password_env)}`);
    const password = new_password();
    const line = passwd_line(id, password);
    const result: Record<string, string> = { id, username: id, password_env, password_file_line: line };

    const env_file = values["env-file"];
    if (typeof env_file === "string") {
      const assignment = new RegExp(`^\\s*(#\\s*)?${password_env}=`);
      replace_file(env_file, put_line(read_text(env_file), `${password_env}=${password}`, (l) => assignment.test(l)), 0o600);
      result.env_file = path.resolve(env_file);
    } else {
      result.password = password;
    }

    const password_file = values["password-file"];
    if (typeof password_file === "string") {
      // Readable by the broker's group (chgrp mosquitto), not by everyone.
      replace_file(password_file, put_line(read_text(password_file), line, (l) => l.startsWith(`${id}:`)), 0o640);
      result.password_file = path.resolve(password_file);
    }
    io.out(`${JSON.stringify(result)}\n`);
    return exit_ok;
  },
};
