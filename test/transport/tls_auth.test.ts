import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Mosquitto } from "../support/mosquitto.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { LiveReplica, converged, describe_vvs, wait_until } from "./live_replica.ts";

/** A broker that requires TLS (certificate from a test CA) and a username/password. */
let broker: Mosquitto;
let pki: string;
const open: LiveReplica[] = [];

function make_pki(dir: string): void {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=interlog test CA", "-keyout", "ca.key", "-out", "ca.crt");
  run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
  fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt");
  execFileSync("mosquitto_passwd", ["-b", "-c", path.join(dir, "passwd"), "truck", "s3cret"], { stdio: "pipe" });
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
}

beforeAll(async () => {
  pki = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-pki-"));
  fs.chmodSync(pki, 0o755);
  make_pki(pki);
  broker = await Mosquitto.start({
    listener_config: [`cafile ${pki}/ca.crt`, `certfile ${pki}/server.crt`, `keyfile ${pki}/server.key`],
    anonymous: false,
    config: [`password_file ${pki}/passwd`],
  });
});

afterAll(async () => {
  for (const r of open) await r.close().catch(() => {});
  await broker.stop();
  fs.rmSync(pki, { recursive: true, force: true });
});

describe("TLS and credentials", () => {
  test("replicas with the CA file and the right password connect over TLS and converge", async () => {
    const url = `mqtts://127.0.0.1:${broker.port}`;
    const transport = { tls: { ca_file: path.join(pki, "ca.crt") }, username: "truck", password: "s3cret" };
    const a = await LiveReplica.open(temp_dir(), url, { name: "a", transport });
    const b = await LiveReplica.open(temp_dir(), url, { name: "b", transport });
    open.push(a, b);
    await a.append(200);
    await b.append(200);
    await wait_until(() => converged([a, b]), () => describe_vvs([a, b]));
    expect(a.transport.status().connected && b.transport.status().connected).toBe(true);
  });

  test("a wrong password is refused and reported, without crashing", async () => {
    const url = `mqtts://127.0.0.1:${broker.port}`;
    const r = await LiveReplica.open(temp_dir(), url, { name: "x", transport: { tls: { ca_file: path.join(pki, "ca.crt") }, username: "truck", password: "wrong" } });
    open.push(r);
    await wait_until(() => r.transport.status().last_error !== null, () => JSON.stringify(r.transport.status()), 10_000);
    expect(r.transport.status().connected).toBe(false);
    expect(r.warnings.join("\n")).not.toContain("wrong");
  });

  test("a broker certificate not signed by the configured CA is refused", async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-pki-other-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", "o.key", "-out", "o.crt"], { cwd: other, stdio: "pipe" });
    const r = await LiveReplica.open(temp_dir(), `mqtts://127.0.0.1:${broker.port}`, {
      name: "y",
      transport: { tls: { ca_file: path.join(other, "o.crt") }, username: "truck", password: "s3cret" },
    });
    open.push(r);
    await wait_until(() => r.transport.status().last_error !== null, () => JSON.stringify(r.transport.status()), 10_000);
    expect(r.transport.status().connected).toBe(false);
    fs.rmSync(other, { recursive: true, force: true });
  });
});
