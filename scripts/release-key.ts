/**
 * Makes a new Ed25519 release key pair for signing firmware bundles:
 *
 *   bun scripts/release-key.ts --out DIR
 *
 * writes DIR/release.key (private, PKCS#8 PEM, mode 0600) and DIR/release.pub
 * (public, SPKI PEM) and prints {"private_key","public_key","fingerprint"}.
 * It never overwrites a key. Build signed bundles with
 * INTERLOG_RELEASE_KEY_FILE=DIR/release.key npm run firmware, and put
 * release.pub on devices as /etc/interlog/release.pub (or pass it to
 * install.sh --release-key on the first install). Keep release.key off the
 * devices and out of the repository.
 */
import path from "node:path";
import { parse_script_args } from "./script_args.ts";
import { make_release_key_pair } from "./firmware/signing.ts";

const usage = "usage: bun scripts/release-key.ts --out DIR";

function main(argv: string[]): number {
  const values = parse_script_args<{ out?: string }>(argv, { out: { type: "string" } }, usage);
  if (typeof values === "number") return values;
  if (values.out === undefined || values.out === "") {
    process.stderr.write(`--out is required\n${usage}\n`);
    return 2;
  }
  const pair = make_release_key_pair(path.resolve(values.out));
  process.stdout.write(`${JSON.stringify(pair)}\n`);
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`release-key: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
