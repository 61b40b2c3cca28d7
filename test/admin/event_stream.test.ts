import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { Origin } from "../support/origin.ts";
import { SseReader, admin_app, b64, enc, eventually, metric, post_event } from "./support.ts";

interface StreamedEvent {
  pos: number;
  id: string;
  payload: string;
}

async function next_event(sse: SseReader): Promise<StreamedEvent> {
  const m = await sse.next();
  expect(m.event).toBe("event");
  const event = JSON.parse(m.data) as StreamedEvent;
  expect(m.id).toBe(String(event.pos));
  return event;
}

async function open_streams(call: (url: string) => Promise<Response>): Promise<number | undefined> {
  return metric(await (await call("/metrics")).text(), "interlog_admin_sse_streams");
}

describe("GET /api/events/stream", () => {
  test("sends the events from a position, then new ones as they are appended here or by sync", async () => {
    const t = await admin_app({ limits: { sse_poll_interval_ms: 20 } });
    await t.log.write([enc("old-0"), enc("old-1")]);
    const res = await t.call("/api/events/stream?from=1");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const sse = new SseReader(res);
    expect(await next_event(sse)).toMatchObject({ pos: 1, payload: b64("old-1") });

    expect((await post_event(t, enc("over http"))).status).toBe(201);
    expect(await next_event(sse)).toMatchObject({ pos: 2, id: `${t.log.id}:3`, payload: b64("over http") });

    // Written past the API (as sync does): found by polling. The payload streamed is the origin's, without its proof.
    const peer = await Origin.open({ clock: { now_ms: () => 5 } });
    expect(t.log.accept_frames(peer.write("from a peer"))).toEqual({ appended: 1, dropped: {} });
    expect(await next_event(sse)).toMatchObject({ pos: 3, id: `${peer.id}:1`, payload: b64("from a peer") });
    await peer.close();

    await post_event(t, encode([enc("b0"), enc("b1")]), "application/cbor");
    expect((await next_event(sse)).pos).toBe(4);
    expect((await next_event(sse)).pos).toBe(5);
    await sse.cancel();
  });

  test("without from it starts at the end; Last-Event-ID resumes after that position", async () => {
    const t = await admin_app({ limits: { sse_poll_interval_ms: 20 } });
    await t.log.write([enc("0"), enc("1"), enc("2")]);
    const tail = new SseReader(await t.call("/api/events/stream"));
    await post_event(t, enc("3"));
    expect((await next_event(tail)).pos).toBe(3);
    await tail.cancel();

    const resumed = new SseReader(await t.call("/api/events/stream?from=0", { headers: { "last-event-id": "1" } }));
    expect((await next_event(resumed)).pos).toBe(2);
    expect((await next_event(resumed)).pos).toBe(3);
    await resumed.cancel();
  });

  test("a stream ends when its client goes away, and their number is bounded", async () => {
    const t = await admin_app({ limits: { sse_streams_max: 2, sse_poll_interval_ms: 20 } });
    const a = new SseReader(await t.call("/api/events/stream"));
    const b = new SseReader(await t.call("/api/events/stream"));
    await eventually(async () => (await open_streams(t.call)) === 2, "two open streams");
    const third = await t.call("/api/events/stream");
    expect(third.status).toBe(503);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("TOO_MANY_STREAMS");

    await a.cancel();
    await eventually(async () => (await open_streams(t.call)) === 1, "the abandoned stream to end");
    const c = await t.call("/api/events/stream");
    expect(c.status).toBe(200);
    await b.cancel();
    await c.body?.cancel();
    await eventually(async () => (await open_streams(t.call)) === 0, "every stream to end");
  });

  test("an idle stream sends keep-alive comments", async () => {
    const t = await admin_app({ limits: { sse_poll_interval_ms: 5, sse_heartbeat_interval_ms: 10 } });
    const sse = new SseReader(await t.call("/api/events/stream"));
    // Comments are counted while next() reads towards the next message.
    const reading = sse.next();
    await eventually(() => sse.comments >= 2, "two keep-alive comments");
    await post_event(t, enc("x"));
    expect((await reading).event).toBe("event");
    await sse.cancel();
  });

  test("the stream ends when the log closes", async () => {
    const t = await admin_app({ limits: { sse_poll_interval_ms: 10 } });
    const sse = new SseReader(await t.call("/api/events/stream"));
    await t.log.close();
    await expect(sse.next()).rejects.toThrow("the event stream ended");
  });

  test("bad positions are 400", async () => {
    const t = await admin_app();
    expect((await t.call("/api/events/stream?from=x")).status).toBe(400);
    expect((await t.call("/api/events/stream", { headers: { "last-event-id": "-3" } })).status).toBe(400);
  });
});
