import { Random } from "../../src/lib/random.ts";

/** Seed of the payload bytes, fixed so every run writes the same bytes. */
export const payload_seed = 0x1a7e106;

/**
 * A pool of distinct random payloads of one size, generated before timing
 * starts and cycled through, so the append loop allocates nothing and the
 * bytes do not compress or repeat within a page.
 */
export function payload_pool(size_bytes: number, count = 1024): Uint8Array[] {
  const rng = new Random(payload_seed ^ size_bytes);
  const all = rng.fill(new Uint8Array(size_bytes * count));
  const pool: Uint8Array[] = [];
  for (let i = 0; i < count; i++) pool.push(all.subarray(i * size_bytes, (i + 1) * size_bytes));
  return pool;
}
