import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * The data directory lock against real processes: an OS lock (flock) held
 * for the life of the process, so a crash releases it and two processes can
 * never both hold it, whatever a leftover lock file says.
 */
const contender = path.join(import.meta.dir, "..", "support", "lock_contender.ts");
const bun = process.execPath;

function contend(lock_file: string, hold_ms: number) {
  return Bun.spawn([bun, contender, lock_file, String(hold_ms)], { stdout: "pipe", stderr: "inherit" });
}

async function outcome(proc: ReturnType<typeof contend>): Promise<string> {
  const out = (await new Response(proc.stdout).text()).trim();
  expect(await proc.exited).toBe(0);
  return out;
}

describe("data directory lock", () => {
  test("many processes against a stale lock file: exactly one wins, in every round", async () => {
    const rounds = 5;
    const contenders = 6;
    for (let round = 0; round < rounds; round++) {
      const lock_file = path.join(temp_dir(), "lock");
      // A leftover from a crashed owner: a dead pid, or (odd rounds) an empty file just created.
      fs.writeFileSync(lock_file, round % 2 === 0 ? JSON.stringify({ pid: 2 ** 22 + 1 }) : "");
      const procs = Array.from({ length: contenders }, () => contend(lock_file, 2_000));
      const results = await Promise.all(procs.map(outcome));
      expect(results.filter((r) => r === "won").length).toBe(1);
      expect(results.filter((r) => r === "locked").length).toBe(contenders - 1);
    }
  }, 60_000);

  test("a holder killed with SIGKILL releases the lock at once, and the next process names no stale owner", async () => {
    const lock_file = path.join(temp_dir(), "lock");
    const holder = contend(lock_file, 60_000);
    const reader = holder.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first.trim()).toBe("won");
    expect(await outcome(contend(lock_file, 0))).toBe("locked");
    holder.kill("SIGKILL");
    await holder.exited;
    expect(await outcome(contend(lock_file, 0))).toBe("won");
  }, 60_000);
});
