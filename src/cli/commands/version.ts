import pkg from "../../../package.json" with { type: "json" };
import { type Command, exit_ok } from "../usage.ts";

/** Set at build time with --define (scripts/firmware/compile.ts); absent when run from source. */
declare const INTERLOG_COMMIT: string | undefined;
declare const INTERLOG_TARGET: string | undefined;

export function version_info(): { version: string; target: string; commit: string } {
  const commit = typeof INTERLOG_COMMIT === "string" ? INTERLOG_COMMIT : "dev";
  // The compiled target names the libc too (linux-arm64-musl); from source it is this machine's platform-arch.
  const target = typeof INTERLOG_TARGET === "string" ? INTERLOG_TARGET : `${process.platform}-${process.arch}`;
  return { version: pkg.version, target, commit };
}

export const version_command: Command = {
  name: "version",
  help: "interlog version\n\nPrints {\"version\",\"target\",\"commit\"}.",
  options: {},
  async run(_values, _positionals, io) {
    io.out(`${JSON.stringify(version_info())}\n`);
    return exit_ok;
  },
};
