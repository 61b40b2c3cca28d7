import type { Hono } from "hono";
import type { AdminContext } from "../admin_context.ts";
import { batch_head_max_bytes, parse_cbor_batch, refuse_batch_head } from "../cbor_batch.ts";
import { error_response, log_error_response } from "../http_errors.ts";
import { read_body } from "../request_body.ts";

const octet_stream = "application/octet-stream";
const cbor = "application/cbor";

/** The media type of a Content-Type header without parameters, lowercased ("" when absent). */
function media_type(header: string | undefined): string {
  return (header ?? "").split(";")[0].trim().toLowerCase();
}

/**
 * POST /api/events: one event (octet-stream) or one atomic batch (CBOR array
 * of byte strings). Validators run before anything is written; the answer is
 * sent only once the events are durable under the log's sync mode.
 */
export function mount_append_route(app: Hono, ctx: AdminContext): void {
  const event_max_bytes = ctx.body_limit_bytes;
  const batch_max_bytes = Math.min(ctx.body_limit_bytes, ctx.limits.batch_body_max_bytes);
  const events_max = ctx.limits.batch_events_max;

  app.post("/api/events", async (c) => {
    const type = media_type(c.req.header("content-type"));
    if (type !== octet_stream && type !== cbor) {
      return error_response(
        c,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `Content-Type must be ${octet_stream} (one event) or ${cbor} (an array of byte strings, one atomic batch), not "${type}"`,
      );
    }
    let payloads: Uint8Array[];
    if (type === octet_stream) {
      const read = await read_body(c.req.raw, { max_bytes: event_max_bytes });
      if (read.kind !== "body") {
        return error_response(c, 413, "BODY_TOO_LARGE", `the event is larger than ${event_max_bytes} bytes, the most this API takes in one request; nothing was written`);
      }
      payloads = [read.bytes];
    } else {
      // Bounded before anything is decoded: the body's size (by Content-Length when given), then the array's item count from its head.
      const read = await read_body(c.req.raw, {
        max_bytes: batch_max_bytes,
        head_bytes: batch_head_max_bytes,
        refuse_head: (head) => refuse_batch_head(head, events_max),
      });
      if (read.kind === "too_large") {
        return error_response(
          c,
          413,
          "BODY_TOO_LARGE",
          `the CBOR batch is larger than ${batch_max_bytes} bytes, the most one batch may be; send smaller batches (a single large event can go alone as ${octet_stream}); nothing was written`,
        );
      }
      const batch = read.kind === "refused" ? read.refusal : parse_cbor_batch(read.bytes, events_max);
      if (!batch.ok) return error_response(c, batch.status, batch.code, batch.message);
      payloads = batch.payloads;
    }

    const { log } = ctx;
    // No await between validating and appending: nothing else can append in between, so the seqs in ctx hold.
    const validate = ctx.validate_append;
    if (validate !== undefined) {
      const first_seq = log.held(log.id) + 1;
      const time_ms = ctx.clock.now_ms();
      for (let i = 0; i < payloads.length; i++) {
        let message: string | null;
        try {
          message = validate(payloads[i], { kind: "append", origin: log.id, seq: first_seq + i, time_ms, index: i, count: payloads.length });
        } catch (err) {
          // A crashing validator must not take the API down; like the validator registry, treat it as a rejection.
          ctx.warn("an append validator threw; the append was refused", { error: String(err) });
          message = `validator failed: ${err instanceof Error ? err.message : String(err)}`;
        }
        if (message !== null) {
          ctx.metrics.append_rejected_total++;
          const where = payloads.length > 1 ? `event ${i} of the batch: ` : "";
          return error_response(c, 422, "VALIDATION_FAILED", `${where}${message}; nothing was written`);
        }
      }
    }
    let ids: string[];
    try {
      ids = await log.write(payloads);
    } catch (err) {
      return log_error_response(c, err, ctx.warn);
    }
    ctx.new_events.notify();
    return c.json({ ids }, 201);
  });
}
