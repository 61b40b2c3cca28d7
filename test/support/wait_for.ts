/** Polls `probe` every 50 ms until it returns non-null; bounded, and names what it waited for when it gives up. */
export async function wait_for<T>(what: string, probe: () => Promise<T | null>, timeout_ms = 30_000): Promise<T> {
  const deadline = Date.now() + timeout_ms;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(50);
  }
}
