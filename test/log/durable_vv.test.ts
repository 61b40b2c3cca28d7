import { describe, expect, test } from "bun:test";
import { DurableVv } from "../../src/log/durable_vv.ts";

const a = "00000000000000a1";
const b = "00000000000000b2";

describe("durable version vector", () => {
  test("a batch counts only once the durable position passes its end", () => {
    const vv = new DurableVv(new Map([[a, 3]]), 3);
    vv.note_batch(5, a, 5, 3);
    vv.note_batch(6, b, 1, 3);
    vv.catch_up(4);
    expect(vv.get(a)).toBe(3);
    vv.catch_up(5);
    expect(vv.get(a)).toBe(5);
    expect(vv.get(b)).toBe(0);
    vv.catch_up(6);
    expect(vv.snapshot()).toEqual(new Map([[a, 5], [b, 1]]));
  });

  test("a snapshot is a copy: what the caller does with it never changes the vv", () => {
    const vv = new DurableVv(new Map([[a, 1]]), 1);
    vv.snapshot().set(a, 99);
    expect(vv.get(a)).toBe(1);
  });

  test("many batches never applied stay bounded and are all applied at the end", () => {
    const vv = new DurableVv(new Map(), 0);
    for (let i = 1; i <= 20_000; i++) {
      vv.note_batch(i, a, i, Math.floor(i / 2));
    }
    vv.catch_up(20_000);
    expect(vv.get(a)).toBe(20_000);
  });

  test("the durable position going backwards is refused", () => {
    const vv = new DurableVv(new Map(), 0);
    vv.note_batch(2, a, 2, 0);
    vv.catch_up(2);
    expect(() => vv.catch_up(1)).toThrow("the durable position only grows");
  });

  test("batches noted out of position order are refused", () => {
    const vv = new DurableVv(new Map(), 0);
    vv.note_batch(4, a, 4, 0);
    expect(() => vv.note_batch(3, b, 1, 0)).toThrow("batches are noted in position order");
  });
});
