import { expect, test } from "bun:test";
import { Log } from "../../src/log/log.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { for_seeds } from "../support/seeded.ts";
import { AcknowledgedNotLost, DurableVvMonotonic, HeldAsWritten, HoldsOnlyPulledOrigins, type ReplicaView, WriteRecord } from "./checkers.ts";
import { Simulation } from "./simulator.ts";

/**
 * The seeded simulator (see simulator.ts): many replicas, a faulty network,
 * crashes and power cuts; after the faults stop every replica must hold
 * exactly what it pulls. SIM_SEEDS=5000 for a long run; SEED=n replays one.
 */
const seeds = Number(process.env.SIM_SEEDS ?? 200);

test(`replicas converge after drops, duplicates, reordering, partitions, crashes, power cuts and Byzantine peers (${seeds} seeds)`, async () => {
  let events = 0;
  let crashes = 0;
  // What the Byzantine client's forgeries cost it, summed over seeds: each kind must have been tried and refused.
  const refused = { bad_signature: 0, unknown_key: 0, partial_range: 0, unsolicited_answer: 0 };
  await for_seeds(seeds, async (rng) => {
    const report = await new Simulation(rng.seed).run();
    events += report.events;
    crashes += report.crashes;
    for (const c of report.counters) {
      refused.bad_signature += c.events_dropped.bad_signature;
      refused.unknown_key += c.events_dropped.unknown_key;
      refused.partial_range += c.events_dropped.partial_range;
      refused.unsolicited_answer += c.dropped.unsolicited_answer;
    }
  });
  expect(events).toBeGreaterThan(0);
  // Over many seeds every fault and forgery kind must have happened (not when SEED replays one).
  const replaying = (process.env.SEED ?? "") !== "";
  if (seeds >= 50 && !replaying) {
    expect(crashes).toBeGreaterThan(0);
    expect(refused.bad_signature).toBeGreaterThan(0);
    expect(refused.unknown_key).toBeGreaterThan(0);
    expect(refused.partial_range).toBeGreaterThan(0);
    expect(refused.unsolicited_answer).toBeGreaterThan(0);
  }
}, 1_800_000);

test("a seed replays exactly", async () => {
  await for_seeds(3, async (rng) => {
    const a = await new Simulation(rng.seed).run();
    const b = await new Simulation(rng.seed).run();
    expect(b).toEqual(a);
  });
});

test("each checker fails, naming its invariant and the replica, when the invariant breaks", async () => {
  const open = () => Log.open({ dir: "/data", io: new MemFileIO(), segment_size_bytes: 64 * 1024, clock: { now_ms: () => 7 } });
  const log = await open();
  const empty = await open();
  const payloads = [new Uint8Array([1, 2]), new Uint8Array([3])];
  const writes = new WriteRecord();
  writes.record(log.id, log.append_batch(payloads), payloads, 7);
  await log.durable();
  const context = { seed: 1, step: 2, sim_ms: 3, action: () => "restart replica 0" };
  const view = (v: Partial<ReplicaView>): ReplicaView[] => [{ index: 0, id: log.id, log, incarnation: 1, pull: "*", ...v }];
  // A restart that comes back without the acknowledged events (here: another, empty log).
  const lost = view({ log: empty, incarnation: 2 });
  const acked = new AcknowledgedNotLost(writes);
  acked.check(view({}), context);
  expect(() => acked.check(lost, context)).toThrow(/"acknowledged events are never lost" broken at replica 0 .*seq 1 is gone[^]*seed 1, step 2 \(restart replica 0\)/);
  const durable_vv = new DurableVvMonotonic([log.id]);
  durable_vv.check(view({}), context);
  expect(() => durable_vv.check(lost, context)).toThrow(/"the durable vv never shrinks" broken at replica 0 .*went from 2 to 0 across the restart/);
  const other = "00000000000000aa";
  expect(() => new HoldsOnlyPulledOrigins([log.id, other]).check(view({ id: other, pull: [] }), context)).toThrow(
    /"no replica holds an origin it does not pull" broken at replica 0 \(00000000000000aa\).*holds 2 events of/,
  );
  expect(() => new HoldsOnlyPulledOrigins([other]).check(view({ id: other }), context)).toThrow(/which is no replica of the simulation/);
  const rewritten = new WriteRecord();
  rewritten.record(log.id, 1, [payloads[0], new Uint8Array([4])], 7);
  expect(() => new HeldAsWritten([log.id], rewritten, () => false).check(view({}), context)).toThrow(
    /"no replica holds an event its origin did not write" broken .*:2 at pos 1 differs/,
  );
  for (const checker of [new AcknowledgedNotLost(writes), new DurableVvMonotonic([log.id]), new HeldAsWritten([log.id], writes, () => false)]) {
    checker.check(view({}), context);
  }
  await log.close();
  await empty.close();
});
