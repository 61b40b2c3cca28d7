import type { Hono } from "hono";
import { parse_listen } from "./auth.ts";

export interface AdminServer {
  hostname: string;
  /** The bound port (the real one when listen asked for port 0). */
  port: number;
  /** http://host:port, for logs and clients. */
  url: string;
  /** Stops listening and closes open connections (SSE tails included). */
  stop(): Promise<void>;
}

/**
 * Serves the admin app with Bun.serve on `listen` (host:port). The caller
 * checks check_listen_allowed first; this only binds.
 */
export function start_admin_server(options: {
  app: Hono;
  listen: string;
  /** Seconds a connection may sit idle (Bun's default 10); SSE tails are exempt. */
  idle_timeout_s?: number;
}): AdminServer {
  const { hostname, port } = parse_listen(options.listen);
  const server = Bun.serve({ hostname, port, idleTimeout: options.idle_timeout_s ?? 10, fetch: options.app.fetch });
  const bound = server.port;
  if (bound === undefined) throw new Error("Bun.serve bound no TCP port");
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    hostname,
    port: bound,
    url: `http://${host}:${bound}`,
    stop: async () => {
      await server.stop(true);
    },
  };
}
