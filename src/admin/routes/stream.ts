import type { Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import type { LogEvent } from "../../log/log_event.ts";
import type { AdminContext } from "../admin_context.ts";
import { event_json_pieces, next_turn, payload_piece_bytes, yield_after_ms } from "../event_text.ts";
import { error_response } from "../http_errors.ts";
import { int_param, read_page } from "./read.ts";

/** Events per read while catching up; each is written (and awaited) before the next read. */
const stream_batch_events = 256;

/** Bun.serve passes its server as the Hono env; its per-request idle timeout would cut an idle tail. */
function disable_idle_timeout(env: unknown, request: Request): void {
  const server = env as { timeout?: (request: Request, seconds: number) => void } | undefined;
  server?.timeout?.(request, 0);
}

/** Lets timers and I/O run once this turn has worked for yield_after_ms (a catch-up writes many events in a row). */
async function take_turn(turn: { started: number }): Promise<void> {
  if (performance.now() - turn.started < yield_after_ms) return;
  await next_turn();
  turn.started = performance.now();
}

/**
 * One SSE message `event: event`, `id: POS`, `data: <the event's JSON>`,
 * written in pieces (a large payload's base64 takes many), yielding to the
 * event loop once `turn` has worked for yield_after_ms.
 */
async function write_event(stream: SSEStreamingApi, event: LogEvent, turn: { started: number }): Promise<void> {
  const head = `event: event\nid: ${event.pos}\ndata: `;
  if (event.payload.length <= payload_piece_bytes) {
    await take_turn(turn);
    for (const json of event_json_pieces(event)) await stream.write(`${head}${json}\n\n`); // one piece
    return;
  }
  await stream.write(head);
  for (const piece of event_json_pieces(event)) {
    await take_turn(turn);
    await stream.write(piece);
  }
  await stream.write("\n\n");
}

/**
 * Who holds a stream, for the per-client limit: the remote IPv4 address, or
 * the /64 of an IPv6 one (one host can use any address of its /64), as
 * Bun.serve reports it through the Hono env; "unknown" without one (tests
 * calling app.request). Every program on this machine is 127.0.0.1.
 */
export function client_of(env: unknown, request: Request): string {
  const server = env as { requestIP?: (request: Request) => { address: string } | null } | undefined;
  const address = server?.requestIP?.(request)?.address;
  if (address === undefined || address === "") return "unknown";
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (v4 !== null) return v4[1];
  const v6 = address.toLowerCase().replace(/%.*$/, "");
  if (v6 === "::1") return v6;
  const [head, tail = ""] = v6.split("::");
  const groups = head === "" ? [] : head.split(":");
  // "a:b::c" has its missing groups (zeros) in the middle; only the first four groups matter.
  if (v6.includes("::")) {
    const tail_groups = tail === "" ? [] : tail.split(":");
    while (groups.length + tail_groups.length < 8) groups.push("0");
    groups.push(...tail_groups);
  }
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/**
 * GET /api/events/stream?from=POS: Server-Sent Events, one `event` message
 * per durable event (data = the event's JSON, id = its position), from POS
 * (or after Last-Event-ID, or from the current end) until the client goes
 * away or the log closes.
 */
export function mount_stream_route(app: Hono, ctx: AdminContext): void {
  let open = 0;
  /** Open streams per client_of(); a client is removed at zero. */
  const per_client = new Map<string, number>();

  app.get("/api/events/stream", (c) => {
    const { log, limits, new_events } = ctx;
    const last_id = c.req.header("last-event-id");
    const resume = last_id === undefined ? undefined : int_param(last_id, 0);
    if (resume === null) return error_response(c, 400, "BAD_REQUEST", "Last-Event-ID must be a position (a non-negative integer)");
    const from = resume !== undefined ? resume + 1 : int_param(c.req.query("from"), log.durable_count);
    if (from === null) return error_response(c, 400, "BAD_REQUEST", "from must be a position (a non-negative integer)");
    // Hono answers HEAD through this GET handler and drops the body without cancelling it: a stream opened
    // for a HEAD would never see its client go and would hold its slot until restart.
    if (c.req.method === "HEAD") {
      return c.body(null, 200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    }
    if (open >= limits.sse_streams_max) {
      return error_response(c, 503, "TOO_MANY_STREAMS", `${open} event streams are open, the limit; close one and retry`);
    }
    const client = client_of(c.env, c.req.raw);
    const held = per_client.get(client) ?? 0;
    if (held >= limits.sse_per_client_max) {
      return error_response(
        c,
        429,
        "TOO_MANY_CLIENT_STREAMS",
        `this client (${client}) already holds ${held} event streams, the most one client may (every program on the replica's own machine counts as one client); close one and retry`,
      );
    }
    open++;
    per_client.set(client, held + 1);
    ctx.metrics.sse_streams = open;
    disable_idle_timeout(c.env, c.req.raw);

    return streamSSE(c, async (stream) => {
      let wait: ReturnType<typeof new_events.wait> | null = null;
      stream.onAbort(() => wait?.stop());
      try {
        // Bun sends the response head with the first body bytes: say something now so the client sees the stream open.
        const start = Math.max(from, log.first_pos);
        await stream.write(start > from ? `: events before position ${start} were pruned by retention; tail from position ${start}\n\n` : `: tail from position ${from}\n\n`);
        let pos = start;
        let idle_since = performance.now();
        const turn = { started: performance.now() };
        while (!stream.aborted && !log.is_closed) {
          const page = read_page(ctx, pos, stream_batch_events, limits.page_payload_max_bytes);
          for (const event of page.events) {
            if (stream.aborted) return;
            await write_event(stream, event, turn);
          }
          if (page.events.length > 0) {
            pos = page.next;
            idle_since = performance.now();
            continue;
          }
          if (performance.now() - idle_since >= limits.sse_heartbeat_interval_ms) {
            await stream.write(": keep-alive\n\n");
            idle_since = performance.now();
          }
          wait = new_events.wait(limits.sse_poll_interval_ms);
          await wait.done;
          wait = null;
          turn.started = performance.now();
        }
      } finally {
        open--;
        const left = (per_client.get(client) ?? 1) - 1;
        if (left > 0) per_client.set(client, left);
        else per_client.delete(client);
        ctx.metrics.sse_streams = open;
      }
    }, async (err) => {
      // streamSSE then sends the message as an `error` event and closes the stream.
      ctx.warn("an event stream of the admin API ended with an error", { error: String(err) });
    });
  });
}
