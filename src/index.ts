/** InterLog's embedded API. */
export { Log, sync_modes, segment_size_default_bytes } from "./log/log.ts";
export type { LogOptions, SyncMode, RecoveryReport, LogStats } from "./log/log.ts";
export { LogEvent } from "./log/log_event.ts";
export type { VerifyReport, VerifyProblem } from "./log/verify.ts";
export { format_event_id, parse_event_id, is_origin } from "./log/ids.ts";
export { flag_rejected, flag_batch_end, flag_signed, payload_max_bytes } from "./log/frame.ts";
export { InterlogError, is_interlog_error } from "./lib/errors.ts";
export type { ErrorCode } from "./lib/errors.ts";
export type { FileIO, FileHandle } from "./log/file_io.ts";
export { node_file_io } from "./log/file_io.ts";
