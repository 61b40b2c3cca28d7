import { afterEach, describe, expect, test } from "bun:test";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { SseReader, admin_app, b64, enc, eventually, metric } from "./support.ts";

const token = "field-tech-token";
const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

async function serve(deps: Parameters<typeof admin_app>[0] = {}, idle_timeout_s?: number) {
  const t = await admin_app({ token, ...deps });
  const server = start_admin_server({ app: t.app, listen: "127.0.0.1:0", idle_timeout_s });
  servers.push(server);
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
  return { ...t, server, call };
}

describe("the admin API over real HTTP (Bun.serve)", () => {
  test("binds the loopback address on a free port and serves appends and reads", async () => {
    const { server, call, log } = await serve();
    expect(server.hostname).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    const post = await call("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: enc("over the wire") });
    expect(post.status).toBe(201);
    expect(await post.json()).toEqual({ ids: [`${log.id}:1`] });
    const read = (await (await call("/api/events")).json()) as { events: { payload: string }[] };
    expect(read.events.map((e) => e.payload)).toEqual([b64("over the wire")]);
    expect((await fetch(`${server.url}/api/status`)).status).toBe(401);
  });

  test("a body over the limit is refused with 413 from a real client", async () => {
    const { call, log } = await serve({ body_limit_bytes: 4096 });
    const res = await call("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(100_000) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    expect(log.count).toBe(0);
  });

  test("an SSE tail delivers new events and ends when the client disconnects", async () => {
    const { call, log } = await serve({ limits: { sse_poll_interval_ms: 20 } });
    const abort = new AbortController();
    const res = await call("/api/events/stream?from=0", { signal: abort.signal });
    expect(res.status).toBe(200);
    const sse = new SseReader(res);
    await log.write(enc("first"));
    const m = await sse.next();
    expect(JSON.parse(m.data)).toMatchObject({ pos: 0, payload: b64("first") });
    const streams = async () => metric(await (await call("/metrics")).text(), "interlog_admin_sse_streams");
    expect(await streams()).toBe(1);
    abort.abort();
    await eventually(async () => (await streams()) === 0, "the server to end the abandoned stream");
  });

  test("an idle SSE tail outlives the server's idle timeout", async () => {
    // Bun closes a connection idle for idle_timeout_s (in ~4 s steps); the tail must be exempt.
    const { call, log } = await serve({ limits: { sse_poll_interval_ms: 50, sse_heartbeat_interval_ms: 60_000 } }, 1);
    const sse = new SseReader(await call("/api/events/stream"));
    await Bun.sleep(6000);
    await log.write(enc("after a quiet spell"));
    expect(JSON.parse((await sse.next()).data)).toMatchObject({ payload: b64("after a quiet spell") });
    await sse.cancel();
  });

  test("stop() closes open streams and the port", async () => {
    const { server, call } = await serve({ limits: { sse_poll_interval_ms: 20 } });
    const sse = new SseReader(await call("/api/events/stream"));
    await server.stop();
    await expect(sse.next()).rejects.toThrow();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
