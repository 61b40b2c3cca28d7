import { expect, test } from "bun:test";
import { for_seeds } from "../support/seeded.ts";
import { Simulation } from "./simulator.ts";

/**
 * The seeded simulator (see simulator.ts): many replicas, a faulty network,
 * crashes and power cuts; after the faults stop every replica must hold
 * exactly what it pulls. SIM_SEEDS=5000 for a long run; SEED=n replays one.
 */
const seeds = Number(process.env.SIM_SEEDS ?? 200);

test(`replicas converge after drops, duplicates, reordering, partitions, crashes and power cuts (${seeds} seeds)`, async () => {
  let events = 0;
  let crashes = 0;
  await for_seeds(seeds, async (rng) => {
    const report = await new Simulation(rng.seed).run();
    events += report.events;
    crashes += report.crashes;
  });
  expect(events).toBeGreaterThan(0);
  if (seeds >= 50) expect(crashes).toBeGreaterThan(0);
}, 1_800_000);

test("a seed replays exactly", async () => {
  await for_seeds(3, async (rng) => {
    const a = await new Simulation(rng.seed).run();
    const b = await new Simulation(rng.seed).run();
    expect(b).toEqual(a);
  });
});
