/**
 * Two tabs of one origin share one replica, and only one may write it: a
 * second writer would open the same IndexedDB log and reissue seqs. The
 * writer is whoever holds the Web Lock `interlog-writer:<db>` (released by
 * the browser when its tab closes or crashes); the others follow, calling
 * the writer over a BroadcastChannel and showing the state it broadcasts.
 * A follower waits in the lock's queue and takes over when the writer goes.
 */

interface LockManager {
  request(name: string, options: { ifAvailable?: boolean }, callback: (lock: unknown) => Promise<unknown>): Promise<unknown>;
  request(name: string, callback: (lock: unknown) => Promise<unknown>): Promise<unknown>;
}

type Message =
  | { kind: "call"; tab: string; call: number; method: string; args: unknown[] }
  | { kind: "reply"; tab: string; call: number; ok: boolean; value?: unknown; error?: string }
  | { kind: "state"; state: unknown }
  | { kind: "hello" };

/** How long a follower waits for the writer's answer (an append waits for IndexedDB, a connect for nothing). */
const call_timeout_ms = 30_000;

export type Handler = (method: string, args: unknown[]) => Promise<unknown>;

export class TabRole {
  writer = false;
  /** The writer's latest broadcast state (followers). */
  state: unknown = null;
  private readonly tab = crypto.randomUUID();
  private readonly channel: BroadcastChannel;
  private next_call = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private handler: Handler | null = null;
  private readonly state_listeners: (() => void)[] = [];

  constructor(readonly db_name: string) {
    this.channel = new BroadcastChannel(`interlog:${db_name}`);
    this.channel.addEventListener("message", (e) => void this.receive((e as unknown as { data: Message }).data));
  }

  /**
   * Resolves once this tab's role is known: `become_writer` has run (it got
   * the lock) or it follows (another tab holds it). A follower becomes the
   * writer later, when the lock comes to it.
   */
  async start(become_writer: () => Promise<Handler>): Promise<void> {
    const locks = (navigator as unknown as { locks?: LockManager }).locks;
    if (locks === undefined) throw new Error("this browser has no Web Locks (needed so that two tabs never write one log); use a current browser over https or localhost");
    const name = `interlog-writer:${this.db_name}`;
    const promote = async (): Promise<void> => {
      this.handler = await become_writer();
      this.writer = true;
    };
    const got = await new Promise<boolean>((resolve, reject) => {
      void locks.request(name, { ifAvailable: true }, async (lock) => {
        if (lock === null) return resolve(false);
        try {
          await promote();
        } catch (err) {
          reject(err);
          return;
        }
        resolve(true);
        await new Promise(() => {}); // held for the life of the tab
      });
    });
    if (got) return;
    locks
      .request(name, async () => {
        await promote();
        this.broadcast_state_soon();
        await new Promise(() => {});
      })
      .catch((err: unknown) => {
        // The lock is released with the failure (another tab may take over); this one stays a follower and says why.
        console.error("interlog: this tab could not take over writing", err);
        this.broadcast_state_soon();
      });
    this.post({ kind: "hello" });
  }

  /** A follower's call to the writer. */
  call(method: string, args: unknown[]): Promise<unknown> {
    const call = this.next_call++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(call);
        reject(new Error(`the writing tab did not answer ${method} within ${call_timeout_ms / 1000} s (closed or busy); try again`));
      }, call_timeout_ms);
      this.pending.set(call, { resolve, reject, timer });
      this.post({ kind: "call", tab: this.tab, call, method, args });
    });
  }

  /** The writer tells followers its state changed (they ask for nothing: the state comes whole). */
  publish_state(state: unknown): void {
    this.post({ kind: "state", state });
  }

  on_state(listener: () => void): void {
    this.state_listeners.push(listener);
  }

  private state_due = false;
  private broadcast_state_soon(): void {
    if (this.state_due) return;
    this.state_due = true;
    setTimeout(() => {
      this.state_due = false;
      for (const l of this.state_listeners) l();
    }, 0);
  }

  private post(m: Message): void {
    this.channel.postMessage(m);
  }

  private async receive(m: Message): Promise<void> {
    if (m.kind === "state") {
      if (this.writer) return;
      this.state = m.state;
      for (const l of this.state_listeners) l();
    } else if (m.kind === "hello") {
      if (this.writer) this.broadcast_state_soon();
    } else if (m.kind === "call") {
      const handler = this.handler;
      if (!this.writer || handler === null) return;
      try {
        this.post({ kind: "reply", tab: m.tab, call: m.call, ok: true, value: await handler(m.method, m.args) });
      } catch (err) {
        this.post({ kind: "reply", tab: m.tab, call: m.call, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    } else if (m.kind === "reply" && m.tab === this.tab) {
      const waiting = this.pending.get(m.call);
      if (waiting === undefined) return;
      this.pending.delete(m.call);
      clearTimeout(waiting.timer);
      if (m.ok) waiting.resolve(m.value);
      else waiting.reject(new Error(m.error ?? "the writing tab refused the call"));
    }
  }
}
