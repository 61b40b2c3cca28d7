// First: the Node globals the shared modules use while they load.
import "./shims.ts";
import { type BrokerSettings, BrowserReplica, type PageEvent, type PageStatus } from "./browser_replica.ts";
import { type Handler, TabRole } from "./tab_role.ts";

/**
 * The page's replica, as `window.interlog` (the contract the page and the
 * tests use). The writing tab runs the replica; another tab of the same
 * origin follows it (tab_role.ts): its calls go to the writer, and it shows
 * the state the writer broadcasts.
 */
export interface InterlogPage {
  append(data: string | Uint8Array): Promise<string>;
  read(from: number, limit: number): Promise<PageEvent[]>;
  count(): number;
  vv(): Record<string, number>;
  status(): PageStatus;
  connect(url: string, options?: Omit<BrokerSettings, "url">): Promise<void>;
  disconnect(): Promise<void>;
  on_change(listener: () => void): () => void;
}

interface SharedState {
  count: number;
  vv: Record<string, number>;
  status: PageStatus;
}

const db_name = "interlog";
const settings_key = "interlog.broker";
/** Changes are told (to listeners and follower tabs) at most this often: a catch-up changes the log every few ms. */
const change_debounce_ms = 200;
/** How often the writer looks for changes sync makes without new events (peers, link). */
const status_poll_ms = 1000;

function saved_settings(): BrokerSettings | null {
  try {
    const text = localStorage.getItem(settings_key);
    return text === null ? null : (JSON.parse(text) as BrokerSettings);
  } catch {
    return null;
  }
}

function save_settings(settings: BrokerSettings | null): void {
  // The password is kept with the rest so a reload reconnects; prefer a broker token scoped to this page (README).
  if (settings === null) localStorage.removeItem(settings_key);
  else localStorage.setItem(settings_key, JSON.stringify(settings));
}

function warn(message: string, details: Record<string, unknown>): void {
  console.warn(`interlog: ${message}`, details);
}

async function start(): Promise<InterlogPage> {
  // WebCrypto and Web Locks exist only in a secure context; say so instead of failing on an undefined.
  if ((globalThis as { isSecureContext?: boolean }).isSecureContext === false || globalThis.crypto?.subtle === undefined) {
    throw new Error("this page must be loaded over https:// (or from localhost): the browser offers its key store (WebCrypto) and tab locks only to secure pages");
  }
  const role = new TabRole(db_name);
  const listeners = new Set<() => void>();
  let replica: BrowserReplica | null = null;
  let change_due = false;
  let last_status = "";

  const state = (): SharedState => {
    if (replica !== null) return { count: replica.log.count, vv: replica.vv(), status: replica.status(true) };
    const shared = role.state as SharedState | null;
    return shared ?? { count: 0, vv: {}, status: { id: "", online: false, writer: false, persistent: null, broker: null, peers: [], events: 0 } };
  };
  const changed = (): void => {
    if (change_due) return;
    change_due = true;
    setTimeout(() => {
      change_due = false;
      if (replica !== null) role.publish_state(state());
      for (const l of listeners) l();
    }, change_debounce_ms);
  };
  role.on_state(changed);

  const handle: Handler = async (method, args) => {
    const r = replica as BrowserReplica;
    switch (method) {
      case "append":
        return await r.append(args[0] as string | Uint8Array);
      case "read":
        return r.read(args[0] as number, args[1] as number);
      case "connect": {
        const settings = args[0] as BrokerSettings;
        await r.connect(settings);
        save_settings(settings);
        changed();
        return null;
      }
      case "disconnect":
        await r.disconnect();
        save_settings(null);
        changed();
        return null;
      default:
        throw new Error(`unknown call ${method}`);
    }
  };

  await role.start(async () => {
    const opened = await BrowserReplica.open(db_name, warn);
    replica = opened;
    opened.log.on_durable(changed);
    setInterval(() => {
      const now = JSON.stringify(opened.status(true));
      if (now !== last_status) {
        last_status = now;
        changed();
      }
    }, status_poll_ms);
    const settings = saved_settings();
    if (settings !== null) await opened.connect(settings).catch((err: unknown) => warn("could not connect to the saved broker", { error: String(err) }));
    return handle;
  });

  const call = (method: string, args: unknown[]): Promise<unknown> => (replica !== null ? handle(method, args) : role.call(method, args));
  return {
    append: async (data) => (await call("append", [data])) as string,
    read: async (from, limit) => (await call("read", [from, limit])) as PageEvent[],
    count: () => state().count,
    vv: () => state().vv,
    status: () => ({ ...state().status, writer: replica !== null }),
    connect: async (url, options = {}) => void (await call("connect", [{ ...options, url }])),
    disconnect: async () => void (await call("disconnect", [])),
    on_change: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

const page = globalThis as unknown as { interlog?: InterlogPage; interlog_error?: string; dispatchEvent?: (e: Event) => boolean };
start().then(
  (api) => {
    page.interlog = api;
    page.dispatchEvent?.(new Event("interlog-ready"));
  },
  (err: unknown) => {
    page.interlog_error = err instanceof Error ? err.message : String(err);
    console.error("interlog: the replica did not start", err);
    page.dispatchEvent?.(new Event("interlog-error"));
  },
);
