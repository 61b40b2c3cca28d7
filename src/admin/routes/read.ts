import type { Hono } from "hono";
import type { LogEvent } from "../../log/log_event.ts";
import type { AdminContext } from "../admin_context.ts";
import { page_json_pieces, text_stream } from "../event_text.ts";
import { error_response } from "../http_errors.ts";

/** A non-negative integer query parameter, its default when absent, or null when malformed. */
export function int_param(text: string | undefined, fallback: number): number | null {
  if (text === undefined || text === "") return fallback;
  if (!/^\d{1,15}$/.test(text)) return null;
  return Number(text);
}

/**
 * Durable events from `from` on, at most `limit` and about `payload_max_bytes`
 * of payload (always at least one event when there is one). Only durable
 * events are shown: a reader never sees an event a power cut could take back.
 * Payloads are views of the log (nothing is copied or encoded here).
 */
export function read_page(ctx: AdminContext, from: number, limit: number, payload_max_bytes: number): { events: LogEvent[]; next: number } {
  const { log } = ctx;
  const end = log.durable_count;
  const events: LogEvent[] = [];
  let bytes = 0;
  if (from < end) {
    for (const event of log.iterate(from)) {
      if (event.pos >= end || events.length >= limit) break;
      if (events.length > 0 && bytes + event.payload.length > payload_max_bytes) break;
      events.push(event);
      bytes += event.payload.length;
    }
  }
  return { events, next: from + events.length };
}

export function mount_read_route(app: Hono, ctx: AdminContext): void {
  app.get("/api/events", (c) => {
    const { limits } = ctx;
    const from = int_param(c.req.query("from"), 0);
    if (from === null) return error_response(c, 400, "BAD_REQUEST", "from must be a position (a non-negative integer)");
    const limit = int_param(c.req.query("limit"), limits.page_events_default);
    if (limit === null || limit < 1 || limit > limits.page_events_max) {
      return error_response(c, 400, "BAD_REQUEST", `limit must be an integer from 1 to ${limits.page_events_max}`);
    }
    const page = read_page(ctx, from, limit, limits.page_payload_max_bytes);
    // Streamed in pieces: a page can hold megabytes of base64 (one event of up to 16 MiB is always sent whole).
    return c.body(text_stream(page_json_pieces(page.events, page.next)), 200, { "Content-Type": "application/json" });
  });
}
