/**
 * Invariant checks that stay on in production: a broken invariant in a storage
 * engine must stop the process before it writes something wrong.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = "AssertionError";
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
