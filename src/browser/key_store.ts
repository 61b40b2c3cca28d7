import { hex_of, id_of_public_key } from "../log/key_id.ts";
import type { Signer } from "../log/signer.ts";
import { done, open_db, request } from "./idb.ts";

/**
 * A tab's replica key: an Ed25519 pair made by WebCrypto with a
 * non-extractable private key, kept in IndexedDB (a CryptoKey is stored by
 * structured clone, never as bytes a script could read). Its id is the
 * public key's, as on a device (key_id.ts).
 */
export class WebCryptoSigner implements Signer {
  readonly asynchronous = true;
  readonly public_key_hex: string;
  constructor(
    readonly id: string,
    readonly public_key: Uint8Array,
    private readonly private_key: CryptoKey,
  ) {
    this.public_key_hex = hex_of(public_key);
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, this.private_key, message.slice()));
  }
}

const store_name = "keys";
const entry = "replica";

async function signer_of(pair: CryptoKeyPair): Promise<WebCryptoSigner> {
  const public_key = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return new WebCryptoSigner(id_of_public_key(public_key), public_key, pair.privateKey);
}

/** The tab's key from database `db_name`, made and stored on first use. */
export async function load_or_create_key(db_name: string): Promise<WebCryptoSigner> {
  const db = await open_db(db_name, [store_name]);
  try {
    const stored = (await request(db.transaction(store_name).objectStore(store_name).get(entry))) as CryptoKeyPair | undefined;
    if (stored !== undefined) return await signer_of(stored);
    for (;;) {
      const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as unknown as CryptoKeyPair;
      const signer = await signer_of(pair);
      if (signer.id === "0000000000000000") continue; // no frame may carry origin 0
      const tx = db.transaction(store_name, "readwrite", { durability: "strict" });
      // add, not put: a second tab that made its own key at the same moment loses, and both use the stored one.
      tx.objectStore(store_name).add(pair, entry);
      try {
        await done(tx);
        return signer;
      } catch {
        const winner = (await request(db.transaction(store_name).objectStore(store_name).get(entry))) as CryptoKeyPair | undefined;
        if (winner === undefined) throw new Error("could not store the replica key in IndexedDB (is storage blocked or full?)");
        return await signer_of(winner);
      }
    }
  } finally {
    db.close();
  }
}
