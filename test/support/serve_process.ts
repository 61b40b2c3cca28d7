import fs from "node:fs";
import path from "node:path";
import type { Subprocess } from "bun";

/** The interlog command as tests run it: the compiled binary when INTERLOG_BIN is set, else the source. */
export function interlog_command(): string[] {
  const bin = process.env.INTERLOG_BIN;
  if (bin !== undefined && bin !== "") return [bin];
  return [process.execPath, path.join(import.meta.dir, "..", "..", "src", "cli.ts")];
}

/** A real `interlog serve` process; its JSON log lines are collected as they come. */
export class ServeProcess {
  readonly lines: Record<string, unknown>[] = [];
  admin_url = "";
  id = "";
  private constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">, readonly config_file: string) {}

  static async start(config_file: string, options: { cwd?: string; env?: Record<string, string>; command?: string[] } = {}): Promise<ServeProcess> {
    const command = options.command ?? interlog_command();
    const proc = Bun.spawn([...command, "serve", "--config", config_file], {
      cwd: options.cwd ?? path.dirname(config_file),
      env: { PATH: process.env.PATH ?? "", ...options.env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const serve = new ServeProcess(proc, config_file);
    void serve.read_lines();
    const deadline = Date.now() + 20_000;
    while (serve.admin_url === "") {
      if (proc.exitCode !== null || Date.now() > deadline) {
        const stderr = await new Response(proc.stderr).text().catch(() => "");
        throw new Error(`serve did not start (exit ${proc.exitCode}): ${stderr}\n${JSON.stringify(serve.lines)}`);
      }
      await Bun.sleep(20);
    }
    return serve;
  }

  private async read_lines(): Promise<void> {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) {
        if (part.trim() === "") continue;
        const line = JSON.parse(part) as Record<string, unknown>;
        this.lines.push(line);
        if (line.msg === "replica started") {
          this.admin_url = String(line.admin_url);
          this.id = String(line.id);
        }
      }
    }
  }

  fetch(route: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.admin_url}${route}`, init);
  }

  /** SIGTERM and wait; returns the exit code. */
  async stop(signal: "SIGTERM" | "SIGINT" | "SIGKILL" = "SIGTERM"): Promise<number> {
    this.proc.kill(signal);
    return await this.proc.exited;
  }
}

export function write_config(dir: string, name: string, yaml: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, yaml);
  return file;
}
