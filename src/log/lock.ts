import fs from "node:fs";
import { InterlogError } from "../lib/errors.ts";
import { os_flock_exclusive } from "./os_flock.ts";

/**
 * One process owns a data directory: an exclusive flock(2) on the lock file,
 * held on an open descriptor for the life of the process. The kernel releases
 * it when the process dies, however it dies, so there is no stale lock to
 * judge, and two processes can never both hold it (the old check, remove and
 * recreate scheme let two in when they found a stale lock together). The
 * file is never removed (a waiter could lock the removed inode while another
 * process creates a new file); its content, the owner's pid, only serves the
 * message a second process shows.
 */
export class DirLock {
  private released = false;
  private constructor(private readonly fd: number) {}

  static acquire(file: string): DirLock {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    let held: boolean;
    try {
      held = os_flock_exclusive(fd);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (!held) {
      const pid = read_pid(fd);
      fs.closeSync(fd);
      throw new InterlogError(
        "DATA_DIR_LOCKED",
        `data directory is in use by ${pid === null ? "another process" : `pid ${pid}${pid === process.pid ? " (this process)" : ""}`}; stop that process or use another --data-dir`,
        { pid },
      );
    }
    const text = Buffer.from(`${JSON.stringify({ pid: process.pid })}\n`);
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, text, 0, text.length, 0);
    return new DirLock(fd);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    // Closing the descriptor releases the flock.
    fs.closeSync(this.fd);
  }
}

function read_pid(fd: number): number | null {
  try {
    const buf = Buffer.alloc(256);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const parsed = JSON.parse(buf.subarray(0, n).toString("utf8")) as { pid?: unknown };
    return typeof parsed.pid === "number" ? parsed.pid : null;
  } catch {
    // Empty or being written by its owner right now.
    return null;
  }
}
