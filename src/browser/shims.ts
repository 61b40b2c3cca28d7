import { Buffer } from "node:buffer";

/**
 * The two Node globals the shared code uses, for the page: Buffer (the
 * bundler's polyfill; mqtt.js and the wire code take Buffers) and
 * setImmediate (a MessageChannel turn: setTimeout(0) is clamped to 4 ms
 * after a few nestings, which would slow every group commit). Imported
 * first by the page's entry, before any module that needs them runs.
 */
const g = globalThis as unknown as { Buffer?: typeof Buffer; setImmediate?: (fn: (...args: unknown[]) => void, ...args: unknown[]) => unknown };
g.Buffer ??= Buffer;

if (g.setImmediate === undefined) {
  const queue: (() => void)[] = [];
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    // Only what was queued before this turn: a callback that queues another runs it in the next turn, as in Node.
    const batch = queue.splice(0);
    for (const fn of batch) fn();
  };
  g.setImmediate = (fn, ...args) => {
    if (queue.length === 0) channel.port2.postMessage(0);
    queue.push(() => fn(...args));
    return queue.length;
  };
}
