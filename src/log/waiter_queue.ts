/**
 * Promises waiting for a position to become durable, released in position
 * order. Positions only grow, so release pops from the front.
 */
interface Waiter {
  pos: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class WaiterQueue {
  private items: Waiter[] = [];
  private head = 0;

  wait(pos: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.items.push({ pos, resolve, reject }));
  }

  get pending(): boolean {
    return this.head < this.items.length;
  }

  /** Resolves every waiter whose pos <= done. */
  release(done: number): void {
    const items = this.items;
    let head = this.head;
    while (head < items.length && items[head].pos <= done) {
      items[head].resolve();
      head++;
    }
    if (head === items.length) {
      this.items = [];
      head = 0;
    } else if (head > 1024 && head * 2 > items.length) {
      this.items = items.slice(head);
      head = 0;
    }
    this.head = head;
  }

  reject_all(err: Error): void {
    const items = this.items;
    for (let i = this.head; i < items.length; i++) items[i].reject(err);
    this.items = [];
    this.head = 0;
  }
}
