import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { flag_signed, frame_crc_compute, proof_bytes } from "../../src/log/frame.ts";
import { decode_message, encode_message } from "../../src/sync/messages.ts";
import { Topics } from "../../src/sync/topics.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { make_frame, forge } from "../sim/hostile.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * Issue #11 against the real parts: `interlog serve` processes on a real
 * mosquitto that enforces the README's ACL (a client writes only under
 * P/<its client id>/), and attackers who send what a real one would:
 * crc-valid forged events, answers under their own prefix, a connection
 * under a victim's client id, and a cloned data directory.
 */

const prefix = "e2e-signed";
const topics = new Topics(prefix);
let broker: Mosquitto;
const running: ServeProcess[] = [];
const octets = { "content-type": "application/octet-stream" };

beforeAll(async () => {
  broker = await Mosquitto.start({ config: [`acl_file ${write_acl()}`] });
});

// A test that fails leaves no replica running into the next one (they share the broker and its prefix).
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop().catch(() => 0);
});

afterAll(async () => {
  await broker.stop();
});

/** The README's ACL: everyone reads the prefix, each client writes only under its own client id. */
function write_acl(): string {
  const dir = fs.mkdtempSync(path.join(temp_dir(), "acl-"));
  fs.chmodSync(path.dirname(dir), 0o755);
  fs.chmodSync(dir, 0o755);
  const file = path.join(dir, "acl");
  fs.writeFileSync(file, `pattern read ${prefix}/#\npattern write ${prefix}/%c/#\n`);
  fs.chmodSync(file, 0o644);
  return file;
}

function config(dir: string, name: string, extra = ""): string {
  return write_config(
    dir,
    `${name}.yaml`,
    `name: ${name}\ndata_dir: ./${name}\nlog:\n  sync: always\nmqtt:\n  url: ${broker.url}\n  prefix: ${prefix}\nadmin:\n  listen: 127.0.0.1:0\nreplication:\n  pull: ["*"]\n${extra}`,
  );
}

async function serve(file: string): Promise<ServeProcess> {
  const p = await ServeProcess.start(file);
  running.push(p);
  return p;
}

async function stop(p: ServeProcess): Promise<void> {
  expect(await p.stop()).toBe(0);
  running.splice(running.indexOf(p), 1);
}

interface EventJson {
  id: string;
  origin: string;
  seq: number;
  payload: string;
}

async function append(p: ServeProcess, text: string): Promise<string> {
  const res = await p.fetch("/api/events", { method: "POST", headers: octets, body: text });
  expect(res.status).toBe(201);
  return ((await res.json()) as { ids: string[] }).ids[0];
}

async function events_of(p: ServeProcess, origin: string): Promise<EventJson[]> {
  const res = await p.fetch("/api/events?from=0&limit=1000");
  const body = (await res.json()) as { events: EventJson[] };
  return body.events.filter((e) => e.origin === origin);
}

async function metric(p: ServeProcess, line_start: string): Promise<number> {
  const text = await (await p.fetch("/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(line_start));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function wait_until(what: string, ok: () => Promise<boolean>, timeout_ms = 30_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await Bun.sleep(100);
  }
}

async function connect(client_id: string): Promise<MqttClient> {
  const client = mqtt.connect(broker.url, { clientId: client_id, protocolVersion: 5, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

function publish(client: MqttClient, topic: string, payload: Uint8Array, retain = false): Promise<void> {
  return new Promise((resolve, reject) => client.publish(topic, Buffer.from(payload), { qos: 1, retain }, (err) => (err ? reject(err) : resolve())));
}

/**
 * A crc-valid forgery of origin:seq: the payload an attacker wants, a proof
 * claiming origin's real public key (copied from anything it signed) and a
 * signature of the right length that is not the origin's.
 */
function forged_frame(origin: string, seq: number, public_key: Uint8Array, payload: string): Uint8Array {
  const body = new Uint8Array(Buffer.byteLength(payload) + proof_bytes);
  body.set(Buffer.from(payload));
  const proof = body.length - proof_bytes;
  new DataView(body.buffer).setUint32(proof, seq, true); // first_seq
  body.set(public_key, proof + 8);
  body.fill(0x5a, proof + 40);
  const frame = make_frame(origin, seq, body, Date.now(), 1 | flag_signed);
  const view = new DataView(frame.buffer);
  view.setUint32(4, frame_crc_compute(frame, 0, view.getUint32(0, true)), true);
  return frame;
}

/** The public key of `origin`, as its status reports it. */
async function public_key_of(p: ServeProcess): Promise<Uint8Array> {
  const status = (await (await p.fetch("/api/status")).json()) as { public_key: string };
  return new Uint8Array(Buffer.from(status.public_key, "hex"));
}

describe("signed events through a real mosquitto with the README's ACL", () => {
  test("a third client's crc-valid forgery of A's next event is refused; A's real event arrives at B", async () => {
    const dir = temp_dir();
    const a = await serve(config(dir, "a"));
    const b = await serve(config(dir, "b"));
    await append(a, "a-1");
    await wait_until("B holds A's first event", async () => (await events_of(b, a.id)).length === 1);
    const a_key = await public_key_of(a);
    const mallory_id = "00000000000000ee";
    const mallory = await connect(mallory_id);
    // Mallory claims A's events far ahead (so B asks it) and answers every request of B's with a forgery of A:2.
    mallory.subscribe(`${prefix}/+/want/${mallory_id}`);
    let answered = 0;
    mallory.on("message", (topic, payload) => {
      const parsed = topics.parse(topic);
      if (parsed === null || parsed.kind !== "want") return;
      const m = decode_message(new Uint8Array(payload), parsed);
      if (m.kind !== "want") return;
      answered++;
      const events = encode_frames(forged_frame(a.id, 2, a_key, "pay mallory 10 000"));
      void publish(mallory, `${prefix}/${mallory_id}/to/${parsed.from}`, forge("to", { from: mallory_id, to: parsed.from, req: m.req, last: true }, events));
    });
    await publish(mallory, `${prefix}/${mallory_id}/vv`, encode_message({ kind: "vv", from: mallory_id, name: "mallory", vv: new Map([[a.id, 50]]), pull: "*" }), true);
    // And the attack as it was: an answer B never asked for, on Mallory's own prefix.
    const unsolicited = encode_frames(forged_frame(a.id, 2, a_key, "pay mallory 20 000"));
    await publish(mallory, `${prefix}/${mallory_id}/to/${b.id}`, forge("to", { from: mallory_id, to: b.id, req: 1, last: true }, unsolicited));
    await wait_until("B asked Mallory and got its forgery", async () => answered >= 1 && (await metric(b, 'interlog_sync_messages_dropped_total{reason="event_bad_signature"}')) >= 1);
    expect(await metric(b, 'interlog_sync_messages_dropped_total{reason="unsolicited_answer"}')).toBeGreaterThanOrEqual(1);
    expect(await events_of(b, a.id)).toHaveLength(1);
    await append(a, "a-2");
    await wait_until("A's real second event reaches B", async () => (await events_of(b, a.id)).length === 2);
    const held = await events_of(b, a.id);
    expect(held.map((e) => Buffer.from(e.payload, "base64").toString())).toEqual(["a-1", "a-2"]);
    expect(await metric(b, "interlog_sync_conflicts_total")).toBe(0);
    await publish(mallory, `${prefix}/${mallory_id}/vv`, new Uint8Array(0), true);
    await new Promise<void>((resolve) => mallory.end(true, {}, () => resolve()));
    await stop(a);
    await stop(b);
  });

  test("a client connecting with A's client id and publishing under A's prefix cannot get an event accepted", async () => {
    const dir = temp_dir();
    const a = await serve(config(dir, "a"));
    const b = await serve(config(dir, "b"));
    await append(a, "a-1");
    await wait_until("B holds A's first event", async () => (await events_of(b, a.id)).length === 1);
    const a_key = await public_key_of(a);
    // The ACL lets this client write under A's prefix: it connected as A (and knocked A off the broker).
    const impostor = await connect(a.id);
    await publish(impostor, `${prefix}/${a.id}/events`, forge("events", { from: a.id }, encode_frames(forged_frame(a.id, 2, a_key, "impostor"))));
    await wait_until("B refused the impostor's event", async () => (await metric(b, 'interlog_sync_messages_dropped_total{reason="event_bad_signature"}')) >= 1);
    await new Promise<void>((resolve) => impostor.end(true, {}, () => resolve()));
    expect(await events_of(b, a.id)).toHaveLength(1);
    await append(a, "a-2");
    await wait_until("A's real second event reaches B", async () => (await events_of(b, a.id)).length === 2);
    expect(Buffer.from((await events_of(b, a.id))[1].payload, "base64").toString()).toBe("a-2");
    await stop(a);
    await stop(b);
  });

  test("a cloned data directory shows up as a conflict in the /metrics, /api/status and log of the replicas that see both copies; the clones name their client-id clash", async () => {
    const dir = temp_dir();
    const a = await serve(config(dir, "a"));
    const b = await serve(config(dir, "b"));
    const c = await serve(config(dir, "c"));
    await stop(a);
    // The SD card is copied while the device is off; both copies then write their own events.
    fs.cpSync(path.join(dir, "a"), path.join(dir, "a2"), { recursive: true });
    const a1 = await serve(config(dir, "a"));
    await append(a1, "written by the original");
    await wait_until("B and C hold the original's event", async () => (await events_of(b, a1.id)).length === 1 && (await events_of(c, a1.id)).length === 1);
    await stop(a1);
    const a2 = await serve(config(dir, "a2"));
    expect(a2.id).toBe(a1.id);
    await append(a2, "written by the copy");
    for (const observer of [b, c]) {
      await wait_until("the observer counts the conflict", async () => (await metric(observer, "interlog_sync_conflicts_total")) >= 1);
      const status = (await (await observer.fetch("/api/status")).json()) as { conflicts: { origin: string }[] };
      expect(status.conflicts.map((x) => x.origin)).toEqual([a1.id]);
      expect(observer.lines.some((l) => String(l.msg).includes(`replica-id conflict`) && String(l.msg).includes(a1.id))).toBe(true);
      // The original's event stays; the copy's is never stored.
      expect((await events_of(observer, a1.id)).map((e) => Buffer.from(e.payload, "base64").toString())).toEqual(["written by the original"]);
    }
    // Both copies running: each keeps taking the other's broker session (one client id); each says why.
    const a1_again = await serve(config(dir, "a"));
    for (const clone of [a1_again, a2]) {
      await wait_until("the clone names the client-id clash", async () => clone.lines.some((l) => String(l.msg).includes("same client id")), 60_000);
    }
    await stop(a1_again);
    await stop(a2);
    await stop(b);
    await stop(c);
  });

  test("a quarantined event keeps A's signed bytes, shows the validator's message from its arrival, and looking at it changes nothing sync decides", async () => {
    const dir = temp_dir();
    const a = await serve(config(dir, "a"));
    const b = await serve(config(dir, "b", "validators:\n  sync: [gps-fix]\n"));
    const fix = (time_ms: number) => JSON.stringify({ lat: 53.5, lon: 9.9, time_ms });
    const quarantine = async () => (await (await b.fetch("/api/quarantine")).json()) as { events: { id: string; message: string; payload_base64: string }[] };
    await append(a, fix(5000));
    const back = await append(a, fix(1000));
    await append(a, fix(9000));
    await wait_until("B holds A's three fixes", async () => (await events_of(b, a.id)).length === 3);
    // Only now is the quarantine looked at (the dashboard may open any time): the validator's memory is at A's third fix.
    const q = await quarantine();
    expect(q.events.map((e) => e.id)).toEqual([back]);
    expect(q.events[0].message).toContain("goes back 4000 ms");
    expect(Buffer.from(q.events[0].payload_base64, "base64").toString()).toBe(fix(1000));
    // Looking, again and again, must not make B forget where A's fixes got to.
    for (let i = 0; i < 3; i++) await quarantine();
    await append(a, fix(2000));
    await wait_until("B quarantined the fourth fix too", async () => (await quarantine()).events.length === 2);
    const held = await (await b.fetch("/api/events?from=0&limit=100")).json() as { events: { id: string; rejected?: boolean }[] };
    expect(held.events.filter((e) => e.rejected === true).map((e) => e.id)).toEqual([back, `${a.id}:4`]);
    // A relay keeps what A signed: B's copy of the rejected fix is A's, and verifies.
    await stop(b);
    const verify = Bun.spawnSync([process.execPath, path.join(import.meta.dir, "..", "..", "src", "cli.ts"), "verify", "--data-dir", path.join(dir, "b")]);
    expect(verify.exitCode).toBe(0);
    await stop(a);
  });

  test("trust.replicas: a replica takes only the listed replicas' events; the others are refused and counted", async () => {
    const dir = temp_dir();
    const a = await serve(config(dir, "a"));
    const b = await serve(config(dir, "b"));
    const c = await serve(config(dir, "c", `trust:\n  replicas: ["${a.id}"]\n`));
    await append(a, "from a");
    await append(b, "from b");
    await wait_until("C holds A's event", async () => (await events_of(c, a.id)).length === 1);
    await wait_until("A holds B's event (it flows)", async () => (await events_of(a, b.id)).length === 1);
    await wait_until("C refused B's", async () => (await metric(c, 'interlog_sync_messages_dropped_total{reason="event_not_trusted"}')) >= 1);
    expect(await events_of(c, b.id)).toHaveLength(0);
    await stop(a);
    await stop(b);
    await stop(c);
  });
});
