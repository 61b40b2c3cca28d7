import { Database } from "bun:sqlite";
import path from "node:path";
import { append_payload_bytes, never_rates } from "./append_never_rate.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const sqlite_rows = 500_000;
const rows_per_transaction = 1000;
const min_ratio = 10;

export const append_256b_vs_sqlite: Benchmark = {
  name: "append_256b_vs_sqlite",
  unit: "events/s",
  description: `append() of ${append_payload_bytes} B payloads, sync=never; baseline: bun:sqlite WAL, synchronous=NORMAL, ${rows_per_transaction} rows per transaction, timed until closed (rows/s)`,
  target: { text: `ratio >= ${min_ratio}`, met: (r) => r.ratio !== null && r.ratio >= min_ratio },
  async run(ctx) {
    const rates = await never_rates(ctx);
    const sqlite = sqlite_rows_per_s(ctx);
    return { value: rates.log_events_per_s, baseline: sqlite, ratio: rates.log_events_per_s / sqlite };
  },
};

/** Inserts the same payloads as blobs, one transaction per rows_per_transaction rows. */
function sqlite_rows_per_s(ctx: BenchContext): number {
  const pool = payload_pool(append_payload_bytes);
  const mask = pool.length - 1;
  ctx.settle();
  const dir = ctx.fresh_dir("sqlite");
  const db = new Database(path.join(dir, "events.db"), { create: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("CREATE TABLE events (pos INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  const insert = db.prepare("INSERT INTO events (payload) VALUES (?)");
  const insert_many = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) insert.run(pool[i & mask]);
  });
  const started = performance.now();
  for (let i = 0; i < sqlite_rows; i += rows_per_transaction) insert_many(i, Math.min(sqlite_rows, i + rows_per_transaction));
  // Closing checkpoints the WAL into the database file; timed like the log's close, so both end with the bytes written.
  insert.finalize();
  db.close();
  const seconds = (performance.now() - started) / 1000;
  ctx.remove_dir(dir);
  const rate = sqlite_rows / seconds;
  ctx.progress(`bun:sqlite: ${(rate / 1e3).toFixed(0)} k rows/s (${sqlite_rows} rows in ${seconds.toFixed(2)} s)`);
  return rate;
}
