import type { Hono } from "hono";
import type { RetentionPolicy } from "../../log/log.ts";
import type { AdminContext } from "../admin_context.ts";
import { error_response, log_error_response } from "../http_errors.ts";
import { prune_report } from "../prune_report.ts";
import { read_body } from "../request_body.ts";

/** A prune request is a few words of JSON. */
const prune_body_max_bytes = 4096;
const policies: readonly RetentionPolicy[] = ["drop-acked", "drop-oldest"];

/**
 * POST /api/prune with `{"dry_run":bool,"policy":"drop-acked"|"drop-oldest"}`
 * (both optional; an empty body prunes by the replica's own policy, or
 * drop-acked without one): runs log.prune and answers a PruneReport
 * (prune_report.ts). `interlog prune` uses it when the replica runs. Unknown
 * fields are refused, so a misspelt dry_run never prunes for real.
 */
export function mount_prune_route(app: Hono, ctx: AdminContext): void {
  app.post("/api/prune", async (c) => {
    const read = await read_body(c.req.raw, { max_bytes: prune_body_max_bytes });
    if (read.kind !== "body") return error_response(c, 413, "BODY_TOO_LARGE", `a prune request is at most ${prune_body_max_bytes} bytes of JSON`);
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (read.bytes.length > 0 && type !== "application/json") {
      return error_response(c, 415, "UNSUPPORTED_MEDIA_TYPE", `Content-Type must be application/json, not "${type}"`);
    }
    const parsed = parse_prune_request(read.bytes);
    if (typeof parsed === "string") return error_response(c, 400, "BAD_REQUEST", `${parsed}; send {"dry_run":true|false,"policy":"drop-acked"|"drop-oldest"}`);
    const { log } = ctx;
    try {
      const status = log.retention_status();
      const policy = parsed.policy ?? status.policy ?? "drop-acked";
      if (policy === "drop-oldest" && status.max_bytes === null) {
        return error_response(
          c,
          409,
          "RETENTION_NOT_CONFIGURED",
          "drop-oldest prunes the oldest segments until the log is within its budget, and this replica has none (retention.max_bytes); set one, or prune with drop-acked",
        );
      }
      const result = await log.prune({ policy, dry_run: parsed.dry_run });
      const after = log.retention_status();
      return c.json(prune_report(result, policy, after.first_pos, { used_bytes: after.used_bytes, max_bytes: after.max_bytes }));
    } catch (err) {
      return log_error_response(c, err, ctx.warn);
    }
  });
}

/** The request, or what is wrong with it. */
export function parse_prune_request(bytes: Uint8Array): { dry_run: boolean; policy: RetentionPolicy | undefined } | string {
  const text = new TextDecoder().decode(bytes).trim();
  if (text === "") return { dry_run: false, policy: undefined };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return "the body is not JSON";
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body must be a JSON object";
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => k !== "dry_run" && k !== "policy");
  if (unknown.length > 0) return `unknown field ${JSON.stringify(unknown[0])}`;
  const { dry_run = false, policy } = fields;
  if (typeof dry_run !== "boolean") return "dry_run must be true or false";
  if (policy !== undefined && !policies.includes(policy as RetentionPolicy)) return `policy must be drop-acked or drop-oldest, not ${JSON.stringify(policy)}`;
  return { dry_run, policy: policy as RetentionPolicy | undefined };
}
