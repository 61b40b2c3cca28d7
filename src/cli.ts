#!/usr/bin/env bun
/** The `interlog` command-line entry point. */
import { main } from "./cli/main.ts";

const code = await main(process.argv.slice(2), {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
});
process.exitCode = code;
