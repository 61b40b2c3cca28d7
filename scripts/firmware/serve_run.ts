import fs from "node:fs";
import path from "node:path";
import type { Subprocess } from "bun";

/**
 * Starting `interlog serve` (or a program that answers like it: it prints
 * {"admin_url": ...} on stdout and answers /readyz) for the firmware
 * measurements: scripts/measure-firmware.ts, memory-by-layer.ts and
 * build-options.ts.
 */
export interface RunningServe {
  proc: Subprocess<"ignore", "pipe", "inherit" | "ignore">;
  admin_url: string;
  /** From spawn to the first 200 from /readyz (with sync configured: the broker connected). */
  ready_ms: number;
}

/** Writes `dir`/interlog.yaml: data in ./data, sync always, admin on a free loopback port, synced through `mqtt_url` when given. */
export function write_serve_config(dir: string, name: string, mqtt_url?: string): string {
  const config = path.join(dir, "interlog.yaml");
  const mqtt = mqtt_url === undefined ? "" : `mqtt:\n  url: ${mqtt_url}\n`;
  fs.writeFileSync(config, `name: ${name}\ndata_dir: ./data\nlog:\n  sync: always\nadmin:\n  listen: 127.0.0.1:0\n${mqtt}`);
  return config;
}

export interface StartOptions {
  timeout_ms?: number;
  stderr?: "inherit" | "ignore";
  /** Added to the environment (which is otherwise PATH only). */
  env?: Record<string, string>;
  /** Called with the process as soon as it is spawned, so the caller can kill it whatever happens. */
  on_spawn?: (proc: Subprocess) => void;
}

/** Runs `command serve --config <config>` in the config's directory and resolves once /readyz answers 200. */
export async function start_serve(command: string[], config: string, options: StartOptions = {}): Promise<RunningServe> {
  const timeout_ms = options.timeout_ms ?? 120_000;
  const t0 = performance.now();
  const proc = Bun.spawn([...command, "serve", "--config", config], {
    cwd: path.dirname(config),
    stdin: "ignore",
    stdout: "pipe",
    stderr: options.stderr ?? "inherit",
    env: { PATH: process.env.PATH ?? "", ...options.env },
  });
  options.on_spawn?.(proc);
  let admin_url = "";
  let tail = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
      admin_url ||= /"admin_url":"([^"]+)"/.exec(tail)?.[1] ?? "";
    }
  })();
  for (;;) {
    if (performance.now() - t0 > timeout_ms || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      throw new Error(`${command.join(" ")} serve did not become ready (exit ${proc.exitCode}):\n${tail}`);
    }
    if (admin_url !== "" && (await fetch(`${admin_url}/readyz`).then((r) => r.status === 200, () => false))) {
      return { proc, admin_url, ready_ms: performance.now() - t0 };
    }
    await Bun.sleep(2);
  }
}

/** SIGTERM, and waits for the exit. */
export async function stop_serve(running: RunningServe): Promise<void> {
  running.proc.kill("SIGTERM");
  await running.proc.exited;
}
