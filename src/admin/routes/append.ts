import { decode } from "cbor2";
import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AdminContext } from "../admin_context.ts";
import { error_response, log_error_response } from "../http_errors.ts";

const octet_stream = "application/octet-stream";
const cbor = "application/cbor";

/** The media type of a Content-Type header without parameters, lowercased ("" when absent). */
function media_type(header: string | undefined): string {
  return (header ?? "").split(";")[0].trim().toLowerCase();
}

/** One CBOR array of byte strings, or an error message. */
function decode_batch(body: Uint8Array): Uint8Array[] | string {
  let value: unknown;
  try {
    value = decode(body);
  } catch (err) {
    return `the body is not well-formed CBOR (${(err as Error).message})`;
  }
  if (!Array.isArray(value)) return "an application/cbor body must be one array of byte strings (one per event)";
  if (value.length === 0) return "the batch is empty; send at least one byte string";
  for (let i = 0; i < value.length; i++) {
    if (!(value[i] instanceof Uint8Array)) return `item ${i} of the batch is not a byte string; send one byte string per event`;
  }
  return value as Uint8Array[];
}

/**
 * POST /api/events: one event (octet-stream) or one atomic batch (CBOR array
 * of byte strings). Validators run before anything is written; the answer is
 * sent only once the events are durable under the log's sync mode.
 */
export function mount_append_route(app: Hono, ctx: AdminContext): void {
  const limit = bodyLimit({
    maxSize: ctx.body_limit_bytes,
    onError: (c) =>
      error_response(c, 413, "BODY_TOO_LARGE", `the request body exceeds the limit of ${ctx.body_limit_bytes} bytes; send smaller batches`),
  });

  app.post("/api/events", limit, async (c) => {
    const type = media_type(c.req.header("content-type"));
    if (type !== octet_stream && type !== cbor) {
      return error_response(
        c,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `Content-Type must be ${octet_stream} (one event) or ${cbor} (an array of byte strings, one atomic batch), not "${type}"`,
      );
    }
    const body = new Uint8Array(await c.req.arrayBuffer());
    let payloads: Uint8Array[];
    if (type === octet_stream) {
      payloads = [body];
    } else {
      const batch = decode_batch(body);
      if (typeof batch === "string") return error_response(c, 400, "BAD_REQUEST", batch);
      payloads = batch;
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
          ctx.metrics.append_rejected.inc();
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
