import type { MiddlewareHandler } from "hono";
import { error_response } from "./http_errors.ts";

/**
 * Refuses requests a browser was tricked into sending (DNS rebinding,
 * cross-site pages). Not authentication: any program can send any header;
 * the token is what keeps other programs out.
 *
 * Host: a page at http://evil.example:8080 whose name the attacker then
 * points at 127.0.0.1 talks to this API as its own origin, but its requests
 * still say `Host: evil.example:8080`. Answered are only IP literals (a
 * browser sends one only when the page was opened by that address, which a
 * rebinding page is not), loopback names and the names in `allowed`.
 *
 * Origin: on anything but GET/HEAD, and on the event stream (which holds a
 * slot), a browser names the page that made the request; it must be this
 * replica itself (the Host it asked), a loopback name or an allowed name.
 *
 * /healthz stays open for supervisors that probe by any name; it says only
 * {"ok":true}.
 */
export function host_guard(allowed: readonly string[]): MiddlewareHandler {
  const names = new Set(allowed.map(normalize_host_name));
  return async (c, next) => {
    if (c.req.path === "/healthz") return next();
    const authority = c.req.header("host") ?? new URL(c.req.url).host;
    const host = host_name_of(authority);
    if (host === null || !(is_ip_literal(host) || is_loopback_name(host) || names.has(host))) {
      return error_response(
        c,
        403,
        "HOST_NOT_ALLOWED",
        `this replica does not answer to the name ${JSON.stringify(host ?? authority)} (the request's Host header): a web page reached under a foreign name may be a DNS-rebinding attack. If you reach this replica by that name, add it to admin.allowed_hosts in the config and restart serve`,
      );
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && (!safe_method(c.req.method) || c.req.path === "/api/events/stream")) {
      const from = origin_host(origin);
      const same = from !== null && from.host === authority.trim().toLowerCase();
      if (from === null || !(same || is_loopback_name(from.name) || names.has(from.name))) {
        const add = from === null ? "" : `, or add ${from.name} to admin.allowed_hosts if that page may use this API`;
        return error_response(
          c,
          403,
          "ORIGIN_NOT_ALLOWED",
          `requests made by the web page at ${JSON.stringify(origin)} are refused: it is not this replica's own page (a cross-site request). Use the dashboard at this replica's address${add}`,
        );
      }
    }
    return next();
  };
}

function safe_method(method: string): boolean {
  return method === "GET" || method === "HEAD";
}

/** Lowercase, without the trailing dot of a fully qualified name. */
export function normalize_host_name(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** The host of a Host header (`name`, `name:port`, `[v6]:port`), normalized; null when malformed. */
export function host_name_of(authority: string): string | null {
  const a = authority.trim().toLowerCase();
  if (a.startsWith("[")) {
    const end = a.indexOf("]");
    if (end < 0 || !/^(?::\d{1,5})?$/.test(a.slice(end + 1))) return null;
    return a.slice(0, end + 1);
  }
  const m = /^([a-z0-9._-]+)(?::\d{1,5})?$/.exec(a);
  return m === null ? null : normalize_host_name(m[1]);
}

/** A dotted-quad IPv4 address or a bracketed IPv6 one, as browsers write them in Host and Origin. */
function is_ip_literal(host: string): boolean {
  if (host.startsWith("[")) return true;
  const parts = host.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function is_loopback_name(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** An Origin header's `host[:port]` and its host name, normalized; null for "null", other schemes and garbage. */
function origin_host(origin: string): { host: string; name: string } | null {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return { host: url.host.toLowerCase(), name: normalize_host_name(url.hostname) };
}
