/**
 * Checks one event's signature by hand, step by step, with nothing but the
 * frame bytes and node:crypto (the README's "Checking an event by hand"):
 *
 *   bun scripts/check-event.ts --data-dir DIR --id ORIGIN:SEQ [--out DIR]
 *
 * Prints each step as a JSON line and exits 0 when the signature holds, 1
 * when it does not. With --out, writes pub.pem, message.bin and sig.bin so
 * openssl can check the same signature:
 *
 *   openssl pkeyutl -verify -rawin -pubin -inkey pub.pem -in message.bin -sigfile sig.bin
 */
import { createHash, createPublicKey, verify } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../src/log/log.ts";
import { parse_event_id } from "../src/log/ids.ts";
import { parse_script_args } from "./script_args.ts";

const usage = "usage: bun scripts/check-event.ts --data-dir DIR --id ORIGIN:SEQ [--out DIR]";
const domain = Buffer.from("interlog range v1\0");
const spki_prefix = Buffer.from("302a300506032b6570032100", "hex");
const flag_signed = 4;
const proof_bytes = 104;

async function main(argv: string[]): Promise<number> {
  const values = parse_script_args<{ "data-dir"?: string; id?: string; out?: string }>(
    argv,
    { "data-dir": { type: "string" }, id: { type: "string" }, out: { type: "string" } },
    usage,
  );
  if (typeof values === "number") return values;
  if (values["data-dir"] === undefined || values.id === undefined) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const { origin, seq } = parse_event_id(values.id);
  const step = (what: string, fields: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ step: what, ...fields })}\n`);
  const log = await Log.open({ dir: values["data-dir"], read_only: true });
  try {
    if (log.get(origin, seq) === null) {
      process.stderr.write(`${values.id} is not held in ${values["data-dir"]}\n`);
      return 1;
    }
    // 1. The signed frame that ends the event's range: the first of its origin at or after it with flags & 4.
    let last: Uint8Array | null = null;
    let last_seq = 0;
    for (const e of log.events_after(origin, seq - 1)) {
      const frame = e.frame;
      if ((new DataView(frame.buffer, frame.byteOffset).getUint32(32, true) & flag_signed) !== 0) {
        last = frame;
        last_seq = e.seq;
        break;
      }
    }
    if (last === null) {
      step("1 find the signed frame", { ok: false, why: "no signed frame of this origin after the event (an unsigned tail)" });
      return 1;
    }
    const last_view = new DataView(last.buffer, last.byteOffset, last.byteLength);
    const len = last_view.getUint32(0, true);
    const proof = last.subarray(len - proof_bytes, len);
    const first_seq = Number(new DataView(proof.buffer, proof.byteOffset).getBigUint64(0, true));
    const public_key = proof.subarray(8, 40);
    const signature = proof.subarray(40, 104);
    step("1 find the signed frame", { ok: true, range: `${origin}:${first_seq}..${last_seq}`, public_key: Buffer.from(public_key).toString("hex") });
    // 2. The id is the key's hash.
    const id_of_key = createHash("sha256").update(public_key).digest("hex").slice(0, 16);
    step("2 the id is sha256(public key)[0..8]", { ok: id_of_key === origin, id_of_key });
    if (id_of_key !== origin) return 1;
    // 3. The range's frames, local word zeroed, the last without its crc word and signature.
    const hash = createHash("sha256");
    for (const e of log.events_after(origin, first_seq - 1)) {
      if (e.seq > last_seq) break;
      const frame = Buffer.from(e.frame);
      frame.writeUInt32LE(0, 36);
      if (e.seq === last_seq) {
        hash.update(frame.subarray(0, 4));
        hash.update(frame.subarray(8, len - 64));
      } else hash.update(frame);
    }
    const digest = hash.digest();
    step("3 sha256 of the range", { sha256: digest.toString("hex") });
    // 4. Ed25519 over the domain string and the hash.
    const message = Buffer.concat([domain, digest]);
    const key = createPublicKey({ key: Buffer.concat([spki_prefix, public_key]), format: "der", type: "spki" });
    const ok = verify(null, message, key, signature);
    step("4 the signature", { ok });
    if (values.out !== undefined) {
      fs.mkdirSync(values.out, { recursive: true });
      fs.writeFileSync(path.join(values.out, "pub.pem"), key.export({ format: "pem", type: "spki" }));
      fs.writeFileSync(path.join(values.out, "message.bin"), message);
      fs.writeFileSync(path.join(values.out, "sig.bin"), signature);
    }
    return ok ? 0 : 1;
  } finally {
    await log.close();
  }
}

process.exit(await main(process.argv.slice(2)));
