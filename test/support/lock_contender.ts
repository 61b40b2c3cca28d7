/**
 * A process that tries to take a data directory's lock, for the lock race
 * test: prints "won" or "locked", holds what it got for hold_ms, then exits.
 * Usage: bun lock_contender.ts LOCK_FILE HOLD_MS
 */
import { is_interlog_error } from "../../src/lib/errors.ts";
import { DirLock } from "../../src/log/lock.ts";

const [file, hold_ms] = [process.argv[2], Number(process.argv[3] ?? 0)];
try {
  const lock = DirLock.acquire(file);
  console.log("won");
  await Bun.sleep(hold_ms);
  lock.release();
} catch (err) {
  if (!is_interlog_error(err, "DATA_DIR_LOCKED")) throw err;
  console.log("locked");
}
