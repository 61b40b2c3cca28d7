import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { passwd_line_accepts } from "../../src/cli/commands/provision.ts";
import { new_origin } from "../../src/log/ids.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { ServeProcess, interlog_command, write_config } from "../support/serve_process.ts";
import { wait_for } from "../support/wait_for.ts";
import { make_events } from "../sim/hostile.ts";

/**
 * Broker identity against the real parts: mosquitto run with the shipped
 * config/mosquitto/ files (only the listener's port and the file paths
 * rewritten), logins made by `interlog provision`, and real `interlog serve`
 * processes. The logins bind replica ids: a client holding one login cannot
 * publish under another replica's prefix nor take over its session.
 */

const shipped = path.join(import.meta.dir, "..", "..", "config", "mosquitto");
const shipped_conf = fs.readFileSync(path.join(shipped, "interlog.conf"), "utf8");
const shipped_acl = fs.readFileSync(path.join(shipped, "acl"), "utf8");
const etc_path = "/etc/mosquitto/interlog";
const octets = { "content-type": "application/octet-stream" };

interface EventJson {
  pos: number;
  id: string;
  origin: string;
  seq: number;
  payload: string;
}

interface Login {
  username: string;
  password: string;
}

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([...interlog_command(), ...args], { env: { PATH: process.env.PATH ?? "" } });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function cli_json(args: string[]): Record<string, string> {
  const r = cli(args);
  if (r.code !== 0) throw new Error(`interlog ${args.join(" ")} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, string>;
}

/** A directory mosquitto (which drops from root to its own user) can enter. */
function open_dir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** The broker's group, as the README has the password file: root:mosquitto 0640. Null when there is no such group. */
function mosquitto_gid(): number | null {
  const line = fs
    .readFileSync("/etc/group", "utf8")
    .split("\n")
    .find((l) => l.startsWith("mosquitto:"));
  return line === undefined ? null : Number(line.split(":")[2]);
}

/** A test CA and a server certificate for 127.0.0.1, where the shipped config expects them (certs/server.crt, server.key). */
function make_certs(etc: string): string {
  const certs = path.join(etc, "certs");
  fs.mkdirSync(certs, { mode: 0o755 });
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: certs, stdio: "pipe" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=interlog test CA", "-keyout", "ca.key", "-out", "ca.crt");
  run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
  fs.writeFileSync(path.join(certs, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt");
  for (const f of fs.readdirSync(certs)) fs.chmodSync(path.join(certs, f), 0o644);
  return path.join(certs, "ca.crt");
}

/**
 * The shipped mosquitto config with its listener moved to `port` on
 * 127.0.0.1 and /etc/mosquitto/interlog moved to `etc`. `old` reverts to
 * what the README had before: client ids not tied to logins.
 */
function broker_conf(etc: string, port: number, variant: "shipped" | "old"): string {
  const lines = shipped_conf.split("\n");
  expect(lines.filter((l) => l === "listener 8883")).toHaveLength(1);
  let text = lines.map((l) => (l === "listener 8883" ? `listener ${port} 127.0.0.1` : l)).join("\n");
  text = text.replaceAll(etc_path, etc);
  if (variant === "old") text = text.replace(/^use_username_as_clientid true$/m, "");
  return text;
}

/** The shipped ACL; `old` is the README's former `pattern write P/%c/#`, which trusts the client id. */
function broker_acl(variant: "shipped" | "old"): string {
  expect(shipped_acl).toMatch(/^pattern write interlog\/%u\/#$/m);
  return variant === "old" ? shipped_acl.replace("pattern write interlog/%u/#", "pattern write interlog/%c/#") : shipped_acl;
}

function read_env_file(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m !== null) env[m[1]] = m[2];
  }
  return env;
}

/** mqtt.js, as an attacker or an observer would use it: connected, or the reason it was not. */
async function connect(port: number, ca: string, login: Partial<Login>, client_id: string, extra: IClientOptions = {}): Promise<{ client: MqttClient | null; error: string | null }> {
  const client = mqtt.connect(`mqtts://127.0.0.1:${port}`, {
    ca: fs.readFileSync(ca),
    clientId: client_id,
    ...login,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  });
  return await new Promise((resolve) => {
    client.once("connect", () => resolve({ client, error: null }));
    client.once("error", (err) => {
      client.end(true);
      resolve({ client: null, error: err.message });
    });
    client.once("close", () => resolve({ client: null, error: "closed" }));
  });
}

/** Publishes at QoS 1 and returns the broker's answer: null (accepted) or the error of its PUBACK reason code. */
async function publish(client: MqttClient, topic: string, payload: Uint8Array, retain = false): Promise<{ error: string | null; reason: number | undefined }> {
  return await new Promise((resolve) => {
    client.publish(topic, Buffer.from(payload), { qos: 1, retain }, (err, packet) => {
      const reason = (err as { code?: number } | undefined)?.code ?? (packet as { reasonCode?: number } | undefined)?.reasonCode;
      resolve({ error: err === undefined || err === null ? null : err.message, reason });
    });
  });
}

async function events_of(serve: ServeProcess): Promise<EventJson[]> {
  const res = await serve.fetch("/api/events?from=0&limit=1000");
  expect(res.status).toBe(200);
  const page = (await res.json()) as { events: EventJson[]; next: number };
  expect(page.events.length).toBeLessThan(1000);
  return page.events;
}

async function append(serve: ServeProcess, bodies: string[]): Promise<void> {
  for (const body of bodies) {
    const res = await serve.fetch("/api/events", { method: "POST", headers: octets, body });
    expect(res.status).toBe(201);
  }
}

function payloads(events: EventJson[], origin: string): string[] {
  return events.filter((e) => e.origin === origin).map((e) => Buffer.from(e.payload, "base64").toString());
}

/** The forged events message: A's next event, as only A should be able to publish it. */
function forged_event(origin: string, seq: number, text: string): Uint8Array {
  return encode_message({ kind: "events", from: origin, events: make_events(origin, seq, new TextEncoder().encode(text), Date.now()), part: null });
}

function count_lines(serve: ServeProcess, msg: string): number {
  return serve.lines.filter((l) => l.msg === msg).length;
}

/**
 * A broker with the shipped files, two replicas A and B provisioned with
 * `interlog provision` on their data directories and running `serve`, and
 * two more logins C and D (provisioned by --id, as on the broker host) for
 * an impostor and an observer.
 */
class Fleet {
  readonly open: MqttClient[] = [];
  private constructor(
    readonly root: string,
    readonly etc: string,
    readonly ca: string,
    readonly broker: Mosquitto,
    readonly a: ServeProcess,
    readonly b: ServeProcess,
    readonly logins: Record<"a" | "b" | "c" | "d", Login>,
    readonly env_files: Record<"a" | "b", string>,
  ) {}

  static async start(variant: "shipped" | "old"): Promise<Fleet> {
    const root = open_dir("interlog-broker-identity-");
    const etc = path.join(root, "etc");
    fs.mkdirSync(etc, { mode: 0o755 });
    const ca = make_certs(etc);
    fs.writeFileSync(path.join(etc, "acl"), broker_acl(variant), { mode: 0o644 });
    const passwd = path.join(etc, "passwd");
    const logins = {} as Record<"a" | "b" | "c" | "d", Login>;
    const env_files = {} as Record<"a" | "b", string>;
    for (const name of ["a", "b"] as const) {
      const data = path.join(root, name);
      const { id } = cli_json(["init", "--data-dir", data, "--name", name]);
      env_files[name] = path.join(root, `${name}.env`);
      const out = cli_json(["provision", "--data-dir", data, "--env-file", env_files[name], "--password-file", passwd]);
      expect(out.username).toBe(id);
      logins[name] = { username: id, password: read_env_file(env_files[name]).INTERLOG_MQTT_PASSWORD };
    }
    for (const name of ["c", "d"] as const) {
      const out = cli_json(["provision", "--id", new_origin(), "--password-file", passwd]);
      logins[name] = { username: out.username, password: out.password };
    }
    const gid = mosquitto_gid();
    if (gid !== null) fs.chownSync(passwd, 0, gid);
    else fs.chmodSync(passwd, 0o644);
    const broker = await Mosquitto.start({ config_text: (port) => broker_conf(etc, port, variant) });
    const serve = async (name: "a" | "b") => {
      const yaml = [
        `name: ${name}`,
        `data_dir: ${path.join(root, name)}`,
        "log:",
        "  sync: always",
        "mqtt:",
        `  url: mqtts://127.0.0.1:${broker.port}`,
        `  username: ${logins[name].username}`,
        "  password_env: INTERLOG_MQTT_PASSWORD",
        `  ca_file: ${ca}`,
        "admin:",
        "  listen: 127.0.0.1:0",
        "",
      ].join("\n");
      return await ServeProcess.start(write_config(root, `${name}.yaml`, yaml), { env: read_env_file(env_files[name]) });
    };
    const started: ServeProcess[] = [];
    try {
      started.push(await serve("a"));
      started.push(await serve("b"));
      const fleet = new Fleet(root, etc, ca, broker, started[0], started[1], logins, env_files);
      for (const r of started) await wait_for(`${r.id} to connect`, async () => ((await fleet.status(r)).sync.connected ? true : null));
      return fleet;
    } catch (err) {
      for (const r of started) await r.stop("SIGKILL");
      await broker.stop();
      fs.rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  async status(r: ServeProcess): Promise<{ vv: Record<string, number>; sync: { connected: boolean } }> {
    return (await (await r.fetch("/api/status")).json()) as { vv: Record<string, number>; sync: { connected: boolean } };
  }

  async connect(login: Partial<Login>, client_id: string, extra: IClientOptions = {}): Promise<{ client: MqttClient | null; error: string | null }> {
    const result = await connect(this.broker.port, this.ca, login, client_id, extra);
    if (result.client !== null) this.open.push(result.client);
    return result;
  }

  /** An observer with login D following every topic under the prefix. */
  async observe(): Promise<{ topic: string; payload: Buffer }[]> {
    const seen: { topic: string; payload: Buffer }[] = [];
    const { client, error } = await this.connect(this.logins.d, this.logins.d.username);
    if (client === null) throw new Error(`observer refused: ${error}`);
    client.on("message", (topic, payload) => seen.push({ topic, payload }));
    await client.subscribeAsync("interlog/#", { qos: 1 });
    return seen;
  }

  /** Both replicas hold the same events (all that were appended, which are durable once acknowledged); returns B's. */
  async converged(): Promise<EventJson[]> {
    return await wait_for("A and B to converge", async () => {
      const [ea, eb] = [await events_of(this.a), await events_of(this.b)];
      const ids = (events: EventJson[]) => events.map((e) => e.id).sort();
      return JSON.stringify(ids(ea)) === JSON.stringify(ids(eb)) ? eb : null;
    });
  }

  async stop(): Promise<void> {
    for (const c of this.open) c.end(true);
    await this.a.stop();
    await this.b.stop();
    await this.broker.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

describe("broker identity: the shipped mosquitto setup", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await Fleet.start("shipped");
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  test("replicas with logins from `interlog provision` connect over TLS and converge", async () => {
    const { a, b, logins } = fleet;
    expect(logins.a.username).toBe(a.id);
    expect(logins.b.username).toBe(b.id);
    // The password file holds one hashed line per login; the env files only the device's own password, mode 0600.
    const passwd = fs.readFileSync(path.join(fleet.etc, "passwd"), "utf8").trim().split("\n");
    expect(passwd.map((l) => l.split(":")[0])).toEqual([a.id, b.id, logins.c.username, logins.d.username]);
    for (const [i, name] of (["a", "b", "c", "d"] as const).entries()) {
      expect(passwd[i]).toMatch(/^[0-9a-f]{16}:\$7\$101\$/);
      expect(passwd[i]).not.toContain(logins[name].password);
      expect(passwd_line_accepts(passwd[i], logins[name].password)).toBe(true);
    }
    expect(fs.statSync(fleet.env_files.a).mode & 0o777).toBe(0o600);
    await append(a, ["a 1", "a 2", "a 3"]);
    await append(b, ["b 1", "b 2"]);
    const events = await fleet.converged();
    expect(payloads(events, a.id)).toEqual(["a 1", "a 2", "a 3"]);
    expect(payloads(events, b.id)).toEqual(["b 1", "b 2"]);
  });

  test("anonymous clients, unknown logins, wrong passwords and plain MQTT are refused", async () => {
    const { a, logins } = fleet;
    expect((await fleet.connect({}, "anon")).error).toMatch(/not authori[sz]ed/i);
    expect((await fleet.connect({ username: "mallory", password: "guess" }, "mallory")).error).toMatch(/not authori[sz]ed|bad user name or password/i);
    expect((await fleet.connect({ username: new_origin(), password: logins.c.password }, "x")).error).toMatch(/not authori[sz]ed|bad user name or password/i);
    expect((await fleet.connect({ username: a.id, password: logins.b.password }, a.id)).error).toMatch(/not authori[sz]ed|bad user name or password/i);
    // The only listener speaks TLS: an MQTT CONNECT in clear gets no CONNACK.
    const clear = mqtt.connect(`mqtt://127.0.0.1:${fleet.broker.port}`, { ...logins.c, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 });
    const outcome = await new Promise<string>((resolve) => {
      clear.once("connect", () => resolve("connected"));
      clear.once("close", () => resolve("closed"));
      clear.once("error", () => resolve("error"));
    });
    clear.end(true);
    expect(outcome).not.toBe("connected");
  });

  test("another replica's login, or a third one, cannot publish under A's prefix: the broker refuses and B never stores it", async () => {
    const { a, b, logins } = fleet;
    const seen = await fleet.observe();
    await append(a, ["a 4"]);
    const events_before = await fleet.converged();
    const next = payloads(events_before, a.id).length + 1;
    const forged = {
      events: forged_event(a.id, next, "forged event"),
      vv: encode_message({ kind: "vv", from: a.id, name: "a", vv: new Map([[a.id, next + 1000]]), pull: "*" }),
      status: encode_message({ kind: "status", from: a.id, online: false, session: 1 }),
    };
    const forged_payloads = Object.values(forged).map((p) => Buffer.from(p));

    // C's login, asking for A's client id, with a will on A's status topic.
    const c = await fleet.connect(logins.c, a.id, {
      will: { topic: `interlog/${a.id}/status`, payload: Buffer.from(forged.status), qos: 1, retain: true },
    });
    if (c.client === null) throw new Error(`C's login refused: ${c.error}`);
    expect(await publish(c.client, `interlog/${a.id}/events`, forged.events)).toMatchObject({ reason: 135 });
    expect(await publish(c.client, `interlog/${a.id}/vv`, forged.vv, true)).toMatchObject({ reason: 135 });
    expect(await publish(c.client, `interlog/${a.id}/status`, forged.status, true)).toMatchObject({ reason: 135 });
    // Under its own prefix the same login may publish (the ACL is not just closed).
    expect((await publish(c.client, `interlog/${logins.c.username}/probe`, new Uint8Array([1]))).error).toBeNull();
    c.client.stream.destroy(); // an unclean end: the broker would now publish the will

    // B's own login (client id A asked for; the broker makes it B's, briefly taking B's place).
    const with_b = await fleet.connect(logins.b, a.id);
    if (with_b.client === null) throw new Error(`B's login refused: ${with_b.error}`);
    expect(await publish(with_b.client, `interlog/${a.id}/events`, forged.events)).toMatchObject({ reason: 135 });
    with_b.client.end(true);

    await append(a, ["a 5", "a 6"]);
    await wait_for("B back online", async () => ((await fleet.status(b)).sync.connected ? true : null));
    const events = await fleet.converged();
    expect(payloads(events, a.id)).toEqual([...payloads(events_before, a.id), "a 5", "a 6"]);
    expect(events.some((e) => Buffer.from(e.payload, "base64").toString() === "forged event")).toBe(false);
    expect(payloads(await events_of(a), a.id)).toEqual(payloads(events, a.id));
    // Nothing forged reached any subscriber (the observer follows interlog/#), will included.
    await Bun.sleep(300);
    expect(seen.some((m) => m.topic === `interlog/${logins.c.username}/probe`)).toBe(true);
    expect(seen.filter((m) => forged_payloads.some((f) => f.equals(m.payload))).map((m) => m.topic)).toEqual([]);
  });

  test("a login asking for A's client id does not take over A's session: A stays connected and keeps syncing", async () => {
    const { a, b, logins } = fleet;
    const lost_before = count_lines(a, "lost the MQTT broker; reconnecting");
    const impostor = await fleet.connect(logins.c, a.id);
    if (impostor.client === null) throw new Error(`C's login refused: ${impostor.error}`);
    let impostor_closed = false;
    impostor.client.on("close", () => (impostor_closed = true));
    // Longer than A's reconnect period: a takeover would have shown as a lost connection by now.
    await Bun.sleep(1500);
    expect(count_lines(a, "lost the MQTT broker; reconnecting")).toBe(lost_before);
    expect((await fleet.status(a)).sync.connected).toBe(true);
    expect(impostor_closed).toBe(false); // both are connected: the impostor is C to the broker, not A
    await append(a, ["a after impostor"]);
    const events = await fleet.converged();
    expect(payloads(events, a.id).at(-1)).toBe("a after impostor");
    // In this whole file A connected once and never lost its session.
    expect(count_lines(a, "connected to the MQTT broker")).toBe(1);
    expect(count_lines(a, "lost the MQTT broker; reconnecting")).toBe(0);
    expect(b.id).not.toBe(a.id);
  });

  test("a replica provisioned while the broker runs connects after a reload (SIGHUP)", async () => {
    const id = new_origin();
    const out = cli_json(["provision", "--id", id, "--password-file", path.join(fleet.etc, "passwd")]);
    expect((await fleet.connect({ username: id, password: out.password }, id)).error).toMatch(/not authori[sz]ed|bad user name or password/i);
    fleet.broker.reload();
    const later = await wait_for("the new login to be accepted", async () => {
      const r = await fleet.connect({ username: id, password: out.password }, id);
      return r.client !== null ? r : null;
    });
    expect((await publish(later.client as MqttClient, `interlog/${id}/status`, new Uint8Array([0]))).error).toBeNull();
    // A and B were not disturbed by the reload.
    expect((await fleet.status(fleet.a)).sync.connected && (await fleet.status(fleet.b)).sync.connected).toBe(true);
  });
});

describe("broker identity: the same attack against the README's former setup (client id trusted)", () => {
  test("with `pattern write P/%c/#` and no use_username_as_clientid, C's login takes A's session, but B refuses the forged (unsigned) event and A's real events still arrive", async () => {
    const fleet = await Fleet.start("old");
    try {
      const { a, b, logins } = fleet;
      await append(a, ["a 1"]);
      const next = payloads(await fleet.converged(), a.id).length + 1;
      const impostor = await fleet.connect(logins.c, a.id);
      if (impostor.client === null) throw new Error(`C's login refused: ${impostor.error}`);
      expect((await publish(impostor.client, `interlog/${a.id}/events`, forged_event(a.id, next, "forged event"))).error).toBeNull();
      await wait_for("B to refuse the forged event", async () => {
        const text = await (await b.fetch("/metrics")).text();
        return /reason="event_partial_range"} [1-9]/.test(text) ? true : null;
      });
      await wait_for("A to lose its session to the impostor", async () => (count_lines(a, "lost the MQTT broker; reconnecting") > 0 ? true : null));
      impostor.client.end(true);
      await append(a, ["a 2"]);
      await wait_for("A's real event to reach B", async () => (payloads(await events_of(b), a.id).includes("a 2") ? true : null));
      expect(payloads(await events_of(b), a.id)).toEqual(["a 1", "a 2"]);
    } finally {
      await fleet.stop();
    }
  });
});

describe("broker identity: client certificates (interlog-certs.conf)", () => {
  test("the certificate's CN is the login: a replica connects with its certificate; another certificate cannot publish as it or take its session; no certificate, no connection", async () => {
    const conf = fs.readFileSync(path.join(shipped, "interlog-certs.conf"), "utf8");
    expect(conf.split("\n").filter((l) => l.startsWith("listener "))).toEqual(["listener 8883"]);
    const root = open_dir("interlog-broker-certs-");
    const etc = path.join(root, "etc");
    fs.mkdirSync(etc, { mode: 0o755 });
    const ca = make_certs(etc);
    const certs = path.join(etc, "certs");
    const run = (...args: string[]) => execFileSync("openssl", args, { cwd: certs, stdio: "pipe" });
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=interlog device CA", "-keyout", "device-ca.key", "-out", "device-ca.crt");
    const issue = (cn: string) => {
      run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${cn}`, "-keyout", `${cn}.key`, "-out", `${cn}.csr`);
      run("x509", "-req", "-in", `${cn}.csr`, "-CA", "device-ca.crt", "-CAkey", "device-ca.key", "-CAcreateserial", "-days", "2", "-out", `${cn}.crt`);
      return { cert: fs.readFileSync(path.join(certs, `${cn}.crt`)), key: fs.readFileSync(path.join(certs, `${cn}.key`)) };
    };
    fs.writeFileSync(path.join(etc, "acl"), shipped_acl, { mode: 0o644 });
    for (const f of fs.readdirSync(certs)) fs.chmodSync(path.join(certs, f), 0o644);
    const open: MqttClient[] = [];
    let broker: Mosquitto | null = null;
    let a: ServeProcess | null = null;
    try {
      broker = await Mosquitto.start({
        config_text: (port) => conf.replace(/^listener 8883$/m, `listener ${port} 127.0.0.1`).replaceAll(etc_path, etc),
      });
      const data = path.join(root, "a");
      const { id } = cli_json(["init", "--data-dir", data, "--name", "a"]);
      issue(id);
      const yaml = [
        "name: a",
        `data_dir: ${data}`,
        "mqtt:",
        `  url: mqtts://127.0.0.1:${broker.port}`,
        `  ca_file: ${ca}`,
        `  cert_file: ${path.join(certs, `${id}.crt`)}`,
        `  key_file: ${path.join(certs, `${id}.key`)}`,
        "admin:",
        "  listen: 127.0.0.1:0",
        "",
      ].join("\n");
      a = await ServeProcess.start(write_config(root, "a.yaml", yaml));
      const serve = a;
      await wait_for("A to connect with its certificate", async () => (count_lines(serve, "connected to the MQTT broker") > 0 ? true : null));

      const mallory = new_origin();
      const tls = issue(mallory);
      const impostor = await connect(broker.port, ca, {}, id, tls); // asks for A's client id
      if (impostor.client === null) throw new Error(`the other certificate was refused: ${impostor.error}`);
      open.push(impostor.client);
      expect(await publish(impostor.client, `interlog/${id}/events`, forged_event(id, 1, "forged event"))).toMatchObject({ reason: 135 });
      expect((await publish(impostor.client, `interlog/${mallory}/probe`, new Uint8Array([1]))).error).toBeNull();
      await Bun.sleep(1500);
      expect(count_lines(serve, "lost the MQTT broker; reconnecting")).toBe(0);
      const status = (await (await serve.fetch("/api/status")).json()) as { sync: { connected: boolean } };
      expect(status.sync.connected).toBe(true);

      // Without a certificate, or with one from another CA (even with A's name), TLS fails.
      expect((await connect(broker.port, ca, { username: id, password: "x" }, id)).client).toBeNull();
      const other = open_dir("interlog-other-ca-");
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${id}`, "-keyout", "o.key", "-out", "o.crt"], { cwd: other, stdio: "pipe" });
      const self_signed = { cert: fs.readFileSync(path.join(other, "o.crt")), key: fs.readFileSync(path.join(other, "o.key")) };
      fs.rmSync(other, { recursive: true, force: true });
      expect((await connect(broker.port, ca, {}, id, self_signed)).client).toBeNull();
      expect(count_lines(serve, "lost the MQTT broker; reconnecting")).toBe(0);
    } finally {
      for (const c of open) c.end(true);
      if (a !== null) await a.stop();
      await broker?.stop();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
