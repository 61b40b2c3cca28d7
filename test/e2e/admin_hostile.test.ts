import net from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { admin_limits_default } from "../../src/admin/deps.ts";
import { sender_script } from "../admin/body_sender.ts";
import { RunQueueWait } from "../admin/loop_delay.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { wait_for } from "../support/wait_for.ts";

/**
 * The attacks of issue #12 against a real `interlog serve`: a page using DNS
 * rebinding, a cross-site page, one client taking every event-stream slot,
 * and the CBOR batch bomb, each next to the honest request that must still
 * work.
 */

const fleet_name = "truck-0042.fleet.example";
const octets = { "content-type": "application/octet-stream" };

let serve: ServeProcess;
let port = 0;

beforeAll(async () => {
  const dir = temp_dir();
  const config = write_config(dir, "interlog.yaml", `name: hostile\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n  allowed_hosts: [${fleet_name}]\n`);
  serve = await ServeProcess.start(config);
  port = Number(new URL(serve.admin_url).port);
});

afterAll(async () => {
  expect(await serve.stop()).toBe(0);
});

async function events_held(): Promise<number> {
  return ((await (await serve.fetch("/api/status")).json()) as { events: number }).events;
}

async function error_code(res: Response): Promise<[number, string]> {
  return [res.status, ((await res.json()) as { error: { code: string } }).error.code];
}

/** A raw HTTP/1.1 GET from a chosen local address (another client, as the server sees it); collects what arrives. */
function raw_get(route: string, local_address: string): { text: () => string; close: () => void; connected: Promise<void> } {
  let text = "";
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: local_address });
  const connected = new Promise<void>((resolve, reject) => {
    socket.on("connect", () => {
      socket.write(`GET ${route} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
      resolve();
    });
    socket.on("error", reject);
  });
  socket.on("data", (chunk) => {
    text += chunk.toString("latin1");
  });
  return { text: () => text, close: () => socket.destroy(), connected };
}

describe("the admin API of a real serve process against hostile local clients", () => {
  test("DNS rebinding: a request naming evil.example is 403 and appends nothing; the replica's own names work", async () => {
    const rebound = await serve.fetch("/api/events", { method: "POST", headers: { ...octets, host: `evil.example:${port}` }, body: "rebound" });
    expect(await error_code(rebound)).toEqual([403, "HOST_NOT_ALLOWED"]);
    expect((await serve.fetch("/api/status", { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect(await events_held()).toBe(0);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `${fleet_name}:${port}`]) {
      expect({ host, status: (await serve.fetch("/api/status", { headers: { host } })).status }).toEqual({ host, status: 200 });
    }
    // Supervisors may probe liveness by any name.
    expect((await serve.fetch("/healthz", { headers: { host: "evil.example" } })).status).toBe(200);
  });

  test("a cross-site page's POST is 403 and appends nothing; the dashboard's own origin appends", async () => {
    const cross = await serve.fetch("/api/events", { method: "POST", headers: { ...octets, origin: "https://evil.example" }, body: "cross-site" });
    expect(await error_code(cross)).toEqual([403, "ORIGIN_NOT_ALLOWED"]);
    expect(await events_held()).toBe(0);
    const own = await serve.fetch("/api/events", { method: "POST", headers: { ...octets, origin: serve.admin_url }, body: "from the dashboard" });
    expect(own.status).toBe(201);
    const batch = await serve.fetch("/api/events", { method: "POST", headers: { "content-type": "application/cbor" }, body: encode([new TextEncoder().encode("a"), new TextEncoder().encode("b")]) });
    expect(batch.status).toBe(201);
    expect(await events_held()).toBe(3);
  });

  test("one client cannot hold every event-stream slot: past the per-client limit it gets 429, another client is still served", async () => {
    const per_client = admin_limits_default.sse_per_client_max;
    const aborts: AbortController[] = [];
    const open = () => {
      const abort = new AbortController();
      aborts.push(abort);
      return serve.fetch("/api/events/stream", { signal: abort.signal });
    };
    const other = raw_get("/api/events/stream", "127.0.0.2");
    try {
      const held = await Promise.all(Array.from({ length: per_client }, open));
      expect(held.map((r) => r.status)).toEqual(new Array(per_client).fill(200));
      expect(await error_code(await open())).toEqual([429, "TOO_MANY_CLIENT_STREAMS"]);

      // Another client (127.0.0.2) opens a stream and gets the next event.
      await other.connected;
      await wait_for("the other client's stream to open", async () => (other.text().startsWith("HTTP/1.1 200") ? true : null));
      expect(other.text().toLowerCase()).toContain("content-type: text/event-stream");
      expect((await serve.fetch("/api/events", { method: "POST", headers: octets, body: "for the other client" })).status).toBe(201);
      const payload = Buffer.from("for the other client").toString("base64");
      await wait_for("the event on the other client's stream", async () => (other.text().includes(payload) ? true : null));
    } finally {
      for (const a of aborts) a.abort();
      other.close();
    }
    // Once the streams are gone, the first client may open one again.
    await wait_for("the streams to close", async () => {
      const abort = new AbortController();
      const res = await serve.fetch("/api/events/stream", { signal: abort.signal });
      abort.abort();
      return res.status === 200 ? true : null;
    });
  });

  test("the 17 MiB CBOR bomb is refused at once, the server answering /healthz within 50 ms all along, and nothing is appended", async () => {
    const before = await events_held();
    const serve_queue = new RunQueueWait(`/proc/${serve.proc.pid}/task/${serve.proc.pid}/schedstat`);
    const own_queue = new RunQueueWait();
    try {
      // One bomb while this process keeps asking /healthz and times each answer.
      const round = async (mode: "declared" | "chunked") => {
        // The bomb comes from a third process.
        const sender = Bun.spawn([process.execPath, sender_script, `${serve.admin_url}/api/events`, "application/cbor", mode, "bomb"], { stdout: "pipe", stderr: "pipe" });
        let done = false;
        const answer = new Response(sender.stdout).text().finally(() => {
          done = true;
        });
        let slowest = 0;
        let slowest_wall = 0;
        let probes = 0;
        while (!done) {
          const started = performance.now();
          const queued = serve_queue.ms() + own_queue.ms();
          const res = await serve.fetch("/healthz");
          await res.arrayBuffer();
          const wall = performance.now() - started;
          // Time either process waited for a CPU (the machine is shared) is not the server being blocked.
          slowest = Math.max(slowest, wall - (serve_queue.ms() + own_queue.ms() - queued));
          slowest_wall = Math.max(slowest_wall, wall);
          expect(res.status).toBe(200);
          probes++;
          await Bun.sleep(1);
        }
        expect(await sender.exited).toBe(0);
        const sent = JSON.parse(await answer) as { status: number; body: { error: { code: string } }; ms: number };
        console.log(
          `serve, bomb (${mode}): ${sent.status} ${sent.body.error.code} after ${sent.ms.toFixed(0)} ms; ` +
            `${probes} /healthz probes meanwhile, slowest ${slowest.toFixed(1)} ms without CPU waits (${slowest_wall.toFixed(1)} ms wall clock)`,
        );
        return { sent, slowest, probes };
      };
      for (const mode of ["declared", "chunked"] as const) {
        // A server that blocks does so every time; a scheduling hiccup on a busy machine rarely hits three rounds in a row.
        let r = await round(mode);
        for (let tries = 1; tries < 3 && r.slowest >= 50; tries++) r = await round(mode);
        expect([r.sent.status, r.sent.body.error.code]).toEqual([413, mode === "declared" ? "BODY_TOO_LARGE" : "BATCH_TOO_LARGE"]);
        expect(r.sent.ms).toBeLessThan(5000);
        expect(r.probes).toBeGreaterThan(0);
        expect(r.slowest).toBeLessThan(50);
      }
    } finally {
      serve_queue.close();
      own_queue.close();
    }
    expect(await events_held()).toBe(before);
    expect((await serve.fetch("/api/events", { method: "POST", headers: octets, body: "still taking events" })).status).toBe(201);
  });
});
