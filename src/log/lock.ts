import fs from "node:fs";
import { InterlogError } from "../lib/errors.ts";

/**
 * One process owns a data directory. The lock file holds the owner's pid and
 * its start time from /proc, so a lock left by a crashed process is taken
 * over even when, after a reboot, another program got the same pid.
 */
interface LockOwner {
  pid: number;
  start_ticks: string | null;
}

function process_start_ticks(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22 (starttime) comes after the command name, which may hold spaces and parentheses.
    const after_comm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return after_comm[19] ?? null;
  } catch {
    return null;
  }
}

function is_alive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  if (owner.start_ticks === null) return true;
  const ticks = process_start_ticks(owner.pid);
  return ticks === null || ticks === owner.start_ticks;
}

function read_owner(file: string): LockOwner | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<LockOwner>;
    if (typeof parsed.pid !== "number") return null;
    return { pid: parsed.pid, start_ticks: typeof parsed.start_ticks === "string" ? parsed.start_ticks : null };
  } catch {
    return null;
  }
}

export class DirLock {
  private released = false;
  private constructor(private readonly file: string) {}

  static acquire(file: string): DirLock {
    const me: LockOwner = { pid: process.pid, start_ticks: process_start_ticks(process.pid) };
    const text = JSON.stringify(me);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(file, text, { flag: "wx" });
        return new DirLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = read_owner(file);
      if (owner !== null && is_alive(owner)) {
        throw new InterlogError(
          "DATA_DIR_LOCKED",
          `data directory is in use by pid ${owner.pid}${owner.pid === process.pid ? " (this process)" : ""}; stop that process or use another --data-dir`,
          { pid: owner.pid },
        );
      }
      // Stale (owner dead or unreadable half-written file): replace it and retry the exclusive create.
      fs.rmSync(file, { force: true });
    }
    throw new InterlogError("DATA_DIR_LOCKED", `could not take the lock ${file}; another process keeps taking it`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    const owner = read_owner(this.file);
    if (owner?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
