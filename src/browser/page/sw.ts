/**
 * The page's service worker: keeps the page's files so it loads with no
 * network once it has loaded. Cache first (a phone on a bad link gets the
 * page at once), and each load fetches the files again in the background
 * for the next one. The replica's data is in IndexedDB, not here.
 *
 * scripts/browser.ts defines INTERLOG_BUILD_ID (a hash of the other built
 * files): a new build changes this script's bytes, so the browser installs
 * it, and its cache of that build replaces the old one at activate.
 */

declare const INTERLOG_BUILD_ID: string;

// A module, so the names below stay out of the project's global scope when type-checked.
export {};

/** The service worker scope, typed just enough (the project's lib has no WebWorker types). */
interface SwExtendableEvent {
  waitUntil(work: Promise<unknown>): void;
}
interface SwFetchEvent extends SwExtendableEvent {
  request: Request;
  respondWith(response: Promise<Response>): void;
}
interface SwCache {
  addAll(requests: Request[]): Promise<void>;
  match(request: Request | string, options?: { ignoreSearch?: boolean }): Promise<Response | undefined>;
  put(request: string, response: ReturnType<Response["clone"]>): Promise<void>;
}
interface SwScope {
  location: { href: string };
  caches: { open(name: string): Promise<SwCache>; keys(): Promise<string[]>; delete(name: string): Promise<boolean> };
  clients: { claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: "install" | "activate", listener: (event: SwExtendableEvent) => void): void;
  addEventListener(type: "fetch", listener: (event: SwFetchEvent) => void): void;
}

const sw = globalThis as unknown as SwScope;

const cache_prefix = "interlog-app-";
const cache_name = `${cache_prefix}${INTERLOG_BUILD_ID}`;

/** The page's files, next to this script; "./" is what a visit to the page asks for. This script itself is the browser's to update. */
const page_files = ["./", "./index.html", "./app.js", "./ui.js"].map((name) => new URL(name, sw.location.href).href);
const page_urls = new Set(page_files);

sw.addEventListener("install", (event) => {
  // no-cache: the files of this build, not copies the HTTP cache kept from the last one.
  const requests = page_files.map((url) => new Request(url, { cache: "no-cache" }));
  event.waitUntil(
    sw.caches
      .open(cache_name)
      .then((cache) => cache.addAll(requests))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener("activate", (event) => {
  event.waitUntil(
    sw.caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name.startsWith(cache_prefix) && name !== cache_name).map((name) => sw.caches.delete(name))))
      // The page that registered this worker is served by it from now on, not only after its next load.
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  const key = `${url.origin}${url.pathname}`;
  // Anything else (source maps, other paths of the server) goes to the network as if there were no worker.
  if (!page_urls.has(key)) return;
  event.respondWith(cache_first(event, key));
});

async function cache_first(event: SwFetchEvent, key: string): Promise<Response> {
  const cache = await sw.caches.open(cache_name);
  const cached = await cache.match(key, { ignoreSearch: true });
  const update = fetch(event.request).then(async (response) => {
    // A redirected or opaque response cannot answer a navigation later; keep what was cached.
    if (response.ok && !response.redirected && response.type === "basic") await cache.put(key, response.clone());
    return response;
  });
  if (cached === undefined) return update;
  // Offline, the update fails; the cached copy has answered already.
  event.waitUntil(update.catch(() => undefined));
  return cached;
}
