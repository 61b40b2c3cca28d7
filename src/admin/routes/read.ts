import type { Hono } from "hono";
import { is_interlog_error } from "../../lib/errors.ts";
import { format_event_id, parse_event_id } from "../../log/ids.ts";
import type { LogEvent } from "../../log/log_event.ts";
import type { AdminContext } from "../admin_context.ts";
import { event_json_pieces, page_json_pieces, pruned_message, text_stream } from "../event_text.ts";
import { error_response } from "../http_errors.ts";

/** A non-negative integer query parameter, its default when absent, or null when malformed. */
export function int_param(text: string | undefined, fallback: number): number | null {
  if (text === undefined || text === "") return fallback;
  if (!/^\d{1,15}$/.test(text)) return null;
  return Number(text);
}

/** Events with payloads up to this are copied into a page; a bigger one stays a view of the log. */
const detach_max_bytes = 1024 * 1024;

export interface Page {
  events: LogEvent[];
  /** The position to ask for next. */
  next: number;
  /** The first position held: retention pruned the events before it (0 when none were). */
  pruned_before: number;
}

/**
 * Durable events from `from` on, at most `limit` and about `payload_max_bytes`
 * of payload (always at least one event when there is one). Only durable
 * events are shown: a reader never sees an event a power cut could take back.
 * A `from` below the first position held starts there (retention pruned the
 * events before it). Events up to detach_max_bytes are copies
 * (LogEvent.detached): a page is sent over many turns, and retention may
 * recycle a segment file meanwhile.
 */
export function read_page(ctx: AdminContext, from: number, limit: number, payload_max_bytes: number): Page {
  const { log } = ctx;
  const end = log.durable_count;
  const pruned_before = log.first_pos;
  const start = Math.max(from, pruned_before);
  const events: LogEvent[] = [];
  let bytes = 0;
  if (start < end) {
    for (const event of log.iterate(start)) {
      if (event.pos >= end || events.length >= limit) break;
      if (events.length > 0 && bytes + event.payload.length > payload_max_bytes) break;
      // A copy (bounded by the page's payload budget), except one big event, whose copy would hold the loop.
      events.push(event.payload.length <= detach_max_bytes ? event.detached() : event);
      bytes += event.payload.length;
    }
  }
  return { events, next: start + events.length, pruned_before };
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
    // "pruned_before" is there whenever retention pruned anything (the first position held is above 0).
    return c.body(text_stream(page_json_pieces(page.events, page.next, page.pruned_before)), 200, { "Content-Type": "application/json" });
  });
}

/**
 * GET /api/events/ORIGIN:SEQ: one durable event as JSON; 404 NOT_FOUND when
 * this replica does not hold it (yet); 410 EVENT_PRUNED when it held it and
 * retention pruned it. Mounted after /api/events/stream, which it would
 * otherwise shadow.
 */
export function mount_event_route(app: Hono, ctx: AdminContext): void {
  app.get("/api/events/:id", (c) => {
    const { log } = ctx;
    const text = c.req.param("id");
    let id: { origin: string; seq: number };
    try {
      id = parse_event_id(text);
    } catch (err) {
      if (!is_interlog_error(err)) throw err;
      return error_response(c, 400, "BAD_REQUEST", err.message);
    }
    const { origin, seq } = id;
    const name = format_event_id(origin, seq);
    if (log.is_pruned(origin, seq)) {
      return error_response(c, 410, "EVENT_PRUNED", pruned_message(name, origin, log.pruned_through(origin), log.first_pos));
    }
    const event = log.get(origin, seq);
    if (event === null || event.pos >= log.durable_count) {
      const held = log.durable_held(origin);
      return error_response(
        c,
        404,
        "NOT_FOUND",
        held === 0 ? `this replica holds no event of origin ${origin}` : `this replica holds no event ${name}: it holds origin ${origin} up to seq ${held}`,
      );
    }
    return c.body(text_stream(event_json_pieces(event)), 200, { "Content-Type": "application/json" });
  });
}
