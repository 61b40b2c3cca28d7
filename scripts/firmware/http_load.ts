/**
 * A paced HTTP append load for scripts/measure-firmware.ts, run as its own
 * process so it does not share an event loop with what is measured:
 *
 *   bun scripts/firmware/http_load.ts URL EVENTS_PER_S SECONDS BATCH CONCURRENCY
 *
 * Sends EVENTS_PER_S events a second to URL/api/events for SECONDS, as
 * single octet-stream events (BATCH 1) or CBOR batches of BATCH events, from
 * CONCURRENCY keep-alive clients that wait for each answer. A client that
 * falls behind its schedule sends at once, so the rate is a ceiling.
 * Prints {"sent_events","acked_events","failed","seconds","events_per_s","p50_ms","p99_ms"}.
 */
import { encode } from "cbor2";

const [url, rate_text, seconds_text, batch_text, concurrency_text] = process.argv.slice(2);
const events_per_s = Number(rate_text);
const seconds = Number(seconds_text);
const batch = Number(batch_text);
const concurrency = Number(concurrency_text);
if (!url || ![events_per_s, seconds, batch, concurrency].every((n) => Number.isFinite(n) && n > 0)) {
  process.stderr.write("usage: bun scripts/firmware/http_load.ts URL EVENTS_PER_S SECONDS BATCH CONCURRENCY\n");
  process.exit(2);
}

const payload = new TextEncoder().encode(JSON.stringify({ lat: 53.5461, lon: 9.9661, t: 0, door: "closed", temp_c: 4.5 }));
const body = batch === 1 ? payload : encode(Array.from({ length: batch }, () => payload));
const headers = { "content-type": batch === 1 ? "application/octet-stream" : "application/cbor" };
const requests_total = Math.floor((events_per_s * seconds) / batch);
const interval_ms = (1000 * batch) / events_per_s;
const latencies: number[] = [];
let next_request = 0;
let acked = 0;
let failed = 0;
const start = performance.now();

async function client(): Promise<void> {
  for (;;) {
    const i = next_request++;
    if (i >= requests_total) return;
    const due = start + i * interval_ms;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    const sent = performance.now();
    try {
      const res = await fetch(`${url}/api/events`, { method: "POST", headers, body });
      await res.arrayBuffer();
      if (res.status === 201) acked += batch;
      else failed++;
    } catch {
      failed++;
    }
    latencies.push(performance.now() - sent);
  }
}

await Promise.all(Array.from({ length: concurrency }, client));
const elapsed_s = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(2));
process.stdout.write(
  `${JSON.stringify({
    sent_events: requests_total * batch,
    acked_events: acked,
    failed,
    seconds: Number(elapsed_s.toFixed(2)),
    events_per_s: Math.round(acked / elapsed_s),
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
  })}\n`,
);
