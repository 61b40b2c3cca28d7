import { InterlogError } from "../../lib/errors.ts";

/** The browser twin of src/transport/read_pem.ts: a tab checks a wss:// broker against the browser's own CA store. */
export function read_pem(file: string, what: string): Uint8Array {
  throw new InterlogError("CONFIG_INVALID", `a browser cannot read the MQTT ${what} at ${file}: use a wss:// broker whose certificate the browser trusts`);
}
