import fs from "node:fs";
import { InterlogError } from "../lib/errors.ts";

/** A PEM file named in the MQTT TLS settings (the browser build has none: a tab trusts the browser's CA store). */
export function read_pem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new InterlogError("CONFIG_INVALID", `cannot read the MQTT ${what} at ${file}: ${(err as Error).message}`);
  }
}
