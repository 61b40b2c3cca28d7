import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { find_mosquitto, free_port, port_accepts } from "../../test/support/mosquitto.ts";

const start_timeout_ms = 10_000;

/** Brokers of this process still running; killed synchronously if the bench exits early (Ctrl-C, uncaught error). */
const running = new Set<BenchBroker>();
let exit_hook_installed = false;

function install_exit_hook(): void {
  if (exit_hook_installed) return;
  exit_hook_installed = true;
  process.on("exit", () => {
    for (const broker of running) broker.kill_now();
  });
}

function find_mosquitto_or_fail(): string {
  const file = find_mosquitto();
  if (file === null) throw new Error("the sync benchmarks need mosquitto (apt-get install mosquitto)");
  return file;
}

/**
 * A mosquitto for one benchmark, with stock settings (only the listener on a
 * free 127.0.0.1 port and persistence off): the broker a small installation
 * runs. Like test/support/mosquitto.ts, but it never outlives the bench
 * process, even when the run is interrupted.
 */
export class BenchBroker {
  private child: ChildProcess | null;

  private constructor(
    child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {
    this.child = child;
  }

  static async start(): Promise<BenchBroker> {
    install_exit_hook();
    const binary = find_mosquitto_or_fail();
    // In the OS temp dir, readable by all: started as root, mosquitto drops to its own user.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-bench-mosquitto-"));
    fs.chmodSync(dir, 0o755);
    const port = await free_port();
    const conf = path.join(dir, "mosquitto.conf");
    fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    let output = "";
    const child = spawn(binary, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d) => (output = (output + String(d)).slice(-2000)));
    child.stderr?.on("data", (d) => (output = (output + String(d)).slice(-2000)));
    const broker = new BenchBroker(child, port, dir);
    running.add(broker);
    let exited = false;
    child.once("exit", () => (exited = true));
    const deadline = performance.now() + start_timeout_ms;
    while (!(await port_accepts(port))) {
      if (exited || performance.now() > deadline) {
        broker.kill_now();
        throw new Error(`mosquitto did not start on port ${port}:\n${output}`);
      }
      await Bun.sleep(10);
    }
    return broker;
  }

  /** The broker's process id while it runs (for its CPU time), or null. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Kills the broker and removes its directory, synchronously (safe in an exit handler). */
  kill_now(): void {
    running.delete(this);
    const child = this.child;
    this.child = null;
    if (child !== null && child.exitCode === null) child.kill("SIGKILL");
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills the broker and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const gone = child.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.kill_now();
    await Promise.race([gone, Bun.sleep(5000)]);
  }
}
