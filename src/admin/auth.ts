import type { MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { InterlogError } from "../lib/errors.ts";
import { error_body } from "./http_errors.ts";

/** What hono's bearer-auth accepts as a token (RFC 6750 b64token); any other token could never match. */
const token_pattern = /^[A-Za-z0-9._~+/-]+=*$/;

/** Throws CONFIG_INVALID when a token could never be presented in an Authorization header. */
export function check_token(token: string): void {
  if (!token_pattern.test(token)) {
    throw new InterlogError(
      "CONFIG_INVALID",
      "the admin token may contain only letters, digits and . _ ~ + / - (optionally ending in =); generate one with: openssl rand -base64 32",
    );
  }
}

/** Bearer-token check with the API's JSON error bodies. */
export function bearer_guard(token: string): MiddlewareHandler {
  check_token(token);
  return bearerAuth({
    token,
    noAuthenticationHeader: { message: error_body("UNAUTHORIZED", "this API needs the admin token: send Authorization: Bearer <token>") },
    invalidAuthenticationHeader: { message: error_body("BAD_REQUEST", "the Authorization header must be: Bearer <token>") },
    invalidToken: { message: error_body("UNAUTHORIZED", "wrong admin token") },
  });
}

export interface ListenAddress {
  hostname: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port`; the port may be 0 (any free port). */
export function parse_listen(listen: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new InterlogError("CONFIG_INVALID", `admin.listen "${listen}" is not host:port; write e.g. 127.0.0.1:8080 or [::1]:8080`);
  }
  const hostname = m[1] ?? m[2];
  if (hostname === "") throw new InterlogError("CONFIG_INVALID", `admin.listen "${listen}" has no host; write 127.0.0.1:${port} (or 0.0.0.0:${port} with a token)`);
  return { hostname, port };
}

export function is_loopback_host(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses (CONFIG_INVALID) to expose the admin API beyond this machine
 * without a token: anyone on the network could append events.
 */
export function check_listen_allowed(listen: string, token: string | undefined): void {
  const { hostname } = parse_listen(listen);
  if (token !== undefined && token !== "") {
    check_token(token);
    return;
  }
  if (!is_loopback_host(hostname)) {
    throw new InterlogError(
      "CONFIG_INVALID",
      `admin.listen is ${listen}, beyond this machine, but no admin token is set; set one in the environment variable named by admin.token_env, or listen on 127.0.0.1`,
    );
  }
}
