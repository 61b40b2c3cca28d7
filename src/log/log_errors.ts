import { InterlogError, errno_code } from "../lib/errors.ts";

/**
 * One factory per error code the log raises, each with the message a field
 * technician reads: what happened and what to do. Callers pass the facts;
 * the wording lives here, once.
 */

export function bad_argument(message: string): InterlogError {
  return new InterlogError("BAD_ARGUMENT", message);
}

export function log_closed(what = "the log is closed"): InterlogError {
  return new InterlogError("LOG_CLOSED", what);
}

export function read_only(): InterlogError {
  return new InterlogError("READ_ONLY", "the log was opened read-only");
}

export function payload_too_large(payload_bytes: number, payload_max_bytes: number): InterlogError {
  return new InterlogError("PAYLOAD_TOO_LARGE", `payload of ${payload_bytes} bytes exceeds the limit of ${payload_max_bytes} bytes`);
}

export function batch_too_large(batch_bytes: number, segment_size_bytes: number): InterlogError {
  return new InterlogError(
    "BATCH_TOO_LARGE",
    `a batch of ${batch_bytes} bytes does not fit in one segment of ${segment_size_bytes} bytes; split it or raise log.segment_size`,
  );
}

export function seq_gap(origin: string, seq: number, held: number): InterlogError {
  return new InterlogError(
    "SEQ_GAP",
    `event ${origin}:${seq} cannot be appended: this log holds ${origin} only up to seq ${held}; fetch the missing events first`,
    { origin, seq, held },
  );
}

/** No room for a segment file: appends fail with this until space is freed; nothing was written. */
export function log_full(segment_size_bytes: number, segments_dir: string, free_bytes: number | null, cause?: unknown): InterlogError {
  return new InterlogError(
    "LOG_FULL",
    `the log is full: no space for a new ${segment_size_bytes}-byte segment in ${segments_dir}` +
      `${free_bytes === null ? "" : ` (${free_bytes} bytes free)`}; free disk space and appends resume. Nothing was written`,
    { free_bytes },
    cause,
  );
}

/** The disk budget (retention.max_bytes) is reached and retention may free nothing: `why` says what holds it back. */
export function log_full_budget(max_bytes: number, used_bytes: number, why: string): InterlogError {
  return new InterlogError(
    "LOG_FULL",
    `the log is full: its segments take ${used_bytes} of the ${max_bytes}-byte budget (retention.max_bytes) and none may be pruned: ${why}. Nothing was written`,
    { max_bytes, used_bytes },
  );
}

/** A write or fsync failed: the page cache can no longer be trusted, so the log stops. */
export function log_failed(cause: unknown): InterlogError {
  return new InterlogError(
    "LOG_FAILED",
    `a write or fsync of the log failed (${errno_code(cause) ?? String(cause)}); the log accepts no more writes. Restart the service; if it happens again check the disk (dmesg) and run interlog verify`,
    { code: errno_code(cause) },
    cause,
  );
}

export function io_error(what: string, cause: unknown): InterlogError {
  return new InterlogError("IO_ERROR", `${what}: ${String(cause)}`, { code: errno_code(cause) }, cause);
}

export function data_dir_missing(dir: string): InterlogError {
  return new InterlogError("DATA_DIR_INVALID", `no data directory at ${dir}; create one with: interlog init --data-dir ${dir}`);
}

export function replica_missing(dir: string): InterlogError {
  return new InterlogError("DATA_DIR_INVALID", `${dir} holds no replica.json; create a log with: interlog init --data-dir ${dir}`);
}

export function no_segments(segments_dir: string): InterlogError {
  return new InterlogError("DATA_DIR_INVALID", `no segments in ${segments_dir}; the log was never opened for writing`);
}

export function segment_misplaced(file_name: string, expected_first_pos: number): InterlogError {
  return new InterlogError(
    "DATA_DIR_CORRUPT",
    `segment ${file_name} should start at position ${expected_first_pos}; a segment file is missing or foreign. Run interlog verify and restore the data directory from a backup or a peer`,
  );
}

export function segment_empty(file: string): InterlogError {
  return new InterlogError("DATA_DIR_CORRUPT", `segment ${file} is empty; restore the data directory from a backup or a peer`);
}
