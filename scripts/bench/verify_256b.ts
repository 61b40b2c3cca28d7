import { createHash } from "node:crypto";
import { Log } from "../../src/log/log.ts";
import { KeyRing } from "../../src/log/key_ring.ts";
import { keep_signed_ranges } from "../../src/log/signed_ranges.ts";
import { DecodedEvents, EventsChunker, EventsEncoder, decode_events } from "../../src/sync/wire_events.ts";
import type { BenchContext } from "./context.ts";
import { payload_pool } from "./payloads.ts";
import type { Benchmark } from "./types.ts";

const payload_bytes = 256;
const events = 200_000;
/** The default MQTT packet limit (AWS IoT Core's), less room for the envelope. */
const chunk_bytes = 127 * 1024;
const rounds = 5;
const min_events_per_s = 3_000_000;

/**
 * What a receiver does with every answer: decode the run encoding, rebuild
 * each frame and check its crc, hash each signed range and verify its
 * Ed25519 signature (decode_events + keep_signed_ranges). The events come
 * from a real origin log appending 256 B payloads one by one (sync=never,
 * so ranges are what its flushes make). Baseline: SHA-256 of the same
 * message bytes in one call each (the hashing alone, at the hardware's rate).
 */
export const verify_256b_events_per_s: Benchmark = {
  name: "verify_256b_events_per_s",
  unit: "events/s",
  description: `decode + crc + signature check of received ${payload_bytes} B events in ${chunk_bytes / 1024} KiB messages; baseline: SHA-256 of the same messages (events/s)`,
  target: { text: `>= ${min_events_per_s / 1e6}M/s`, met: (r) => r.value >= min_events_per_s },
  async run(ctx: BenchContext) {
    const dir = ctx.fresh_dir("verify");
    const log = await Log.open({ dir, sync: "never" });
    const pool = payload_pool(payload_bytes);
    for (let i = 0; i < events; i++) log.append(pool[i % pool.length]);
    const messages: Uint8Array[] = [];
    let fragments = 0;
    const encoder = new EventsEncoder(chunk_bytes);
    const chunker = new EventsChunker(encoder, (bytes, part) => {
      if (part !== null) fragments++;
      else messages.push(bytes.slice());
    });
    let ranges = 0;
    log.scan_origin(log.id, 0, (map, view, at) => {
      if ((view.getUint32(at + 32, true) & 4) !== 0) ranges++;
      chunker.add(map, view, at);
      return true;
    });
    chunker.flush();
    await log.close();
    ctx.remove_dir(dir);
    if (fragments > 0) throw new Error(`${fragments} fragments: ranges larger than a message; the bench measures whole messages only`);
    ctx.progress(`${events} events in ${ranges} signed ranges (${(events / ranges).toFixed(0)} events each), ${messages.length} messages`);

    const decoded = new DecodedEvents();
    let best = 0;
    let best_hash = 0;
    for (let round = 1; round <= rounds; round++) {
      const keys = new KeyRing();
      let kept = 0;
      const t0 = performance.now();
      for (const m of messages) {
        decode_events(m, decoded);
        kept += keep_signed_ranges(decoded, keys, (problem) => {
          throw new Error(`a range of the origin's own events failed: ${problem}`);
        });
      }
      const s = (performance.now() - t0) / 1000;
      if (kept !== events) throw new Error(`kept ${kept} of ${events} events`);
      best = Math.max(best, events / s);
      const h0 = performance.now();
      for (const m of messages) createHash("sha256").update(m).digest();
      best_hash = Math.max(best_hash, events / ((performance.now() - h0) / 1000));
      ctx.progress(`round ${round}: ${(events / s / 1e6).toFixed(2)} M events/s verified (${((s * 1e9) / events).toFixed(0)} ns each)`);
    }
    return { value: best, baseline: best_hash, ratio: best / best_hash };
  },
};
