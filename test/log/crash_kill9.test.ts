import { describe, expect, test } from "bun:test";
import { Log } from "../../src/log/log.ts";
import { parse_event_id } from "../../src/log/ids.ts";
import { interlog_command } from "../support/serve_process.ts";
import { for_seeds } from "../support/seeded.ts";
import { dec, temp_dir } from "../support/temp_dir.ts";

/**
 * kill -9 of a real appender: `interlog append --sync always` prints an id
 * only once its event is durable. After SIGKILL at a seeded random moment,
 * every printed id must be in the log with its exact payload. (SIGKILL keeps
 * the page cache, so this proves frame and acknowledgement ordering; the
 * power-cut test covers fsync.)
 */
const rounds = Number(process.env.CRASH_ROUNDS ?? 12);

describe("crash with kill -9", () => {
  test("every acknowledged id survives SIGKILL at random moments", async () => {
    await for_seeds(1, async (rng) => {
      const dir = `${temp_dir()}/data`;
      const acked = new Map<number, string>();
      let origin = "";
      for (let round = 0; round < rounds; round++) {
        const batch = rng.pick([1, 1, 3, 16]);
        const child = Bun.spawn([...interlog_command(), "append", "--data-dir", dir, "--sync", "always", "--batch", String(batch)], {
          stdin: "pipe",
          stdout: "pipe",
          stderr: "pipe",
        });
        const sent: string[] = [];
        let printed = "";
        const reader = (async () => {
          for await (const chunk of child.stdout) printed += dec(chunk);
        })();
        const kill_after_ms = rng.int(100, 700);
        const started = Date.now();
        let i = 0;
        while (Date.now() - started < kill_after_ms && child.exitCode === null) {
          const lines: string[] = [];
          for (let k = rng.int(1, 40); k > 0; k--) lines.push(`r${round}-e${i++}-${"x".repeat(rng.int(0, 300))}`);
          sent.push(...lines);
          try {
            child.stdin.write(`${lines.join("\n")}\n`);
            await child.stdin.flush();
          } catch {
            break;
          }
          await Bun.sleep(rng.int(0, 5));
        }
        child.kill("SIGKILL");
        await child.exited;
        await reader;
        // The ids printed, in order, belong to the lines sent in order, after the seqs held before this round.
        const base = acked.size;
        const ids = printed.split("\n").filter((l) => l !== "");
        const log = await Log.open({ dir });
        // The replica's own id (a round may be killed before it prints any).
        origin = log.id;
        for (const [k, text] of ids.entries()) {
          const { origin: o, seq } = parse_event_id(text);
          expect(o).toBe(origin);
          expect(seq).toBe(base + k + 1);
          acked.set(seq, sent[k]);
        }
        for (const [seq, payload] of acked) expect(dec(log.get(origin, seq)!.payload)).toBe(payload);
        expect(log.verify().ok).toBe(true);
        expect(log.held(origin)).toBe(log.count);
        // Durable but unprinted events (killed between fsync and print) are kept too; they count as held from now on.
        for (let seq = acked.size + 1; seq <= log.held(origin); seq++) acked.set(seq, dec(log.get(origin, seq)!.payload));
        await log.close();
      }
      expect(acked.size).toBeGreaterThan(0);
    });
  });
});
