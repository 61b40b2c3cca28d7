import { describe, expect, test } from "bun:test";
import { Mosquitto } from "../support/mosquitto.ts";
import { ServeProcess, interlog_command, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { wait_for } from "../support/wait_for.ts";

const octets = { "content-type": "application/octet-stream" };

interface EventsPage {
  events: { pos: number; id: string; payload: string }[];
  next: number;
}

describe("interlog serve (real process)", () => {
  test("events appended over HTTP are read back, survive SIGTERM and a restart", async () => {
    const dir = temp_dir();
    const config = write_config(dir, "interlog.yaml", `name: e2e\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n`);
    const first = await ServeProcess.start(config);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await first.fetch("/api/events", { method: "POST", headers: octets, body: `reading ${i}` });
      expect(res.status).toBe(201);
      ids.push(...((await res.json()) as { ids: string[] }).ids);
    }
    expect(ids[19]).toBe(`${first.id}:20`);
    const page = (await (await first.fetch("/api/events?from=0&limit=100")).json()) as EventsPage;
    expect(page.events.map((e) => Buffer.from(e.payload, "base64").toString())).toEqual(Array.from({ length: 20 }, (_, i) => `reading ${i}`));
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(first.lines.some((l) => l.msg === "stopped")).toBe(true);

    const second = await ServeProcess.start(config);
    expect(second.id).toBe(first.id);
    const again = (await (await second.fetch("/api/events?from=0&limit=100")).json()) as EventsPage;
    expect(again.events.map((e) => e.id)).toEqual(ids);
    const status = (await (await second.fetch("/api/status")).json()) as { events: number; vv: Record<string, number> };
    expect(status.events).toBe(20);
    expect(status.vv).toEqual({ [first.id]: 20 });
    expect(await second.stop("SIGINT")).toBe(0);
  });

  test("two replicas sync through a real mosquitto: appended on one, read on the other", async () => {
    const broker = await Mosquitto.start();
    const dir = temp_dir();
    const yaml = (name: string) =>
      `name: ${name}\ndata_dir: ./${name}\nlog:\n  sync: always\nmqtt:\n  url: ${broker.url}\n  prefix: e2e\nadmin:\n  listen: 127.0.0.1:0\n`;
    const a = await ServeProcess.start(write_config(dir, "a.yaml", yaml("truck-a")));
    const b = await ServeProcess.start(write_config(dir, "b.yaml", yaml("truck-b")));
    try {
      for (let i = 0; i < 50; i++) {
        const res = await a.fetch("/api/events", { method: "POST", headers: octets, body: `from a ${i}` });
        expect(res.status).toBe(201);
      }
      const got = await wait_for("b to hold a's 50 events", async () => {
        const page = (await (await b.fetch("/api/events?from=0&limit=100")).json()) as EventsPage;
        return page.events.length === 50 ? page : null;
      });
      expect(got.events.map((e) => Buffer.from(e.payload, "base64").toString())).toEqual(Array.from({ length: 50 }, (_, i) => `from a ${i}`));
      expect(got.events[0].id).toBe(`${a.id}:1`);
      const peers = await wait_for("a to see b's vv acknowledging its events", async () => {
        const body = (await (await a.fetch("/api/peers")).json()) as { peers: { id: string; lag_events: number }[] };
        const peer = body.peers.find((p) => p.id === b.id);
        return peer !== undefined && peer.lag_events === 0 ? peer : null;
      });
      expect(peers.lag_events).toBe(0);
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
      await broker.stop();
    }
  });

  test("status and tail ask a running replica's admin API, with its token", async () => {
    const dir = temp_dir();
    const token = "s3cret-token-for-tests";
    const config = write_config(dir, "t.yaml", `name: tailer\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n  token_env: INTERLOG_ADMIN_TOKEN\n`);
    const serve = await ServeProcess.start(config, { env: { INTERLOG_ADMIN_TOKEN: token } });
    const auth = { authorization: `Bearer ${token}` };
    try {
      for (const body of ["one", "two"]) {
        expect((await serve.fetch("/api/events", { method: "POST", headers: { ...octets, ...auth }, body })).status).toBe(201);
      }
      const status = Bun.spawnSync([...interlog_command(), "status", "--url", serve.admin_url], { env: { PATH: process.env.PATH ?? "", INTERLOG_ADMIN_TOKEN: token } });
      expect(status.exitCode).toBe(0);
      expect(JSON.parse(status.stdout.toString())).toMatchObject({ id: serve.id, name: "tailer", events: 2 });
      const refused = Bun.spawnSync([...interlog_command(), "status", "--url", serve.admin_url], { env: { PATH: process.env.PATH ?? "", INTERLOG_ADMIN_TOKEN: "wrong" } });
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr.toString()).toContain("401");

      const tail = Bun.spawn([...interlog_command(), "tail", "--url", serve.admin_url, "--from", "0"], {
        env: { PATH: process.env.PATH ?? "", INTERLOG_ADMIN_TOKEN: token },
        stdout: "pipe",
      });
      let seen = "";
      const reader = (async () => {
        for await (const chunk of tail.stdout) seen += new TextDecoder().decode(chunk);
      })();
      await wait_for("tail to print the first two events", async () => (seen.split("\n").length > 2 ? true : null));
      expect((await serve.fetch("/api/events", { method: "POST", headers: { ...octets, ...auth }, body: "three" })).status).toBe(201);
      await wait_for("tail to follow a new event", async () => (seen.split("\n").length > 3 ? true : null));
      tail.kill();
      await reader;
      const lines = seen.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines.map((e) => Buffer.from(e.payload, "base64").toString())).toEqual(["one", "two", "three"]);
      expect(lines[2].id).toBe(`${serve.id}:3`);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });

  test("a login that is not the replica's id is named at start (a broker binding the id to the login would refuse every publish)", async () => {
    const dir = temp_dir();
    const yaml = `name: truck-x\ndata_dir: ./data\nmqtt:\n  url: mqtt://127.0.0.1:1\n  username: truck-x\nadmin:\n  listen: 127.0.0.1:0\n`;
    const serve = await ServeProcess.start(write_config(dir, "x.yaml", yaml));
    try {
      const warning = serve.lines.find((l) => String(l.msg).startsWith("mqtt.username is not this replica's id"));
      expect(warning).toMatchObject({ level: "warn", username: "truck-x", id: serve.id });
      expect(String(warning?.msg)).toContain("interlog provision --data-dir");
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });
});
