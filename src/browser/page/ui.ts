/**
 * The browser replica's page (index.html): drives the replica that app.js
 * (src/browser/main.ts) installs as window.interlog, and nothing else. Every
 * value shown is set as text (textContent), never parsed as HTML: payloads,
 * peer ids and broker errors come from other devices.
 */

// Types only: the contract is checked against the replica's, and nothing of it is bundled into ui.js.
import type { PageEvent as InterlogEvent } from "../browser_replica.ts";
import type { InterlogPage } from "../main.ts";

/** One line of the export; exactly one of payload_text (valid UTF-8) and payload_hex. */
export interface ExportLine {
  id: string;
  origin: string;
  seq: number;
  time_ms: number;
  payload_text?: string;
  payload_hex?: string;
}

/** The DOM this page uses, typed just enough (the project's lib has no DOM types). */
interface UiEvent {
  preventDefault(): void;
}
interface UiElement {
  textContent: string | null;
  hidden: boolean;
  className: string;
  title: string;
  append(...nodes: (UiElement | string)[]): void;
  prepend(...nodes: UiElement[]): void;
  replaceChildren(...nodes: UiElement[]): void;
  remove(): void;
  addEventListener(type: string, listener: (event: UiEvent) => void): void;
}
interface UiInput extends UiElement {
  value: string;
  disabled: boolean;
}
interface UiAnchor extends UiElement {
  href: string;
  download: string;
  click(): void;
}
interface UiWeb {
  interlog?: InterlogPage;
  /** Set by app.js when the replica could not start (and interlog-error dispatched). */
  interlog_error?: string;
  document: { getElementById(id: string): UiElement | null; createElement(tag: string): UiElement; body: UiElement; activeElement: UiElement | null };
  navigator: { onLine: boolean; serviceWorker?: { register(url: string, options: { scope: string }): Promise<unknown> } };
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

const web = globalThis as unknown as UiWeb;

/** Events shown at first and added by "Show older"; the export reads them all. */
const shown_step_events = 200;
/**
 * Renders at most this often while changes keep coming (a catch-up changes
 * the log every few ms): a render reads and formats rows on the thread that
 * also verifies and stores the events, and redrawing back to back measured
 * to halve the tab's catch-up rate (scripts/bench/browser_catchup_profile.ts).
 */
const render_min_interval_ms = 500;
/** Events per read() while exporting, so a big log is read in bounded pieces. */
const export_page_events = 500;
/** Payload characters (text) or bytes (hex) shown per event; the export has them whole. */
const payload_shown_max_chars = 2000;
const payload_shown_max_bytes = 1024;
/** How often the page looks for window.interlog besides listening for interlog-ready. */
const ready_poll_ms = 50;
/** After this, the page says the replica has not started (it keeps waiting). */
const ready_warn_ms = 10_000;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The payload as text when it is valid UTF-8 (decoding it back gives the same bytes), else as hex. */
function payload_view(payload: Uint8Array): { text: string } | { hex: string } {
  try {
    return { text: utf8.decode(payload) };
  } catch {
    return { hex: to_hex(payload) };
  }
}

function to_hex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

function export_line(event: InterlogEvent): ExportLine {
  const view = payload_view(event.payload);
  const line: ExportLine = { id: event.id, origin: event.origin, seq: event.seq, time_ms: event.time_ms };
  if ("text" in view) line.payload_text = view.text;
  else line.payload_hex = view.hex;
  return line;
}

/** Local date and time to the millisecond: the phone's own clock reading is what its user compares with. */
function format_time(time_ms: number): string {
  const d = new Date(time_ms);
  if (Number.isNaN(d.getTime())) return String(time_ms);
  const p = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function message_of(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function el<T extends UiElement = UiElement>(id: string): T {
  const found = web.document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

function make(tag: string, text?: string, class_name?: string): UiElement {
  const node = web.document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (class_name !== undefined) node.className = class_name;
  return node;
}

/** window.interlog, whether app.js installed it before this script ran or installs it later (interlog-ready, or found by polling). */
function wait_for_interlog(on_slow: () => void): Promise<InterlogPage> {
  return new Promise((resolve) => {
    const check = () => {
      const page = web.interlog;
      if (page === undefined) return;
      clearInterval(poll);
      clearTimeout(slow);
      web.removeEventListener("interlog-ready", check);
      resolve(page);
    };
    const poll = setInterval(check, ready_poll_ms);
    const slow = setTimeout(on_slow, ready_warn_ms);
    web.addEventListener("interlog-ready", check);
    check();
  });
}

class PageUi {
  private shown_max = shown_step_events;
  private last_render_ms = Number.NEGATIVE_INFINITY;
  /** The rows shown, by log position: a contiguous block [rows_from, rows_to), newest first on the page. */
  private readonly rows = new Map<number, UiElement>();
  private rows_from = 0;
  private rows_to = 0;
  private rendering = false;
  private dirty = false;
  private queued = false;
  /** The broker URL field is filled from the replica's status until the user types in it. */
  private url_edited = false;
  /** Why the last connect or disconnect failed; shown before the replica's own last_error until the next try. */
  private broker_failure: string | null = null;

  constructor(private readonly interlog: InterlogPage) {}

  start(): void {
    el("starting").hidden = true;
    el("main").hidden = false;
    el("broker-url").addEventListener("input", () => void (this.url_edited = true));
    el("connect-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.connect();
    });
    el("disconnect").addEventListener("click", () => void this.disconnect());
    el("append-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.append();
    });
    el("export").addEventListener("click", () => void this.export());
    el("more").addEventListener("click", () => {
      this.shown_max += shown_step_events;
      this.queue_render();
    });
    web.addEventListener("online", () => this.queue_render());
    web.addEventListener("offline", () => this.queue_render());
    this.interlog.on_change(() => this.queue_render());
    this.queue_render();
  }

  /** Coalesces bursts of changes into one render; a change during a render renders again after it. */
  queue_render(): void {
    if (this.queued) return;
    this.queued = true;
    setTimeout(() => {
      this.queued = false;
      void this.render();
    }, Math.max(0, this.last_render_ms + render_min_interval_ms - performance.now()));
  }

  private async render(): Promise<void> {
    if (this.rendering) {
      this.dirty = true;
      return;
    }
    this.rendering = true;
    try {
      this.render_status();
      await this.render_events();
    } catch (err) {
      el("export-result").textContent = `Could not read the log: ${message_of(err)}`;
    } finally {
      this.rendering = false;
      this.last_render_ms = performance.now();
    }
    // A change during the render: render again, no sooner than the interval allows.
    if (this.dirty) {
      this.dirty = false;
      this.queue_render();
    }
  }

  private render_status(): void {
    const st = this.interlog.status();
    el("replica-id").textContent = st.id;
    el("writer-note").hidden = st.writer;

    const broker = el("broker-state");
    broker.textContent = st.broker === null ? "broker: none" : st.broker.connected ? "broker: connected" : "broker: disconnected";
    broker.className = `pill ${st.broker?.connected === true ? "ok" : "bad"}`;
    const online = web.navigator.onLine;
    const network = el("network-state");
    network.textContent = online ? "network: online" : "network: offline";
    network.className = `pill ${online ? "ok" : "bad"}`;

    el("broker-detail").textContent =
      st.broker === null
        ? "No broker set: events stay in this browser until one is."
        : `${st.broker.connected ? "Connected to" : "Not connected to"} ${st.broker.url}`;
    el("broker-error").textContent = this.broker_failure ?? st.broker?.last_error ?? "";
    const url = el<UiInput>("broker-url");
    if (!this.url_edited && st.broker !== null && url.value !== st.broker.url) url.value = st.broker.url;

    el("no-peers").hidden = st.peers.length > 0;
    el("peers").replaceChildren(
      ...st.peers.map((peer) => {
        const row = make("li", undefined, "meta");
        const state = peer.online === null ? "unknown" : peer.online ? "online" : "offline";
        row.append(
          make("code", peer.id),
          make("span", state, peer.online === true ? "ok" : peer.online === false ? "bad" : "dim"),
          make("span", peer.lag_events === 0 ? "up to date" : `lags ${peer.lag_events} event${peer.lag_events === 1 ? "" : "s"}`, "lag"),
        );
        return row;
      }),
    );
  }

  /** Builds only the rows not shown yet (new events on top, older ones when more are asked for) and drops those past the limit. */
  private async render_events(): Promise<void> {
    const count = this.interlog.count();
    const shown = Math.min(count, this.shown_max);
    const from = count - shown;
    const list = el("events");
    if (this.rows.size === 0 || from >= this.rows_to || count < this.rows_to) {
      // Nothing shown overlaps what is wanted (or the log went back: another store): start over.
      this.rows.clear();
      this.rows_from = from;
      this.rows_to = from;
      list.replaceChildren();
    }
    const newer = await this.read_range(this.rows_to, count - this.rows_to);
    const older = from < this.rows_from ? await this.read_range(from, this.rows_from - from) : [];
    const added_on_top = newer.map((event, i) => {
      const row = event_row(event);
      this.rows.set(this.rows_to + i, row);
      return row;
    });
    this.rows_to += newer.length;
    if (added_on_top.length > 0) list.prepend(...added_on_top.reverse());
    older.forEach((event, i) => {
      const row = event_row(event);
      this.rows.set(from + i, row);
    });
    if (older.length > 0) {
      this.rows_from = from;
      list.append(...older.map((_, i) => this.rows.get(from + older.length - 1 - i) as UiElement));
    }
    // Rows fallen below the newest `shown`: gone from the page.
    for (; this.rows_from < this.rows_to - shown; this.rows_from++) {
      this.rows.get(this.rows_from)?.remove();
      this.rows.delete(this.rows_from);
    }
    el("event-count").textContent = shown < count ? `(${count} events, newest ${this.rows.size} shown)` : `(${count} event${count === 1 ? "" : "s"})`;
    el("more").hidden = shown >= count;
  }

  /** Up to `limit` events from position `from`, however many read() gives per call. */
  private async read_range(from: number, limit: number): Promise<InterlogEvent[]> {
    const events: InterlogEvent[] = [];
    while (events.length < limit) {
      const page = await this.interlog.read(from + events.length, limit - events.length);
      if (page.length === 0) break;
      events.push(...page);
    }
    return events;
  }

  private async connect(): Promise<void> {
    const url = el<UiInput>("broker-url").value.trim();
    const options: Parameters<InterlogPage["connect"]>[1] & {} = {};
    const username = el<UiInput>("broker-username").value;
    const password = el<UiInput>("broker-password").value;
    const prefix = el<UiInput>("broker-prefix").value.trim();
    const preset = el<UiInput>("broker-preset").value;
    const pull = el<UiInput>("broker-pull").value.trim().split(/[\s,]+/).filter((id) => id !== "");
    if (username !== "") options.username = username;
    if (password !== "") options.password = password;
    if (prefix !== "") options.prefix = prefix;
    if (preset === "rabbitmq") options.preset = "rabbitmq";
    if (pull.length > 0) options.pull = pull;
    await this.busy("connect", async () => {
      this.broker_failure = null;
      try {
        await this.interlog.connect(url, options);
        this.url_edited = false;
      } catch (err) {
        this.broker_failure = `Could not connect: ${message_of(err)}`;
      }
    });
    this.queue_render();
  }

  private async disconnect(): Promise<void> {
    await this.busy("disconnect", async () => {
      this.broker_failure = null;
      try {
        await this.interlog.disconnect();
      } catch (err) {
        this.broker_failure = `Could not disconnect: ${message_of(err)}`;
      }
    });
    this.queue_render();
  }

  private async append(): Promise<void> {
    const input = el<UiInput>("append-text");
    const text = input.value;
    if (text === "") return;
    const result = el("append-result");
    await this.busy("append", async () => {
      try {
        const id = await this.interlog.append(text);
        input.value = "";
        result.textContent = `Appended ${id}`;
        result.className = "ok";
      } catch (err) {
        result.textContent = `Not appended: ${message_of(err)}`;
        result.className = "bad";
      }
    });
    this.queue_render();
  }

  /** The whole log as JSON lines, read in pages, downloaded as one file. */
  private async export(): Promise<void> {
    const result = el("export-result");
    await this.busy("export", async () => {
      try {
        // The events held when the export starts; later ones go into the next export.
        const total = this.interlog.count();
        const lines: string[] = [];
        for (let from = 0; from < total; ) {
          const page = await this.interlog.read(from, Math.min(export_page_events, total - from));
          if (page.length === 0) break;
          for (const event of page) lines.push(`${JSON.stringify(export_line(event))}\n`);
          from += page.length;
        }
        const url = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
        const link = web.document.createElement("a") as UiAnchor;
        link.href = url;
        link.download = `interlog-${this.interlog.status().id}-${Date.now()}.jsonl`;
        web.document.body.append(link);
        link.click();
        link.remove();
        // The download has taken the blob by then; keeping it longer only holds memory.
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
        result.textContent = `Exported ${lines.length} event${lines.length === 1 ? "" : "s"}.`;
        result.className = "dim";
      } catch (err) {
        result.textContent = `Export failed: ${message_of(err)}`;
        result.className = "bad";
      }
    });
  }

  /** Runs `work` with its button disabled, so a double tap does not do it twice. */
  private async busy(button_id: string, work: () => Promise<void>): Promise<void> {
    const button = el<UiInput>(button_id);
    if (button.disabled) return;
    button.disabled = true;
    try {
      await work();
    } finally {
      button.disabled = false;
    }
  }
}

function event_row(event: InterlogEvent): UiElement {
  const row = make("li");
  const meta = make("div", undefined, "meta");
  const time = make("time", format_time(event.time_ms), "dim");
  time.title = new Date(event.time_ms).toISOString();
  meta.append(make("code", event.id, "id"), time);
  const view = payload_view(event.payload);
  const payload =
    "text" in view
      ? make("div", clip(view.text, payload_shown_max_chars), "payload")
      : make("div", clip(view.hex, payload_shown_max_bytes * 2), "payload hex");
  if ("hex" in view) payload.title = `not UTF-8: ${event.payload.length} bytes shown as hex`;
  row.append(meta, payload);
  return row;
}

function clip(text: string, max_chars: number): string {
  return text.length <= max_chars ? text : `${text.slice(0, max_chars)}… (${text.length - max_chars} more characters)`;
}

/** Offline loading (sw.ts): a page served over plain HTTP from another host has no service worker, and says so. */
function register_service_worker(): void {
  const note = el("offline-support");
  const sw = web.navigator.serviceWorker;
  if (sw === undefined) {
    note.textContent = "This page will not load offline: service workers need HTTPS or localhost.";
    return;
  }
  sw.register("./sw.js", { scope: "./" }).then(
    () => void (note.textContent = "This page loads offline once it has been loaded."),
    (err: unknown) => void (note.textContent = `This page will not load offline: ${message_of(err)}`),
  );
}

function main(): void {
  register_service_worker();
  const started = wait_for_interlog(() => {
    el("starting-text").textContent = "The replica has not started yet: app.js may have failed to load (the browser console says why). Still waiting…";
  });
  void started.then((interlog) => new PageUi(interlog).start());
  const failed = () => {
    if (web.interlog_error !== undefined) el("starting-text").textContent = `The replica could not start: ${web.interlog_error}`;
  };
  web.addEventListener("interlog-error", failed);
  failed();
}

main();
