/**
 * The baseline scripts/measure-firmware.ts compares `interlog serve` with: the
 * least a compiled Bun program that answers HTTP does. Built with the same
 * flags for the same target, started the same way (it ignores its
 * arguments), it prints its URL as serve does and answers every request
 * (so /readyz) with 200.
 */
const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ ok: true }) });
process.stdout.write(`${JSON.stringify({ admin_url: `http://127.0.0.1:${server.port}` })}\n`);
process.once("SIGTERM", () => process.exit(0));
