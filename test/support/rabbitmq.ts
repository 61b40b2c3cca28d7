import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { free_port, port_accepts } from "./mosquitto.ts";

/**
 * A real RabbitMQ node with its MQTT and Web MQTT plugins, for tests:
 * Debian's `rabbitmq-server` run as the rabbitmq user with its own node
 * name, ports, mnesia directory and epmd port, so it never meets a system
 * RabbitMQ. Nodes started with `join` form a cluster with it (classic
 * config peer discovery; they share its HOME, hence its Erlang cookie).
 *
 * What RabbitMQ 3.10's MQTT plugin does differently from mosquitto (and
 * the replica copes with, see the `rabbitmq` broker preset): MQTT 3.1.1
 * only (an MQTT 5 CONNECT is closed without CONNACK), no QoS 2 (granted as
 * 1), retained messages reach exact-topic subscriptions only and stay on
 * the node that got them.
 *
 * `kill()` is a crash (SIGKILL to the node's process group); `start()`
 * after it brings the same node back with its data.
 *
 * The MQTT plugin registers client ids in a Raft group over the cluster's
 * nodes: a node accepts MQTT connections only while a majority of nodes
 * runs (a two-node cluster that loses one refuses every connection with
 * "client ID registration timed out"), and only once that group has formed
 * after boot. `start()` waits until a CONNECT is really accepted.
 */
export interface RabbitMqOptions {
  /** Another node to cluster with: this node joins its cluster at boot. */
  join?: RabbitMq;
  /** Extra rabbitmq.conf lines (e.g. mqtt.durable_queue_type = quorum). */
  config?: string[];
  /** Seconds to wait for the MQTT port (default 90: a cold boot on a busy 2-core machine takes 10-30 s). */
  start_timeout_s?: number;
}

const server_binary = "/usr/lib/rabbitmq/bin/rabbitmq-server";

export function find_rabbitmq(): string | null {
  return fs.existsSync(server_binary) ? server_binary : null;
}

export class RabbitMq {
  readonly mqtt_port: number;
  readonly ws_port: number;
  readonly node_name: string;
  /** The cluster's shared HOME (Erlang cookie) and epmd port. */
  readonly home: string;
  readonly epmd_port: number;
  private readonly dir: string;
  private readonly amqp_port: number;
  private readonly dist_port: number;
  private readonly join: RabbitMq | null;
  private readonly owns_home: boolean;
  private readonly extra_config: string[];
  private process: ChildProcess | null = null;
  private output = "";

  private constructor(fields: { dir: string; home: string; epmd_port: number; ports: number[]; join: RabbitMq | null; owns_home: boolean; config: string[] }) {
    this.extra_config = fields.config;
    this.dir = fields.dir;
    this.home = fields.home;
    this.epmd_port = fields.epmd_port;
    [this.mqtt_port, this.ws_port, this.amqp_port, this.dist_port] = fields.ports;
    this.node_name = `interlog${this.mqtt_port}@localhost`;
    this.join = fields.join;
    this.owns_home = fields.owns_home;
  }

  static async start(options: RabbitMqOptions = {}): Promise<RabbitMq> {
    if (find_rabbitmq() === null) throw new Error("rabbitmq-server is not installed (apt-get install rabbitmq-server)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-rabbitmq-"));
    const join = options.join ?? null;
    const home = join?.home ?? path.join(dir, "home");
    fs.mkdirSync(path.join(dir, "mnesia"), { recursive: true });
    fs.mkdirSync(path.join(dir, "log"), { recursive: true });
    if (join === null) fs.mkdirSync(home, { recursive: true });
    const ports: number[] = [];
    while (ports.length < 4) {
      const port = await free_port();
      if (!ports.includes(port)) ports.push(port);
    }
    const node = new RabbitMq({ dir, home, epmd_port: join?.epmd_port ?? (await free_port()), ports, join, owns_home: join === null, config: options.config ?? [] });
    node.write_config();
    spawnSync("chown", ["-R", "rabbitmq:rabbitmq", dir]);
    fs.chmodSync(dir, 0o755);
    await node.start(options.start_timeout_s ?? 90);
    return node;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.mqtt_port}`;
  }

  get ws_url(): string {
    return `ws://127.0.0.1:${this.ws_port}/ws`;
  }

  get running(): boolean {
    return this.process !== null;
  }

  private write_config(): void {
    const lines = [
      `listeners.tcp.default = 127.0.0.1:${this.amqp_port}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${this.mqtt_port}`,
      `web_mqtt.tcp.port = ${this.ws_port}`,
      "web_mqtt.tcp.ip = 127.0.0.1",
      "mqtt.allow_anonymous = true",
      "loopback_users = none",
      // Retained messages on disk: the node keeps them across a restart, as a production setup would.
      "mqtt.retained_message_store = rabbit_mqtt_retained_msg_store_dets",
      "log.console = false",
      "log.file.level = warning",
      ...this.extra_config,
    ];
    if (this.join !== null) {
      lines.push("cluster_formation.peer_discovery_backend = classic_config", `cluster_formation.classic_config.nodes.1 = ${this.join.node_name}`);
    }
    fs.writeFileSync(path.join(this.dir, "rabbitmq.conf"), `${lines.join("\n")}\n`);
    fs.writeFileSync(path.join(this.dir, "enabled_plugins"), "[rabbitmq_mqtt,rabbitmq_web_mqtt].\n");
  }

  private env(): Record<string, string> {
    return {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: this.home,
      LANG: "C.UTF-8",
      RABBITMQ_NODENAME: this.node_name,
      RABBITMQ_NODE_PORT: String(this.amqp_port),
      RABBITMQ_DIST_PORT: String(this.dist_port),
      RABBITMQ_MNESIA_BASE: path.join(this.dir, "mnesia"),
      RABBITMQ_LOG_BASE: path.join(this.dir, "log"),
      RABBITMQ_CONFIG_FILE: path.join(this.dir, "rabbitmq"),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(this.dir, "enabled_plugins"),
      RABBITMQ_PID_FILE: path.join(this.dir, "pid"),
      ERL_EPMD_PORT: String(this.epmd_port),
    };
  }

  /** Starts (or restarts after kill) the node and waits for its MQTT port. */
  async start(timeout_s = 90): Promise<void> {
    if (this.process !== null) return;
    // setpriv execs in place (no fork, unlike runuser), so the node stays in the process group killed below.
    const child = spawn("setpriv", ["--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", server_binary], {
      env: this.env(),
      cwd: this.dir,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.process = child;
    child.stdout?.on("data", (d) => (this.output = (this.output + String(d)).slice(-4000)));
    child.stderr?.on("data", (d) => (this.output = (this.output + String(d)).slice(-4000)));
    child.once("exit", () => {
      if (this.process === child) this.process = null;
    });
    const deadline = Date.now() + timeout_s * 1000;
    while (Date.now() < deadline) {
      if (this.process === null) throw new Error(`rabbitmq node ${this.node_name} exited at start:\n${this.output}\n${this.log_tail()}`);
      if ((await port_accepts(this.mqtt_port)) && (await this.accepts_mqtt())) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    this.kill_group();
    throw new Error(`rabbitmq node ${this.node_name} did not open its MQTT port ${this.mqtt_port} within ${timeout_s} s:\n${this.output}\n${this.log_tail()}`);
  }

  /** Whether an MQTT 3.1.1 CONNECT gets a CONNACK that accepts it. */
  private async accepts_mqtt(): Promise<boolean> {
    return await new Promise<boolean>((resolve) => {
      const client = mqtt.connect(this.url, { clientId: `probe-${this.mqtt_port}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
      const done = (ok: boolean) => {
        client.end(true);
        resolve(ok);
      };
      client.once("connect", () => done(true));
      client.once("error", () => done(false));
      client.once("close", () => done(false));
    });
  }

  /** Like a crash: SIGKILL to the whole node, no goodbye to clients or the cluster. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.kill_group();
    await exited;
    // The listener may linger a moment in the kernel; wait until the port refuses.
    for (let i = 0; i < 100 && (await port_accepts(this.mqtt_port)); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  /** Kills the node and removes its files; the cluster's first node also stops its epmd and the shared HOME. */
  async stop(): Promise<void> {
    await this.kill();
    if (this.owns_home) spawnSync("epmd", ["-kill"], { env: { ...this.env() } });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** rabbitmqctl against this node (cluster_status, ...); its output. */
  ctl(...args: string[]): string {
    const r = spawnSync("setpriv", ["--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", this.node_name, ...args], {
      env: this.env(),
      cwd: this.dir,
      encoding: "utf8",
      timeout: 60_000,
    });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`;
  }

  private kill_group(): void {
    const pid = this.process?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  private log_tail(): string {
    try {
      const logs = fs.readdirSync(path.join(this.dir, "log")).filter((f) => f.endsWith(".log"));
      return logs.map((f) => fs.readFileSync(path.join(this.dir, "log", f), "utf8").slice(-2000)).join("\n");
    } catch {
      return "";
    }
  }
}
