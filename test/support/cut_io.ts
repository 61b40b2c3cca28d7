import type { FileIO } from "../../src/log/file_io.ts";
import type { Random } from "../../src/lib/random.ts";
import type { MemFileIO } from "./mem_file_io.ts";

/**
 * A session of a MemFileIO that loses power at a chosen step: once armed,
 * every call that changes the file system (a write, rename, unlink, fsync,
 * file creation) is a step, and at step `cut_at` the power goes
 * - "before": the call never happens;
 * - "during": the call is made, and the power goes as soon as it returns,
 *   before any of its asynchronous part ran (write_file_atomic has then
 *   renamed its file into place but not fsynced the directory);
 * - "after": the call completes (its promise settles), then the power goes.
 * The call that met the cut, and every later one, fails with EIO, as the
 * dead process's would. `steps` records the steps seen, for a dry run that
 * finds how many there are.
 */
export type CutWhen = "before" | "during" | "after";

const mutating = new Set([
  "write_file_atomic",
  "create_zeroed",
  "create_zeroed_sync",
  "rename",
  "unlink",
  "sync_dir",
  "sync_dir_sync",
  "mkdirp",
  "handle.write",
  "handle.sync",
  "handle.sync_now",
]);

const async_methods = new Set(["write_file_atomic", "create_zeroed", "sync_dir", "handle.sync"]);

export class CutIO {
  /** Steps seen since arm(): method name and first argument. */
  readonly steps: string[] = [];
  private armed = false;
  private cut_at = Number.POSITIVE_INFINITY;
  private cut_on: ((step: string) => boolean) | null = null;
  private when: CutWhen = "before";
  /** Set once the power went. */
  cut = false;
  readonly io: FileIO;

  constructor(
    readonly mem: MemFileIO,
    private readonly rng: Random,
  ) {
    const session = mem.session();
    this.io = new Proxy(session, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== "function") return value;
        const name = String(prop);
        return (...args: unknown[]) => this.call(name, args, (...a) => (value as (...x: unknown[]) => unknown).apply(target, a));
      },
    });
  }

  /** From now on count steps; cut at step `cut_at` (0-based; Infinity = never, for a dry run). */
  arm(cut_at = Number.POSITIVE_INFINITY, when: CutWhen = "before"): void {
    this.armed = true;
    this.cut_at = cut_at;
    this.cut_on = null;
    this.when = when;
    this.steps.length = 0;
  }

  /** From now on cut at the first step whose description (method, then path) `matches`. */
  arm_on(matches: (step: string) => boolean, when: CutWhen = "before"): void {
    this.arm(Number.POSITIVE_INFINITY, when);
    this.cut_on = matches;
  }

  private power_cut(): Error {
    if (!this.cut) {
      this.cut = true;
      this.mem.power_cut(this.rng);
    }
    return Object.assign(new Error("EIO: power cut (test)"), { code: "EIO" });
  }

  private call(name: string, args: unknown[], run: (...a: unknown[]) => unknown): unknown {
    if (this.cut) throw this.power_cut();
    if (name === "open") return this.wrap_handle(run(...args));
    if (!this.armed || !mutating.has(name)) return run(...args);
    const step = this.steps.length;
    const described = `${name} ${typeof args[0] === "string" ? args[0] : ""}`.trim();
    this.steps.push(described);
    if (step !== this.cut_at && !(this.cut_on?.(described) ?? false)) return run(...args);
    // An asynchronous call fails as a rejected promise, as it would in the dead process.
    const fail = (): unknown => {
      const err = this.power_cut();
      if (async_methods.has(name)) return Promise.reject(err);
      throw err;
    };
    if (this.when === "before") return fail();
    const result = run(...args);
    if (this.when === "during" || !(result instanceof Promise)) {
      if (result instanceof Promise) result.catch(() => {});
      return fail();
    }
    return result.then(() => {
      throw this.power_cut();
    });
  }

  /** Handles opened through this session: their writes and fsyncs are steps as well. */
  private wrap_handle(result: unknown): unknown {
    if (result === null || typeof result !== "object") return result;
    return new Proxy(result as Record<string, unknown>, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== "function") return value;
        const method = `handle.${String(prop)}`;
        if (!mutating.has(method)) return value;
        return (...args: unknown[]) => this.call(method, args, (...a) => (value as (...x: unknown[]) => unknown).apply(target, a));
      },
    });
  }
}
