import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { Origin } from "../support/origin.ts";
import { accept_validated } from "../support/validated_accept.ts";
import { admin_app, b64, dec, enc, post_event } from "./support.ts";

const cbor_type = "application/cbor";

describe("POST /api/events", () => {
  test("one octet-stream event is answered 201 with its id once durable, and reads back", async () => {
    const t = await admin_app();
    const res = await post_event(t, enc("gps 52.1 4.3"));
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ ids: [`${t.log.id}:1`] });
    expect(t.log.durable_count).toBe(t.log.count);
    const read = await t.call("/api/events?from=0");
    const body = (await read.json()) as { events: { payload: string; id: string; pos: number }[]; next: number };
    expect(body.events.map((e) => [e.pos, e.id, e.payload])).toEqual([[0, `${t.log.id}:1`, b64("gps 52.1 4.3")]]);
    expect(body.next).toBe(1);
  });

  test("a CBOR array of byte strings is one atomic batch with consecutive ids", async () => {
    const t = await admin_app();
    await post_event(t, enc("before"));
    const res = await post_event(t, encode([enc("a"), enc("b"), enc("c")]), `${cbor_type}; charset=binary`);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ ids: [2, 3, 4].map((s) => `${t.log.id}:${s}`) });
    expect(t.log.read(0).map((e) => dec(e.payload))).toEqual(["before", "a", "b", "c"]);
  });

  test("an empty event is allowed", async () => {
    const t = await admin_app();
    const res = await post_event(t, new Uint8Array(0));
    expect(res.status).toBe(201);
    expect(t.log.read(0)[0].payload.length).toBe(0);
  });

  test("a validator's refusal is 422 with its message, and nothing of the batch is written", async () => {
    const seen: [string, number, number, number][] = [];
    const t = await admin_app({
      validate_append: (payload, ctx) => {
        expect([ctx.kind, ctx.origin]).toEqual(["append", t.log.id]);
        seen.push([dec(payload), ctx.seq, ctx.index, ctx.count]);
        return dec(payload).startsWith("{") ? null : "payload is not a JSON object";
      },
    });
    expect((await post_event(t, enc("{}"))).status).toBe(201);
    const res = await post_event(t, encode([enc("{\"a\":1}"), enc("oops"), enc("{}")]), cbor_type);
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({
      error: { code: "VALIDATION_FAILED", message: "event 1 of the batch: payload is not a JSON object; nothing was written" },
    });
    expect(t.log.count).toBe(1);
    expect(seen).toEqual([
      ["{}", 1, 0, 1],
      ["{\"a\":1}", 2, 0, 3],
      ["oops", 3, 1, 3],
    ]);
    const single = await post_event(t, enc("plain"));
    expect(single.status).toBe(422);
    expect(((await single.json()) as { error: { message: string } }).error.message).toBe("payload is not a JSON object; nothing was written");
  });

  test("a validator that throws refuses the append with 422 instead of failing the request", async () => {
    const warnings: string[] = [];
    const t = await admin_app({
      validate_append: () => {
        throw new Error("bug in validator");
      },
      on_warning: (message) => warnings.push(message),
    });
    const res = await post_event(t, enc("x"));
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe("validator failed: bug in validator; nothing was written");
    expect(warnings).toEqual(["an append validator threw; the append was refused"]);
    expect(t.log.count).toBe(0);
  });

  test("a body over the limit is 413, whether its length is declared or streamed", async () => {
    const t = await admin_app({ body_limit_bytes: 1000 });
    const declared = await t.call("/api/events", {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "content-length": "1001" },
      body: new Uint8Array(1001),
    });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    const chunks = [new Uint8Array(600), new Uint8Array(600)];
    const streamed = await t.call("/api/events", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new ReadableStream({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk === undefined) controller.close();
          else controller.enqueue(chunk);
        },
      }),
    });
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
    expect((await post_event(t, new Uint8Array(1000))).status).toBe(201);
    expect(t.log.count).toBe(1);
  });

  test("a wrong or missing content type is 415 and writes nothing", async () => {
    const t = await admin_app();
    for (const type of ["application/json", "text/plain", ""]) {
      const res = await t.call("/api/events", { method: "POST", headers: type === "" ? {} : { "content-type": type }, body: "{}" });
      expect(res.status).toBe(415);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    expect(t.log.count).toBe(0);
  });

  test("CBOR that is not an array of byte strings is 400 and writes nothing", async () => {
    const t = await admin_app();
    const bodies: [Uint8Array, string][] = [
      [new Uint8Array([0x82, 0x41]), "not well-formed CBOR"],
      [encode({ a: enc("x") }), "one array of byte strings"],
      [encode([]), "the batch is empty"],
      [encode([enc("ok"), "text"]), "item 1 of the batch is not a byte string"],
      [new Uint8Array([...encode([enc("x")]), 0]), "not well-formed CBOR"],
    ];
    for (const [body, message] of bodies) {
      const res = await post_event(t, body, cbor_type);
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("BAD_REQUEST");
      expect(error.message).toContain(message);
    }
    expect(t.log.count).toBe(0);
  });

  test("a full disk is 507 LOG_FULL and the log keeps what it had", async () => {
    const io = new MemFileIO();
    // Room for the first segment and one spare: the third segment cannot be made.
    io.capacity_bytes = 2 * 64 * 1024 + 8 * 1024;
    const t = await admin_app({}, { dir: "/mem/data", io });
    const payload = new Uint8Array(8 * 1024).fill(7);
    let full: Response | null = null;
    let written = 0;
    for (let i = 0; i < 40 && full === null; i++) {
      const res = await post_event(t, payload);
      if (res.status === 201) written++;
      else full = res;
    }
    expect(full?.status).toBe(507);
    const error = ((await full?.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("LOG_FULL");
    expect(error.message).toContain("free disk space");
    expect(t.log.count).toBe(written);
    const status = (await (await t.call("/api/status")).json()) as { events: number };
    expect(status.events).toBe(written);
  });
});

describe("GET /api/events", () => {
  test("pages through the log with from, limit and next", async () => {
    const t = await admin_app();
    await t.log.write(["e0", "e1", "e2", "e3", "e4"].map(enc));
    const first = (await (await t.call("/api/events?from=0&limit=2")).json()) as { events: { pos: number }[]; next: number };
    expect(first.events.map((e) => e.pos)).toEqual([0, 1]);
    expect(first.next).toBe(2);
    const rest = (await (await t.call(`/api/events?from=${first.next}&limit=10`)).json()) as { events: { pos: number }[]; next: number };
    expect(rest.events.map((e) => e.pos)).toEqual([2, 3, 4]);
    expect(rest.next).toBe(5);
    const end = (await (await t.call("/api/events?from=5")).json()) as { events: unknown[]; next: number };
    expect(end).toEqual({ events: [], next: 5 });
  });

  test("each event has pos, id, origin, seq, time and a base64 payload", async () => {
    const t = await admin_app({}, { clock: { now_ms: () => 1_700_000_000_000 } });
    await t.log.write(enc("hello"));
    const body = (await (await t.call("/api/events")).json()) as { events: unknown[] };
    expect(body.events).toEqual([{ pos: 0, id: `${t.log.id}:1`, origin: t.log.id, seq: 1, time: 1_700_000_000_000, payload: b64("hello") }]);
  });

  test("synced events read as their origin wrote them (no proof), a rejected one as it was written and marked rejected", async () => {
    const t = await admin_app();
    const peer = await Origin.open({ clock: { now_ms: () => 1_600_000_000_000 } });
    const frames = peer.write("fine", "refused by a validator here");
    expect(accept_validated(t.log, frames, (p) => (dec(p).startsWith("refused") ? "no" : null))).toEqual({ appended: 2, rejected: 1 });
    await peer.close();
    await t.log.durable();
    const body = (await (await t.call("/api/events")).json()) as { events: unknown[] };
    const event = (seq: number, payload: string) => ({ pos: seq - 1, id: `${peer.id}:${seq}`, origin: peer.id, seq, time: 1_600_000_000_000, payload: b64(payload) });
    expect(body.events).toEqual([event(1, "fine"), { ...event(2, "refused by a validator here"), rejected: true }]);
  });

  test("a page stops at the payload budget but always holds one event", async () => {
    const t = await admin_app({ limits: { page_payload_max_bytes: 1000 } });
    await t.log.write([new Uint8Array(1500), new Uint8Array(400), new Uint8Array(400), new Uint8Array(400)]);
    const sizes = async (from: number) => {
      const body = (await (await t.call(`/api/events?from=${from}`)).json()) as { events: { payload: string }[]; next: number };
      return [body.events.map((e) => Buffer.from(e.payload, "base64").length), body.next] as const;
    };
    expect(await sizes(0)).toEqual([[1500], 1]);
    expect(await sizes(1)).toEqual([[400, 400], 3]);
  });

  test("shows only durable events: nothing a power cut could take back", async () => {
    const timers = new ManualTimers();
    const t = await admin_app({}, { sync: "interval", sync_interval_ms: 1000, timers });
    t.log.append(enc("not yet durable"));
    expect(await (await t.call("/api/events")).json()).toEqual({ events: [], next: 0 });
    timers.fire_every(); // the interval fsync
    await t.log.durable();
    const body = (await (await t.call("/api/events")).json()) as { events: { payload: string }[]; next: number };
    expect([body.events.map((e) => e.payload), body.next]).toEqual([[b64("not yet durable")], 1]);
  });

  test("bad positions and limits are 400", async () => {
    const t = await admin_app();
    for (const query of ["from=-1", "from=abc", "limit=0", "limit=1001", "from=1.5"]) {
      const res = await t.call(`/api/events?${query}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("BAD_REQUEST");
    }
  });
});
