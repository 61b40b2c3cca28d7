import { load_config } from "../../config/config.ts";
import { Log } from "../../log/log.ts";
import { type Command, exit_ok, required_string } from "../usage.ts";

export const serve_command: Command = {
  name: "serve",
  summary: "run a replica from a YAML config until SIGTERM/SIGINT",
  help: `interlog serve --config FILE

Opens the log in the config's data_dir and keeps it open, writing JSON log
lines to stdout, until SIGTERM or SIGINT, then flushes, fsyncs and exits 0.
(Sync and the admin API are not wired in yet.)`,
  options: { config: { type: "string" } },
  async run(values, _positionals, io) {
    const file = required_string(values, "config");
    const config = load_config(file);
    const log_line = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
      io.out(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
    const log = await Log.open({
      dir: config.data_dir,
      name: config.name,
      sync: config.log.sync,
      sync_interval_ms: config.log.sync_interval_ms,
      segment_size_bytes: config.log.segment_size_bytes,
      on_warning: (msg, details) => log_line("warn", msg, details),
    });
    log_line("info", "replica started", { id: log.id, name: log.name, data_dir: config.data_dir, events: log.count, recovery: log.recovery });
    const signal = await new Promise<string>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    log_line("info", "stopping", { signal });
    await log.close();
    log_line("info", "stopped", { events: log.count });
    return exit_ok;
  },
};
