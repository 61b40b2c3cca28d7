import path from "node:path";
import type { Page } from "playwright-core";
import type { ServeProcess } from "../../test/support/serve_process.ts";
import { launch_tab_browser, open_tab, page_build_dir, start_serve, stop_serve, type TabGlobals } from "./browser_harness.ts";
import { payload_seed } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const payload_bytes = 256;
/** Concurrent appends awaited together: one group commit, one IndexedDB transaction. */
const batch_events = 100;
const events_total = 40_000;
/** The two writers take turns, so drift on the machine (other work, the disk's writeback) hits both alike. */
const rounds = 4;
const warmup_events = 1_000;
/** After each round: the page's own reaction to the appends (its list re-rendered) is over before the other writer runs. */
const settle_ms = 500;

/** What the page needs to build its payloads and run one round of one writer. */
interface RoundArgs {
  writer: "interlog" | "raw";
  events: number;
  batch: number;
  payload_bytes: number;
  seed: number;
  /** The raw writer's first key: every round writes new keys. */
  key_from: number;
}

interface RoundResult {
  ms: number;
  /** The raw writer's next free key. */
  key_next: number;
}

/**
 * One round in the page: `events` appends of `payload_bytes`, `batch` at a
 * time, timed with the page's clock. "interlog" calls window.interlog.append
 * `batch` times in one turn and awaits them together; "raw" writes the same
 * bytes straight to IndexedDB, one readwrite transaction with durability
 * "strict" per batch holding ONE put of the batch's payloads concatenated
 * (the least IndexedDB work that makes a batch durable).
 *
 * Runs inside Chromium: it uses only what it is given and the page's globals.
 */
async function tab_round(args: RoundArgs): Promise<RoundResult> {
  interface IdbRequest<T> {
    readonly result: T;
    readonly error: Error | null;
    onsuccess: (() => void) | null;
    onerror: (() => void) | null;
    onupgradeneeded: (() => void) | null;
  }
  interface IdbTransaction {
    readonly error: Error | null;
    objectStore(name: string): { put(value: unknown, key: number): unknown };
    commit?(): void;
    oncomplete: (() => void) | null;
    onabort: (() => void) | null;
  }
  interface IdbDatabase {
    readonly objectStoreNames: { contains(name: string): boolean };
    createObjectStore(name: string): unknown;
    transaction(store: string, mode: "readwrite", options: { durability: "strict" }): IdbTransaction;
    close(): void;
  }
  const g = globalThis as unknown as TabGlobals & { indexedDB: { open(name: string, version: number): IdbRequest<IdbDatabase> } };
  // Distinct random payloads (xorshift32), each in a buffer of its own.
  let x = args.seed | 1;
  const pool: Uint8Array[] = [];
  for (let p = 0; p < 256; p++) {
    const bytes = new Uint8Array(args.payload_bytes);
    for (let i = 0; i < bytes.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes[i] = x & 0xff;
    }
    pool.push(bytes);
  }
  const mask = pool.length - 1;

  if (args.writer === "interlog") {
    const api = g.interlog;
    if (api === undefined) throw new Error("no window.interlog");
    const started = performance.now();
    for (let sent = 0; sent < args.events; sent += args.batch) {
      const calls: Promise<string>[] = [];
      for (let i = 0; i < args.batch; i++) calls.push(api.append(pool[(sent + i) & mask]));
      await Promise.all(calls);
    }
    return { ms: performance.now() - started, key_next: args.key_from };
  }

  const open = g.indexedDB.open("bench-raw", 1);
  open.onupgradeneeded = () => {
    if (!open.result.objectStoreNames.contains("batches")) open.result.createObjectStore("batches");
  };
  const db = await new Promise<IdbDatabase>((resolve, reject) => {
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error ?? new Error("could not open the raw IndexedDB database"));
  });
  let key = args.key_from;
  const started = performance.now();
  for (let sent = 0; sent < args.events; sent += args.batch) {
    const joined = new Uint8Array(args.batch * args.payload_bytes);
    for (let i = 0; i < args.batch; i++) joined.set(pool[(sent + i) & mask], i * args.payload_bytes);
    const tx = db.transaction("batches", "readwrite", { durability: "strict" });
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error ?? new Error("the raw IndexedDB transaction was aborted"));
    });
    tx.objectStore("batches").put(joined, key++);
    tx.commit?.();
    await done;
  }
  const ms = performance.now() - started;
  db.close();
  return { ms, key_next: key };
}

interface AppendRates {
  interlog_events_per_s: number;
  raw_events_per_s: number;
}

/** Warm-ups, then `rounds` rounds of each writer in turn; each writer's rate over all its rounds. */
async function measure_append(page: Page, progress: (message: string) => void): Promise<AppendRates> {
  let key = 0;
  const round = async (writer: RoundArgs["writer"], events: number): Promise<number> => {
    const result = await page.evaluate(tab_round, { writer, events, batch: batch_events, payload_bytes, seed: payload_seed, key_from: key });
    key = result.key_next;
    await Bun.sleep(settle_ms);
    return result.ms;
  };
  // Both writers' code and databases warmed up before the clock runs.
  await round("interlog", warmup_events);
  await round("raw", warmup_events);
  let interlog_ms = 0;
  let raw_ms = 0;
  const per_round = events_total / rounds;
  for (let r = 0; r < rounds; r++) {
    const i_ms = await round("interlog", per_round);
    const r_ms = await round("raw", per_round);
    interlog_ms += i_ms;
    raw_ms += r_ms;
    progress(`round ${r + 1}/${rounds}: window.interlog ${(per_round / (i_ms / 1000)).toFixed(0)} events/s, raw IndexedDB ${(per_round / (r_ms / 1000)).toFixed(0)} events/s`);
  }
  return { interlog_events_per_s: events_total / (interlog_ms / 1000), raw_events_per_s: events_total / (raw_ms / 1000) };
}

export const browser_append_events_per_s: Benchmark = {
  name: "browser_append_events_per_s",
  unit: "events/s",
  description:
    `a fresh tab (Chromium profile on the disk under test) appends ${events_total / 1e3}k x ${payload_bytes} B events through window.interlog.append, ${batch_events} concurrent calls awaited together (one group commit); ` +
    `baseline: the same tab writing the same bytes to IndexedDB directly, one readwrite transaction (durability strict) with one put of the ${batch_events} payloads concatenated per batch; ` +
    `${rounds} alternating rounds after a ${warmup_events / 1e3}k warm-up of each; ratio = window.interlog / raw IndexedDB`,
  async run(ctx) {
    const app_dir = await page_build_dir(ctx);
    const dir = ctx.fresh_dir("browser-append");
    let serve: ServeProcess | null = null;
    const browser = await launch_tab_browser(path.dirname(ctx.root_dir));
    try {
      serve = await start_serve(dir, "host", { app_dir });
      const { page } = await open_tab(browser.context, serve);
      ctx.settle();
      const rates = await measure_append(page, (m) => ctx.progress(m));
      const count = await page.evaluate(() => (globalThis as unknown as TabGlobals).interlog?.count() ?? 0);
      if (count !== warmup_events + events_total) throw new Error(`the tab holds ${count} events, expected ${warmup_events + events_total}`);
      return { value: rates.interlog_events_per_s, baseline: rates.raw_events_per_s, ratio: rates.interlog_events_per_s / rates.raw_events_per_s };
    } finally {
      await browser.close();
      if (serve !== null) await stop_serve(serve);
      ctx.remove_dir(dir);
    }
  },
};
