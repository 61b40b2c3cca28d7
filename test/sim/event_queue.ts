/**
 * The simulator's agenda: actions ordered by simulated time, ties broken by
 * insertion order, so a seed always replays the same interleaving.
 */
interface Item<T> {
  at_ms: number;
  order: number;
  value: T;
}

export class EventQueue<T> {
  private heap: Item<T>[] = [];
  private counter = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at_ms: number, value: T): void {
    const item = { at_ms, order: this.counter++, value };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  peek_time(): number {
    return this.heap.length === 0 ? Number.POSITIVE_INFINITY : this.heap[0].at_ms;
  }

  pop(): { at_ms: number; value: T } | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as Item<T>;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return { at_ms: top.at_ms, value: top.value };
  }
}

function before<T>(a: Item<T>, b: Item<T>): boolean {
  return a.at_ms < b.at_ms || (a.at_ms === b.at_ms && a.order < b.order);
}
