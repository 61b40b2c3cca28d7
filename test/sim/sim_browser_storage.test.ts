import { expect, test } from "bun:test";
import { for_seeds } from "../support/seeded.ts";
import { Simulation } from "./simulator.ts";

/**
 * The seeded simulator (simulator.ts) with browser tabs among the replicas:
 * their logs on PagedFileIO over an in-memory IndexedDB, each crash a closed
 * tab. The safety checkers run after every step and the replicas must
 * converge, as on disks. SIM_SEEDS=500 for a long run; SEED=n replays one.
 */
const seeds = Number(process.env.SIM_SEEDS ?? 30);

test(`browser replicas converge with disk replicas through crashes, closed tabs and a faulty network (${seeds} seeds)`, async () => {
  let events = 0;
  let crashes = 0;
  await for_seeds(seeds, async (rng) => {
    // Crashes always on, so every seed closes tabs; two of the five or six replicas are tabs.
    const report = await new Simulation(rng.seed, { browser_replicas: 2, crash_every_ms: 3_000 }).run();
    expect(report.store_commits).toBeGreaterThan(0);
    events += report.events;
    crashes += report.crashes;
  });
  expect(events).toBeGreaterThan(0);
  if ((process.env.SEED ?? "") === "") expect(crashes).toBeGreaterThan(0);
}, 1_800_000);

test("a seed with browser replicas replays exactly", async () => {
  await for_seeds(2, async (rng) => {
    const a = await new Simulation(rng.seed, { browser_replicas: 3 }).run();
    const b = await new Simulation(rng.seed, { browser_replicas: 3 }).run();
    expect(b).toEqual(a);
  });
});
