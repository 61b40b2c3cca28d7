import { redact_config } from "../../config/config.ts";
import { load_config } from "../../config/load.ts";
import { ReplicaNode } from "../../node.ts";
import { type Command, exit_ok, required_string } from "../usage.ts";

export const serve_command: Command = {
  name: "serve",
  help: `interlog serve --config FILE

Opens the log in the config's data_dir, syncs through the configured MQTT
broker (none: offline), serves the admin API and dashboard on admin.listen,
and writes JSON log lines to stdout. On SIGTERM or SIGINT it stops taking
requests, publishes its offline status, flushes, fsyncs and exits 0.
Config errors exit 2; the admin API refuses a non-loopback address without
a token.`,
  options: { config: { type: "string" } },
  async run(values, _positionals, io) {
    const file = required_string(values, "config");
    // Listen for signals first, so a stop request during start-up is not lost.
    const stop_signal = new Promise<string>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    const config = load_config(file);
    const log_line = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
      io.out(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
    const node = await ReplicaNode.start(config, log_line);
    const { log, admin } = node;
    log_line("info", "replica started", {
      id: log.id,
      name: log.name,
      data_dir: config.data_dir,
      events: log.count,
      recovery: log.recovery,
      admin_url: admin.url,
      mqtt: redact_config(config).mqtt,
    });
    // A compiled binary starts with raised JIT thresholds (scripts/firmware/compile.ts); from here on the hot paths should tier up as usual.
    Bun.unsafe.setJITPolicy(1);
    const signal = await stop_signal;
    log_line("info", "stopping", { signal });
    await node.stop();
    log_line("info", "stopped", { events: log.count });
    return exit_ok;
  },
};
