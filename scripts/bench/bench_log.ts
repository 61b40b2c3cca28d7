import { type FileHandle, type FileIO, Log, type LogOptions, node_file_io } from "../../src/index.ts";

/**
 * Opens a Log for a benchmark on the real file system, through a FileIO that
 * works around a src/log bug found by these benchmarks: run_sync() closes a
 * retired segment's handle after an fsync cycle even when a rotation during
 * that cycle queued the same handle in `unsynced` again, so the next cycle
 * fdatasyncs fd -1 and the log fails with LOG_FAILED (ERR_OUT_OF_RANGE).
 * Here a handle's close() only marks it; the fd stays open, so that later
 * fdatasync still happens for real (the same work a fixed log does), and is
 * closed by BenchLog.close(). Remove once src/log closes a retired handle
 * only after the cycle that covers its last write.
 */
export interface BenchLog {
  log: Log;
  close(): Promise<void>;
}

export async function open_bench_log(options: LogOptions): Promise<BenchLog> {
  const deferred: FileHandle[] = [];
  const io: FileIO = {
    ...node_file_io,
    open(file) {
      const handle = node_file_io.open(file);
      let close_requested = false;
      return {
        write: (bytes, from, length, file_offset) => handle.write(bytes, from, length, file_offset),
        sync: () => handle.sync(),
        close() {
          if (close_requested) return;
          close_requested = true;
          deferred.push(handle);
        },
      };
    },
  };
  const log = await Log.open({ ...options, io });
  return {
    log,
    async close() {
      try {
        await log.close();
      } finally {
        for (const handle of deferred.splice(0)) handle.close();
      }
    },
  };
}
