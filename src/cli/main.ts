import { InterlogError } from "../lib/errors.ts";
import { append_command } from "./commands/append.ts";
import { init_command } from "./commands/init.ts";
import { read_command } from "./commands/read.ts";
import { serve_command } from "./commands/serve.ts";
import { status_command } from "./commands/status.ts";
import { tail_command } from "./commands/tail.ts";
import { verify_command } from "./commands/verify.ts";
import { version_command } from "./commands/version.ts";
import { type Command, type Output, UsageError, exit_failed, exit_ok, exit_usage, parse } from "./usage.ts";

export const commands: readonly Command[] = [
  init_command,
  serve_command,
  append_command,
  read_command,
  tail_command,
  status_command,
  verify_command,
  version_command,
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
  if (name === "--version") return version_command.run({}, [], io);
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    io.err(`interlog: unknown command "${name}"\n\n${overview()}`);
    return exit_usage;
  }
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
