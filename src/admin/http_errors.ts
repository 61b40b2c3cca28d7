import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type ErrorCode, is_interlog_error } from "../lib/errors.ts";

/** Codes the admin API answers with, besides the log's own (LOG_FULL, ...). */
export type AdminErrorCode =
  | ErrorCode
  | "BAD_REQUEST"
  | "BODY_TOO_LARGE"
  | "EVENT_PRUNED"
  | "HOST_NOT_ALLOWED"
  | "INTERNAL"
  | "NOT_FOUND"
  | "ORIGIN_NOT_ALLOWED"
  | "RETENTION_NOT_CONFIGURED"
  | "TOO_MANY_CLIENT_STREAMS"
  | "TOO_MANY_STREAMS"
  | "UNAUTHORIZED"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "VALIDATION_FAILED";

export interface ErrorBody {
  error: { code: AdminErrorCode; message: string };
}

export function error_body(code: AdminErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

export function error_response(c: Context, status: ContentfulStatusCode, code: AdminErrorCode, message: string): Response {
  return c.json(error_body(code, message), status);
}

/** The HTTP status for a log error: what the client should do differs (retry later, shrink, free disk). */
export function status_of_log_error(code: ErrorCode): ContentfulStatusCode {
  switch (code) {
    case "LOG_FULL":
      return 507;
    case "PAYLOAD_TOO_LARGE":
    case "BATCH_TOO_LARGE":
      return 413;
    case "BAD_ARGUMENT":
      return 400;
    case "LOG_CLOSED":
    case "LOG_FAILED":
    case "READ_ONLY":
      return 503;
    default:
      return 500;
  }
}

/** Answers an error thrown by the log with its code and technician message; anything else is a 500. */
export function log_error_response(
  c: Context,
  err: unknown,
  on_warning: (message: string, details: Record<string, unknown>) => void,
): Response {
  if (is_interlog_error(err)) return error_response(c, status_of_log_error(err.code), err.code, err.message);
  on_warning("admin API request failed unexpectedly", { method: c.req.method, path: c.req.path, error: String(err) });
  return error_response(c, 500, "INTERNAL", "internal error; see the replica's log");
}
