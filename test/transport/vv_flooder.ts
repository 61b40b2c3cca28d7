/**
 * A hostile client, run as its own process so its memory is not the
 * replica's: publishes `count` retained vv messages from `count` new liar
 * ids, each claiming 8 000 made-up origins (128 000 bytes of entries, a
 * 128 KiB message), then prints how many bytes it sent.
 *
 *   bun test/transport/vv_flooder.ts URL PREFIX ROUND [COUNT]
 *
 * Round r uses liar ids and origins of its own, so floods never repeat.
 * `clear` instead of ROUND removes the retained messages of rounds 0..COUNT-1.
 */
import mqtt from "mqtt";
import { encode_message } from "../../src/sync/messages.ts";

export const entries_per_vv = 8000;
export const vvs_per_round = 100;
const id = (n: number): string => n.toString(16).padStart(16, "0");
export const flood_liar = (round: number, n: number): string => id(0xbad0_0000 + round * vvs_per_round + n);

if (import.meta.main) {
  const [url, prefix, round_text, count_text] = process.argv.slice(2);
  const client = mqtt.connect(url, { clientId: `mallory-${process.pid}`, protocolVersion: 5, clean: true });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  let bytes = 0;
  if (round_text === "clear") {
    for (let round = 0; round < Number(count_text ?? 1); round++) {
      for (let n = 0; n < vvs_per_round; n++) await client.publishAsync(`${prefix}/${flood_liar(round, n)}/vv`, Buffer.alloc(0), { qos: 1, retain: true });
    }
  } else {
    const round = Number(round_text);
    for (let n = 0; n < Number(count_text ?? vvs_per_round); n++) {
      const liar = flood_liar(round, n);
      const vv = new Map<string, number>();
      for (let k = 0; k < entries_per_vv; k++) vv.set(id(0x5000_0000_0000 + (round * vvs_per_round + n) * entries_per_vv + k), 1 + ((n * 7919 + k) % 1_000_000));
      const payload = Buffer.from(encode_message({ kind: "vv", from: liar, name: "mallory", vv, pull: "*" }));
      bytes += payload.length;
      await client.publishAsync(`${prefix}/${liar}/vv`, payload, { qos: 1, retain: true });
    }
  }
  await client.endAsync();
  console.log(JSON.stringify({ bytes }));
}
