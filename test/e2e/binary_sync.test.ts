import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { frame_crc_compute } from "../../src/log/frame.ts";
import { Mosquitto } from "../support/mosquitto.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { binary_builds, file_temp_dirs, run, wait_for } from "./binary_fixture.ts";

const octets = { "content-type": "application/octet-stream" };

interface EventsPage {
  events: { pos: number; id: string; payload: string }[];
  next: number;
}

const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let bin = "";
beforeAll(async () => {
  bin = await binaries.get();
}, 120_000);

async function all_events(replica: ServeProcess): Promise<Map<string, string>> {
  const events = new Map<string, string>();
  for (let from = 0; ; ) {
    const page = (await (await replica.fetch(`/api/events?from=${from}&limit=500`)).json()) as EventsPage;
    for (const e of page.events) events.set(e.id, Buffer.from(e.payload, "base64").toString());
    if (page.events.length === 0) return events;
    from = page.next;
  }
}

async function append(replica: ServeProcess, text: string): Promise<string> {
  const res = await replica.fetch("/api/events", { method: "POST", headers: octets, body: text });
  expect(res.status).toBe(201);
  return ((await res.json()) as { ids: string[] }).ids[0];
}

describe("the compiled binary", () => {
  test("prints the version, target and commit it was built with", async () => {
    const out = await run([bin, "version"]);
    expect(out.code).toBe(0);
    const info = JSON.parse(out.stdout) as { version: string; target: string; commit: string };
    const pkg = (await Bun.file(new URL("../../package.json", import.meta.url)).json()) as { version: string };
    expect(info.version).toBe(pkg.version);
    expect(info.target).toBe(`linux-${process.arch}`);
    expect(info.commit).not.toBe("dev");
    expect(info.commit).toMatch(/^([0-9a-f]{12}(-dirty)?|unknown)$/);
  });

  test("two replicas converge through a real mosquitto: what is appended over HTTP to one is read on the other, signed; verify proves it and catches a payload byte changed with its crc", async () => {
    const broker = await Mosquitto.start();
    const dir = temp_dir();
    const yaml = (name: string) =>
      `name: ${name}\ndata_dir: ./${name}\nlog:\n  sync: always\nmqtt:\n  url: ${broker.url}\n  prefix: e2e-bin\nadmin:\n  listen: 127.0.0.1:0\n`;
    const a = await ServeProcess.start(write_config(dir, "a.yaml", yaml("truck-a")), { command: [bin] });
    const b = await ServeProcess.start(write_config(dir, "b.yaml", yaml("truck-b")), { command: [bin] });
    try {
      const written = new Map<string, string>();
      // Both write at once, so each receives while it appends.
      await Promise.all(
        [a, b].map(async (replica, r) => {
          for (let i = 0; i < 100; i++) {
            const text = `replica ${r} reading ${i}`;
            written.set(await append(replica, text), text);
          }
        }),
      );
      const holding_all = (replica: ServeProcess) => async () => {
        const events = await all_events(replica);
        return events.size === written.size ? events : null;
      };
      const on_a = await wait_for("a to hold all 200 events", holding_all(a));
      const on_b = await wait_for("b to hold all 200 events", holding_all(b));
      expect(on_a).toEqual(written);
      expect(on_b).toEqual(written);
      const vv_of = async (replica: ServeProcess) => ((await (await replica.fetch("/api/status")).json()) as { vv: Record<string, number> }).vv;
      const vv = { [a.id]: 100, [b.id]: 100 };
      expect(await vv_of(a)).toEqual(vv);
      expect(await vv_of(b)).toEqual(vv);
      // b's first event, read back from a, is b's.
      expect(on_a.get(`${b.id}:1`)).toBe("replica 1 reading 0");
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
      await broker.stop();
    }
    // Everything serve says is a JSON line on stdout; stderr stays empty (mqtt.js's url.parse() deprecation warning used to land there).
    expect(await new Response(a.proc.stderr).text()).toBe("");
    expect(await new Response(b.proc.stderr).text()).toBe("");
    // a holds b's events with b's signatures: verify proves them; one payload byte changed on disk, its crc made good, is caught.
    const a_dir = path.join(dir, "truck-a");
    const clean = await run([bin, "verify", "--data-dir", a_dir]);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ ok: true, events: 200 });
    const file = path.join(a_dir, "segments", fs.readdirSync(path.join(a_dir, "segments")).filter((f) => f.endsWith(".seg")).sort()[0]);
    const bytes = new Uint8Array(fs.readFileSync(file));
    const view = new DataView(bytes.buffer);
    const needle = Buffer.from("replica 1 reading 7");
    const at = Buffer.from(bytes).indexOf(needle);
    expect(at).toBeGreaterThan(0);
    const frame_at = at - 40;
    bytes[at + needle.length - 1] = "9".charCodeAt(0);
    view.setUint32(frame_at + 4, frame_crc_compute(bytes, frame_at, view.getUint32(frame_at, true)), true);
    fs.writeFileSync(file, bytes);
    const tampered = await run([bin, "verify", "--data-dir", a_dir]);
    expect(tampered.code).toBe(1);
    const report = JSON.parse(tampered.stdout) as { ok: boolean; first_bad: { reason: string } };
    expect(report.ok).toBe(false);
    expect(report.first_bad.reason).toContain("bad_signature");
    expect(tampered.stderr).toContain("first bad record at position");
  });
});
