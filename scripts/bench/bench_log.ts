import { Log, type LogOptions } from "../../src/index.ts";

/** A Log opened for a benchmark on the real file system. */
export interface BenchLog {
  log: Log;
  close(): Promise<void>;
}

export async function open_bench_log(options: LogOptions): Promise<BenchLog> {
  const log = await Log.open(options);
  return { log, close: () => log.close() };
}
