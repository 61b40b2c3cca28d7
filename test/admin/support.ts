import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "bun:test";
import type { Hono } from "hono";
import { create_admin_app } from "../../src/admin/app.ts";
import type { AdminDeps, ConflictStatus, PeerStatus, SyncCounters, SyncView, UnavailableStatus } from "../../src/admin/deps.ts";
import { system_clock } from "../../src/lib/clock.ts";
import { Log, type LogOptions } from "../../src/log/log.ts";

const made: string[] = [];
const logs: Log[] = [];

/** A fresh directory under the OS temp dir, removed after the test file. */
export function temp_dir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-admin-"));
  made.push(dir);
  return dir;
}

afterAll(async () => {
  for (const log of logs) await log.close();
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

export const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
export const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
export const b64 = (text: string): string => Buffer.from(text).toString("base64");

/** A real log in a temp dir (small segments), closed after the test file. */
export async function open_log(options: Partial<LogOptions> = {}): Promise<Log> {
  const log = await Log.open({ dir: path.join(temp_dir(), "data"), name: "truck-0042", segment_size_bytes: 64 * 1024, ...options });
  logs.push(log);
  return log;
}

export interface TestApp {
  app: Hono;
  log: Log;
  /** app.request with the bearer token when the app has one. */
  call(url: string, init?: RequestInit): Promise<Response>;
}

export async function admin_app(deps: Partial<AdminDeps> = {}, log_options: Partial<LogOptions> = {}): Promise<TestApp> {
  const log = deps.log ?? (await open_log(log_options));
  const app = create_admin_app({ log, body_limit_bytes: 64 * 1024, clock: system_clock, ...deps });
  const call = (url: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (deps.token !== undefined && !headers.has("authorization")) headers.set("authorization", `Bearer ${deps.token}`);
    return Promise.resolve(app.request(url, { ...init, headers }));
  };
  return { app, log, call };
}

export function post_event(t: TestApp, payload: Uint8Array, type = "application/octet-stream"): Promise<Response> {
  return t.call("/api/events", { method: "POST", headers: { "content-type": type }, body: payload });
}

/**
 * Stands in for the sync layer (src/sync), which is built separately: the
 * admin API only reads this interface, so tests set what sync would report.
 */
export class FakeSync implements SyncView {
  connected = true;
  peer_list: PeerStatus[] = [];
  totals: SyncCounters = { messages_in: 0, messages_out: 0, conflicts: 0, dropped: {} };
  conflict_list: ConflictStatus[] = [];
  peers(): PeerStatus[] {
    return this.peer_list;
  }
  counters(): SyncCounters {
    return this.totals;
  }
  conflicts(): ConflictStatus[] {
    return this.conflict_list;
  }
  unavailable_list: UnavailableStatus[] = [];
  unavailable(): UnavailableStatus[] {
    return this.unavailable_list;
  }
}

export interface SseMessage {
  event: string;
  id: string | undefined;
  data: string;
}

/** Reads SSE messages from a response body as they arrive. */
export class SseReader {
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  private readonly decoder = new TextDecoder();
  private buffer = "";
  /** Comment lines seen (keep-alives). */
  comments = 0;

  constructor(response: Response) {
    if (response.body === null) throw new Error("SSE response has no body");
    this.reader = response.body.getReader();
  }

  /** The next message; throws when the stream ends first. */
  async next(): Promise<SseMessage> {
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const message: SseMessage = { event: "message", id: undefined, data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) this.comments++;
          else if (line.startsWith("event: ")) message.event = line.slice(7);
          else if (line.startsWith("id: ")) message.id = line.slice(4);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        message.data = data.join("\n");
        return message;
      }
      const { done, value } = await this.reader.read();
      if (done) throw new Error("the event stream ended");
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel();
  }
}

/** Polls until check() is true; bounded so a broken build fails instead of hanging. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, tries = 500, pause_ms = 10): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await Bun.sleep(pause_ms);
  }
  throw new Error(`gave up waiting for: ${what}`);
}

/** The value of one sample line of Prometheus text, or undefined. */
export function metric(text: string, sample: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}
