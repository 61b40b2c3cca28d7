import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { AdminContext } from "../admin_context.ts";
import { error_response } from "../http_errors.ts";
import { int_param, read_page } from "./read.ts";

/** Events per read while catching up; each is written (and awaited) before the next read. */
const stream_batch_events = 256;

/** Bun.serve passes its server as the Hono env; its per-request idle timeout would cut an idle tail. */
function disable_idle_timeout(env: unknown, request: Request): void {
  const server = env as { timeout?: (request: Request, seconds: number) => void } | undefined;
  server?.timeout?.(request, 0);
}

/**
 * GET /api/events/stream?from=POS: Server-Sent Events, one `event` message
 * per durable event (data = the event's JSON, id = its position), from POS
 * (or after Last-Event-ID, or from the current end) until the client goes
 * away or the log closes.
 */
export function mount_stream_route(app: Hono, ctx: AdminContext): void {
  let open = 0;

  app.get("/api/events/stream", (c) => {
    const { log, limits, new_events } = ctx;
    const last_id = c.req.header("last-event-id");
    const resume = last_id === undefined ? undefined : int_param(last_id, 0);
    if (resume === null) return error_response(c, 400, "BAD_REQUEST", "Last-Event-ID must be a position (a non-negative integer)");
    const from = resume !== undefined ? resume + 1 : int_param(c.req.query("from"), log.durable_count);
    if (from === null) return error_response(c, 400, "BAD_REQUEST", "from must be a position (a non-negative integer)");
    if (open >= limits.sse_streams_max) {
      return error_response(c, 503, "TOO_MANY_STREAMS", `${open} event streams are open, the limit; close one and retry`);
    }
    open++;
    ctx.metrics.sse_streams.set(open);
    disable_idle_timeout(c.env, c.req.raw);

    return streamSSE(c, async (stream) => {
      let wait: ReturnType<typeof new_events.wait> | null = null;
      stream.onAbort(() => wait?.stop());
      try {
        // Bun sends the response head with the first body bytes: say something now so the client sees the stream open.
        await stream.write(`: tail from position ${from}\n\n`);
        let pos = from;
        let idle_since = performance.now();
        while (!stream.aborted && !log.is_closed) {
          const page = read_page(ctx, pos, stream_batch_events, limits.page_payload_max_bytes);
          for (const event of page.events) {
            if (stream.aborted) return;
            await stream.writeSSE({ event: "event", id: String(event.pos), data: JSON.stringify(event) });
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
        }
      } finally {
        open--;
        ctx.metrics.sse_streams.set(open);
      }
    }, async (err) => {
      // streamSSE then sends the message as an `error` event and closes the stream.
      ctx.warn("an event stream of the admin API ended with an error", { error: String(err) });
    });
  });
}
