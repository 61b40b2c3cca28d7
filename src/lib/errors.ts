/**
 * Errors with stable codes. The code is for programs (HTTP status mapping,
 * exit codes, tests); the message is for a field technician and says what to do.
 */
export type ErrorCode =
  | "BAD_ARGUMENT"
  | "BATCH_TOO_LARGE"
  | "CONFIG_INVALID"
  | "DATA_DIR_CORRUPT"
  | "DATA_DIR_INVALID"
  | "DATA_DIR_OLD_FORMAT"
  | "DATA_DIR_LOCKED"
  | "IO_ERROR"
  | "LOG_CLOSED"
  | "LOG_FAILED"
  | "LOG_FULL"
  | "PAYLOAD_TOO_LARGE"
  | "READ_ONLY"
  | "SEQ_GAP";

export class InterlogError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "InterlogError";
    this.code = code;
    this.details = details;
  }
}

export function is_interlog_error(err: unknown, code?: ErrorCode): err is InterlogError {
  return err instanceof InterlogError && (code === undefined || err.code === code);
}

/** The errno code of a Node/Bun system error (`ENOSPC`, `ENOENT`, ...), or undefined. */
export function errno_code(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
