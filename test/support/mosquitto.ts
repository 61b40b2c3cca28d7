import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/**
 * A real mosquitto for tests: its own temp config on a free 127.0.0.1 port,
 * persistence off, killed at the end. `kill()` + `start()` restart it on the
 * same port with nothing remembered (sessions, retained messages), like a
 * broker that crashed.
 */
export interface MosquittoOptions {
  /** Extra lines for the listener (TLS files, ...). */
  listener_config?: string[];
  /** Extra lines for mosquitto.conf. */
  config?: string[];
  /** Default true; false requires a password_file in `config`. */
  anonymous?: boolean;
  /** Seconds to wait for the port (default 10). */
  start_timeout_s?: number;
  /**
   * The whole mosquitto.conf, given the port (e.g. a shipped config with its
   * listener and paths rewritten); replaces the one made from the options above.
   */
  config_text?: (port: number) => string;
}

export function mosquitto_available(): boolean {
  return find_mosquitto() !== null;
}

export function find_mosquitto(): string | null {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"]) {
    const file = path.join(dir, "mosquitto");
    if (dir !== "" && fs.existsSync(file)) return file;
  }
  return null;
}

export async function free_port(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export async function port_accepts(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export class Mosquitto {
  readonly port: number;
  readonly dir: string;
  private process: ChildProcess | null = null;
  private output = "";

  private constructor(
    port: number,
    dir: string,
    private readonly options: MosquittoOptions,
  ) {
    this.port = port;
    this.dir = dir;
  }

  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-mosquitto-"));
    // Started as root, mosquitto drops to its own user, which must still read the files here.
    fs.chmodSync(dir, 0o755);
    const broker = new Mosquitto(await free_port(), dir, options);
    await broker.start();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== null;
  }

  async start(): Promise<void> {
    if (this.process !== null) return;
    const binary = find_mosquitto();
    if (binary === null) throw new Error("mosquitto is not installed (apt-get install mosquitto)");
    const conf = path.join(this.dir, "mosquitto.conf");
    const lines = [
      `listener ${this.port} 127.0.0.1`,
      ...(this.options.listener_config ?? []),
      `allow_anonymous ${this.options.anonymous ?? true}`,
      "persistence false",
      ...(this.options.config ?? []),
    ];
    fs.writeFileSync(conf, this.options.config_text?.(this.port) ?? `${lines.join("\n")}\n`);
    const child = spawn(binary, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    this.process = child;
    child.stdout?.on("data", (d) => (this.output = (this.output + String(d)).slice(-4000)));
    child.stderr?.on("data", (d) => (this.output = (this.output + String(d)).slice(-4000)));
    child.once("exit", () => {
      if (this.process === child) this.process = null;
    });
    const deadline = Date.now() + (this.options.start_timeout_s ?? 10) * 1000;
    while (Date.now() < deadline) {
      if (this.process === null) throw new Error(`mosquitto exited at start:\n${this.output}`);
      if (await port_accepts(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await this.kill();
    throw new Error(`mosquitto did not accept connections on port ${this.port} in time:\n${this.output}`);
  }

  /** What mosquitto printed last (its log, when the config sends it to stderr). */
  get log(): string {
    return this.output;
  }

  /** SIGHUP: mosquitto re-reads its password and ACL files (connected clients stay). */
  reload(): void {
    this.process?.kill("SIGHUP");
  }

  /** SIGKILL, as in a crash; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    this.process = null;
  }

  async stop(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
