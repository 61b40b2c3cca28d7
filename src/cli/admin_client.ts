import { load_config } from "../config/load.ts";
import { UsageError } from "./usage.ts";

/** Where a running replica's admin API is, from --url or --config, and the bearer token to use. */
export interface AdminTarget {
  url: string;
  headers: Record<string, string>;
}

export function admin_target(values: Record<string, string | boolean | undefined>, env = process.env): AdminTarget {
  const token_env = typeof values["token-env"] === "string" ? values["token-env"] : "INTERLOG_ADMIN_TOKEN";
  let url: string;
  let token = env[token_env] ?? "";
  if (typeof values.url === "string") {
    url = values.url.replace(/\/+$/, "");
  } else if (typeof values.config === "string") {
    const config = load_config(values.config, env);
    const host = config.admin.host.includes(":") ? `[${config.admin.host}]` : config.admin.host;
    url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${config.admin.port}`;
    token ||= config.admin.token ?? "";
  } else {
    throw new UsageError("give --url URL or --config FILE of the running replica");
  }
  return { url, headers: token === "" ? {} : { authorization: `Bearer ${token}` } };
}

export async function admin_fetch(target: AdminTarget, route: string, init: RequestInit = {}): Promise<Response> {
  try {
    const res = await fetch(`${target.url}${route}`, { ...init, headers: { ...target.headers, ...(init.headers as Record<string, string>) } });
    if (res.status === 401) throw new AdminUnreachable(`${target.url} refused the token (401); set it in $INTERLOG_ADMIN_TOKEN or use --token-env NAME`);
    if (!res.ok) throw new AdminUnreachable(`${target.url}${route} answered ${res.status}: ${await res.text()}`);
    return res;
  } catch (err) {
    if (err instanceof AdminUnreachable) throw err;
    throw new AdminUnreachable(`cannot reach the replica's admin API at ${target.url}: ${(err as Error).message}; is interlog serve running?`);
  }
}

/** The running replica could not be asked (exit 1). */
export class AdminUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdminUnreachable";
  }
}
