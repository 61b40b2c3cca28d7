import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect } from "bun:test";
import { InterlogError } from "../../src/lib/errors.ts";

export interface ConfigFiles {
  dir: string;
  /** Writes `text` (the template's common indentation stripped) to a fresh .yaml file; returns its path. */
  write(text: string): string;
}

/** A temp directory for one test file's configs, removed after that file's tests. Call at the top of a test file. */
export function config_files(): ConfigFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-config-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  let counter = 0;
  return {
    dir,
    write(text) {
      const lines = text.replace(/^\n/, "").split("\n");
      const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length));
      const file = path.join(dir, `config-${++counter}.yaml`);
      fs.writeFileSync(file, lines.map((l) => l.slice(Number.isFinite(indent) ? indent : 0)).join("\n"));
      return file;
    },
  };
}

/** Runs `load` and returns the CONFIG_INVALID error's message; fails the test when it does not throw that. */
export function config_error(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(InterlogError);
    expect((err as InterlogError).code).toBe("CONFIG_INVALID");
    return (err as Error).message;
  }
  throw new Error("expected load_config to throw CONFIG_INVALID");
}
