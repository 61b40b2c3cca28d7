/**
 * Modules the browser build replaces with a browser twin of the same exports
 * (scripts/browser.ts resolves them through a Bun.build plugin): the Node
 * parts of the log (node:crypto keys, files, bun:ffi) stay out of the page,
 * and everything else (log, replicator, transport) is the same source.
 * Paths are relative to the project root.
 */
export const browser_aliases: Readonly<Record<string, string>> = {
  "src/lib/sha256.ts": "src/browser/platform/sha256.ts",
  "src/log/ed25519_verify.ts": "src/browser/platform/ed25519_verify.ts",
  "src/log/replica_key.ts": "src/browser/platform/replica_key.ts",
  "src/log/file_io.ts": "src/browser/platform/file_io.ts",
  "src/transport/read_pem.ts": "src/browser/platform/read_pem.ts",
};
