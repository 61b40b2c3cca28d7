import fc from "fast-check";

/**
 * Seeded property runs with fast-check. Every property runs with a fixed
 * seed by default, so `npm test` checks the same inputs every time; the
 * environment widens or replays a run:
 *
 * - FUZZ_RUNS=N: N runs per property instead of each property's default
 *   (the defaults keep all of test/fuzz well under 20 s).
 * - FUZZ_SEED=S: another seed (an integer), or `random` for a new one each
 *   run (printed). A failure prints the seed and the shrunk counterexample.
 * - FUZZ_PATH=P: with FUZZ_SEED, replays just the counterexample at the
 *   shrink path a failure printed (select that one test with -t: the path
 *   means nothing to the other properties).
 */
export const fuzz_seed_default = 20240612;

function env_int(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name}=${text} is not an integer`);
  return value;
}

function pick_seed(): number {
  const text = process.env.FUZZ_SEED;
  if (text === "random") return (Date.now() ^ (Math.random() * 0x100000000)) | 0;
  return env_int("FUZZ_SEED") ?? fuzz_seed_default;
}

/** The seed of this process's properties (the same for all of them, so one value replays a failure). */
export const fuzz_seed = pick_seed();
/** FUZZ_RUNS when set: every property runs that many times. */
export const fuzz_runs_override = env_int("FUZZ_RUNS");
const fuzz_path = process.env.FUZZ_PATH !== undefined && process.env.FUZZ_PATH !== "" ? process.env.FUZZ_PATH : undefined;
/** Replaying one counterexample (FUZZ_PATH): checks that the generators reached enough cases do not apply. */
export const fuzz_replaying = fuzz_path !== undefined;

/** A per-test timeout: npm test's for the usual runs, none to speak of when FUZZ_RUNS asks for a long run. */
export const fuzz_timeout_ms = fuzz_runs_override === undefined ? 120_000 : 24 * 3600 * 1000;

/** Runs for a property whose default is `default_runs`. */
export function fuzz_runs(default_runs: number): number {
  return fuzz_runs_override ?? default_runs;
}

let announced = false;

function params<Ts>(name: string, default_runs: number): fc.Parameters<Ts> {
  const num_runs = fuzz_runs(default_runs);
  if (!announced) {
    announced = true;
    console.log(`fuzz: FUZZ_SEED=${fuzz_seed}${fuzz_runs_override === undefined ? "" : ` FUZZ_RUNS=${fuzz_runs_override}`}`);
  }
  if (process.env.FUZZ_VERBOSE) console.log(`fuzz: ${name}: ${num_runs} runs, seed ${fuzz_seed}`);
  return { seed: fuzz_seed, numRuns: num_runs, ...(fuzz_path === undefined ? {} : { path: fuzz_path }), endOnFailure: false };
}

function failure(name: string, report: string | undefined, details: fc.RunDetails<unknown>): Error {
  const replay = `FUZZ_SEED=${details.seed}${details.counterexamplePath === null ? "" : ` FUZZ_PATH=${details.counterexamplePath}`}`;
  const cause = details.errorInstance;
  const why = cause instanceof Error ? (cause.stack ?? `${cause.name}: ${cause.message}`) : String(cause);
  const message = `fuzz property "${name}" failed (replay: ${replay} bun test <this file> -t "<this test>")\n${report ?? "(no report)"}\nThe property failed with: ${why}`;
  const err = new Error(message);
  if (details.errorInstance !== null) err.cause = details.errorInstance;
  return err;
}

/**
 * Checks a synchronous property `default_runs` times (or FUZZ_RUNS) with the
 * fixed seed; on failure throws an error naming the seed, the shrink path
 * and the shrunk counterexample.
 */
export function fuzz<Ts>(name: string, property: fc.IProperty<Ts>, default_runs: number): void {
  const details = fc.check(property, params<Ts>(name, default_runs));
  if (details.failed) throw failure(name, fc.defaultReportMessage(details), details as fc.RunDetails<unknown>);
}

/** fuzz for an asynchronous property. */
export async function fuzz_async<Ts>(name: string, property: fc.IAsyncProperty<Ts>, default_runs: number): Promise<void> {
  const details = await fc.check(property, params<Ts>(name, default_runs));
  if (details.failed) throw failure(name, await fc.asyncDefaultReportMessage(details), details as fc.RunDetails<unknown>);
}
