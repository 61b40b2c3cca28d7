import { type KeyObject, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/**
 * Release signing of firmware bundles. The release key is an Ed25519 key
 * pair: the private half (PKCS#8 PEM) stays with whoever builds releases and
 * signs each bundle's MANIFEST; the public half (SPKI PEM) is configured on
 * devices as /etc/interlog/release.pub, where install.sh refuses any bundle
 * whose MANIFEST.sig does not verify with it.
 */

/** The environment variable `npm run firmware` reads: the path of the release private key (PEM). */
export const release_key_env = "INTERLOG_RELEASE_KEY_FILE";

/** The signature beside MANIFEST in a bundle: the 64 raw bytes of an Ed25519 signature over MANIFEST. */
export const signature_file = "MANIFEST.sig";

export interface ReleaseKey {
  private_key: KeyObject;
  public_key: KeyObject;
  /** sha256 of the public key's DER (SPKI), in hex: names the key in reports. */
  fingerprint: string;
}

export function key_fingerprint(public_key: KeyObject): string {
  return createHash("sha256").update(public_key.export({ type: "spki", format: "der" })).digest("hex");
}

/** Reads an Ed25519 private key from a PEM file; throws with a message naming the file otherwise. */
export function load_release_key(file: string): ReleaseKey {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the release key ${file}: ${(err as Error).message}`);
  }
  let private_key: KeyObject;
  try {
    private_key = createPrivateKey({ key: text, format: "pem" });
  } catch (err) {
    throw new Error(`${file} is not a PEM private key: ${(err as Error).message}`);
  }
  if (private_key.asymmetricKeyType !== "ed25519") {
    throw new Error(`${file} is a ${private_key.asymmetricKeyType ?? "unknown"} key; release keys are Ed25519 (make one with bun scripts/release-key.ts --out DIR)`);
  }
  const public_key = createPublicKey(private_key);
  return { private_key, public_key, fingerprint: key_fingerprint(public_key) };
}

/**
 * The release key named by INTERLOG_RELEASE_KEY_FILE in `env`, or null when
 * the variable is unset or empty. A set variable naming a missing or wrong key
 * throws: a release build must not silently come out unsigned.
 */
export function release_key_from_env(env: Record<string, string | undefined> = process.env): ReleaseKey | null {
  const file = env[release_key_env];
  if (file === undefined || file === "") return null;
  return load_release_key(file);
}

/** Signs MANIFEST's bytes and checks the signature with the public half before returning it. */
export function sign_manifest(key: ReleaseKey, manifest: Uint8Array): Buffer {
  const signature = sign(null, manifest, key.private_key);
  if (!verify(null, manifest, key.public_key, signature)) throw new Error("the new MANIFEST signature does not verify; the release key is broken");
  return signature;
}

export interface KeyPairFiles {
  private_key: string;
  public_key: string;
  fingerprint: string;
}

/** Makes a new Ed25519 release key pair: `release.key` (mode 0600) and `release.pub` in `dir`; never overwrites. */
export function make_release_key_pair(dir: string): KeyPairFiles {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const private_file = path.join(dir, "release.key");
  const public_file = path.join(dir, "release.pub");
  for (const file of [private_file, public_file]) {
    if (fs.existsSync(file)) throw new Error(`${file} exists; not overwriting a release key (move it away first)`);
  }
  // "wx": created here or not at all, never through a link someone left at that name.
  fs.writeFileSync(private_file, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
  fs.writeFileSync(public_file, publicKey.export({ type: "spki", format: "pem" }), { mode: 0o644, flag: "wx" });
  return { private_key: private_file, public_key: public_file, fingerprint: key_fingerprint(publicKey) };
}
