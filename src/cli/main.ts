import { InterlogError } from "../lib/errors.ts";
import { type Command, type Output, UsageError, exit_failed, exit_ok, exit_usage, parse } from "./usage.ts";

/** Commands load on use: a shell script calling `interlog append` on a weak board should not pay for the HTTP server. */
interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const commands: readonly CommandEntry[] = [
  { name: "init", summary: "create a data directory with a new random replica id", load: async () => (await import("./commands/init.ts")).init_command },
  { name: "serve", summary: "run a replica (log, MQTT sync, admin API) from a YAML config", load: async () => (await import("./commands/serve.ts")).serve_command },
  { name: "append", summary: "append events read from stdin (one per line) or a file", load: async () => (await import("./commands/append.ts")).append_command },
  { name: "read", summary: "print events as JSON lines, in this log's order", load: async () => (await import("./commands/read.ts")).read_command },
  { name: "tail", summary: "follow a running replica's new events (JSON lines)", load: async () => (await import("./commands/tail.ts")).tail_command },
  { name: "status", summary: "print a data directory's id, size and version vector as JSON", load: async () => (await import("./commands/status.ts")).status_command },
  { name: "get", summary: "print one event by id (ORIGIN:SEQ) as JSON; says so when retention pruned it", load: async () => (await import("./commands/get.ts")).get_command },
  { name: "prune", summary: "delete the oldest segments as retention would (--dry-run: show what would go)", load: async () => (await import("./commands/prune.ts")).prune_command },
  { name: "provision", summary: "make a replica's MQTT login (username = its id) for config/mosquitto/", load: async () => (await import("./commands/provision.ts")).provision_command },
  { name: "verify", summary: "re-check every record's checksum; exit 1 at the first bad one", load: async () => (await import("./commands/verify.ts")).verify_command },
  { name: "verify-manifest", summary: "check a firmware bundle's MANIFEST.sig with the release key (install.sh uses it)", load: async () => (await import("./commands/verify_manifest.ts")).verify_manifest_command },
  { name: "version", summary: "print version, target and commit", load: async () => (await import("./commands/version.ts")).version_command },
];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `interlog: an append-only, replicated event log for edge devices

usage: interlog <command> [options]   (interlog <command> --help for details)

commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

exit codes: 0 ok, 1 operation failed, 2 usage or config error
`;
}

/** Runs one CLI invocation; returns the exit code. Never throws. */
export async function main(argv: string[], io: Output): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.out(overview());
    return name === undefined ? exit_usage : exit_ok;
  }
  const entry = commands.find((c) => c.name === (name === "--version" ? "version" : name));
  if (entry === undefined) {
    io.err(`interlog: unknown command "${name}"\n\n${overview()}`);
    return exit_usage;
  }
  const command = await entry.load();
  if (name === "--version") return command.run({}, [], io);
  try {
    const { values, positionals } = parse(command, rest);
    if (values.help === true) {
      io.out(`${command.help}\n`);
      return exit_ok;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return await command.run(values, positionals, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`interlog ${command.name}: ${err.message}\n\n${command.help}\n`);
      return exit_usage;
    }
    if (err instanceof InterlogError) {
      io.err(`interlog ${command.name}: ${err.code}: ${err.message}\n`);
      return err.code === "CONFIG_INVALID" ? exit_usage : exit_failed;
    }
    io.err(`interlog ${command.name}: ${(err as Error)?.stack ?? String(err)}\n`);
    return exit_failed;
  }
}
