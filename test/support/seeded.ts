import { Random, seed_from_env } from "../../src/lib/random.ts";

/**
 * Runs `body` once per seed. The seeds come from SEED (one seed, to replay a
 * failure) or start at a random base; a failure names its seed.
 */
export async function for_seeds(count: number, body: (rng: Random) => Promise<void> | void): Promise<void> {
  const fixed = process.env.SEED;
  const seeds = fixed !== undefined && fixed !== "" ? [Number(fixed) >>> 0] : Array.from({ length: count }, (_, i) => (seed_from_env() + i) >>> 0);
  for (const seed of seeds) {
    try {
      await body(new Random(seed));
    } catch (err) {
      const message = `failed with SEED=${seed} (replay: SEED=${seed} bun test <this file>)`;
      console.error(message);
      if (err instanceof Error) err.message = `${message}\n${err.message}`;
      throw err;
    }
  }
}
