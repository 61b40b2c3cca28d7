import { type KeyObject, createHash, createPublicKey, verify } from "node:crypto";
import fs from "node:fs";
import { type Command, exit_failed, exit_ok, required_string } from "../usage.ts";

const ed25519_signature_bytes = 64;

/**
 * `interlog verify-manifest`: checks a firmware bundle's MANIFEST.sig, an
 * Ed25519 signature over MANIFEST, against the release public key. install.sh
 * calls the interlog already installed on the device for this (busybox has no
 * Ed25519 verifier), never the binary of the bundle being checked.
 */
export const verify_manifest_command: Command = {
  name: "verify-manifest",
  help: `interlog verify-manifest --key FILE --manifest FILE --signature FILE

Checks that --signature (the 64 raw bytes of an Ed25519 signature, a bundle's
MANIFEST.sig) signs --manifest (its MANIFEST) with the release public key
--key (PEM, e.g. /etc/interlog/release.pub). Used by install.sh before it
trusts a bundle. Exit 0 and {"ok":true,"key_sha256":...} when it does; exit 1
with the reason when it does not or a file cannot be read; 2 on a usage error.`,
  options: { key: { type: "string" }, manifest: { type: "string" }, signature: { type: "string" } },
  async run(values, _positionals, io) {
    const key_file = required_string(values, "key");
    const manifest_file = required_string(values, "manifest");
    const signature_file = required_string(values, "signature");
    const fail = (reason: string) => {
      io.err(`interlog verify-manifest: ${reason}\n`);
      return exit_failed;
    };
    let key: KeyObject;
    let manifest: Buffer;
    let signature: Buffer;
    try {
      const pem = fs.readFileSync(key_file, "utf8");
      // createPublicKey would derive the public half of a private key; a device must never hold that.
      if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem)) return fail(`${key_file} is a private key; a device gets only the public half (release.pub)`);
      key = createPublicKey({ key: pem, format: "pem" });
    } catch (err) {
      return fail(`${key_file} is not a readable PEM public key: ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType !== "ed25519") return fail(`${key_file} is a ${key.asymmetricKeyType ?? "unknown"} key; release keys are Ed25519`);
    try {
      manifest = fs.readFileSync(manifest_file);
      signature = fs.readFileSync(signature_file);
    } catch (err) {
      return fail((err as Error).message);
    }
    if (signature.length !== ed25519_signature_bytes) {
      return fail(`${signature_file} holds ${signature.length} bytes; an Ed25519 signature is ${ed25519_signature_bytes}`);
    }
    if (!verify(null, manifest, key, signature)) return fail(`${signature_file} is not a signature of ${manifest_file} by the key in ${key_file}`);
    const key_sha256 = createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest("hex");
    io.out(`${JSON.stringify({ ok: true, key_sha256 })}\n`);
    return exit_ok;
  },
};
