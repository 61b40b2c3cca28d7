import { beforeAll, describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { Random } from "../../src/lib/random.ts";
import { for_seeds } from "../support/seeded.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { binary_builds, file_temp_dirs, run } from "./binary_fixture.ts";

/**
 * kill -9 of the compiled binary while HTTP clients append in `always` mode.
 * SIGKILL keeps the page cache, so this proves that an acknowledgement is
 * never sent before its frames are written and that recovery keeps whole
 * batches; power loss is covered by the simulated power cuts of test/log.
 */
const rounds = 3;
const writers = 8;

const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let bin = "";
beforeAll(async () => {
  bin = await binaries.get();
}, 120_000);

interface Attempt {
  payloads: string[];
  /** Ids from the 201 answer; null while unanswered or when the process died first. */
  ids: string[] | null;
}

interface EventsPage {
  events: { id: string; payload: string }[];
  next: number;
}

async function read_all(replica: ServeProcess): Promise<Map<string, string>> {
  const events = new Map<string, string>();
  for (let from = 0; ; ) {
    const page = (await (await replica.fetch(`/api/events?from=${from}&limit=1000`)).json()) as EventsPage;
    if (page.events.length === 0) return events;
    for (const e of page.events) events.set(e.id, Buffer.from(e.payload, "base64").toString());
    from = page.next;
  }
}

/** Writers post single events and CBOR batches until the process is killed after `kill_after_acks` answers. */
async function append_until_killed(replica: ServeProcess, round: number, kill_after_acks: number, rng: Random): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  let acked = 0;
  let killed = false;
  const writer = async (w: number, rng: Random) => {
    for (let n = 0; !killed; n++) {
      const size = rng.chance(0.5) ? 1 : rng.int(2, 20);
      const attempt: Attempt = { payloads: Array.from({ length: size }, (_, k) => `round ${round} writer ${w} request ${n} event ${k}/${size}`), ids: null };
      attempts.push(attempt);
      const init: RequestInit =
        size === 1
          ? { method: "POST", headers: { "content-type": "application/octet-stream" }, body: attempt.payloads[0] }
          : { method: "POST", headers: { "content-type": "application/cbor" }, body: encode(attempt.payloads.map((p) => new TextEncoder().encode(p))) };
      let res: Response;
      try {
        res = await replica.fetch("/api/events", init);
      } catch {
        return; // the process is gone: this request is unacknowledged
      }
      if (res.status !== 201) throw new Error(`append answered ${res.status}: ${await res.text()}`);
      attempt.ids = ((await res.json()) as { ids: string[] }).ids;
      acked++;
      if (acked >= kill_after_acks && !killed) {
        killed = true;
        replica.proc.kill("SIGKILL");
      }
    }
  };
  // One generator per writer: the kill point and each writer's batch sizes replay from the seed.
  await Promise.all(Array.from({ length: writers }, (_, w) => writer(w, new Random(rng.u32()))));
  expect(await replica.proc.exited).not.toBe(0);
  return attempts;
}

describe("the compiled binary killed with SIGKILL during HTTP appends (sync: always)", () => {
  test("after each restart every acknowledged event is there, and every batch is whole or absent", async () => {
    await for_seeds(1, async (rng) => {
      const dir = temp_dir();
      const config = write_config(dir, "interlog.yaml", `name: crash\ndata_dir: ./data\nlog:\n  sync: always\nadmin:\n  listen: 127.0.0.1:0\n`);
      const attempts: Attempt[] = [];
      for (let round = 0; round < rounds; round++) {
        const replica = await ServeProcess.start(config, { command: [bin] });
        attempts.push(...(await append_until_killed(replica, round, rng.int(50, 800), rng)));
      }
      const replica = await ServeProcess.start(config, { command: [bin] });
      const held = await read_all(replica);
      expect(await replica.stop()).toBe(0);

      let acked_events = 0;
      const present = new Set(held.values());
      for (const attempt of attempts) {
        if (attempt.ids !== null) {
          acked_events += attempt.ids.length;
          attempt.ids.forEach((id, k) => expect(held.get(id)).toBe(attempt.payloads[k]));
        }
        const kept = attempt.payloads.filter((p) => present.has(p)).length;
        expect(kept === 0 || kept === attempt.payloads.length).toBe(true);
      }
      expect(acked_events).toBeGreaterThan(rounds * 50);
      // The kills hit requests in flight, whose fate the clients never learned.
      expect(attempts.some((a) => a.ids === null)).toBe(true);
      // Seqs stay dense across the crashes: 1..N with nothing missing.
      const seqs = [...held.keys()].map((id) => Number(id.split(":")[1])).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));

      const verify = await run([bin, "verify", "--data-dir", `${dir}/data`]);
      expect(verify.code).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, events: held.size, first_bad: null });
    });
  });
});
