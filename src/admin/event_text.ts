import type { LogEvent } from "../log/log_event.ts";

/**
 * Events as JSON text (the fields and order of cli/event_json.ts), made a
 * piece at a time so that no response holds the event loop: a 16 MiB payload
 * is ~22 MiB of base64, ~150 ms to encode and stringify at once. Payloads are
 * encoded in pieces of payload_piece_bytes (a multiple of 3, so the pieces'
 * base64 joins into one valid string), and writers yield to the event loop
 * whenever they have worked for yield_after_ms.
 */

/** Payload bytes encoded per piece: 256 KiB of base64, about a millisecond. */
export const payload_piece_bytes = 3 * 64 * 1024;
/** Work between two yields to the event loop. */
export const yield_after_ms = 5;

/** The JSON text of one event, in pieces. */
export function* event_json_pieces(event: LogEvent): Generator<string> {
  const p = event.payload;
  const head = `{"pos":${event.pos},"id":"${event.id}","origin":"${event.origin}","seq":${event.seq},"time":${event.time_ms},"payload":"`;
  const tail = event.rejected ? `","rejected":true}` : `"}`;
  if (p.length <= payload_piece_bytes) {
    yield head + base64(p) + tail;
    return;
  }
  yield head;
  for (let at = 0; at < p.length; at += payload_piece_bytes) yield base64(p.subarray(at, at + payload_piece_bytes));
  yield tail;
}

/** `{"events":[...],"next":N}` (and `"pruned_before":P` when P > 0), in pieces. */
export function* page_json_pieces(events: readonly LogEvent[], next: number, pruned_before = 0): Generator<string> {
  yield `{"events":[`;
  for (let i = 0; i < events.length; i++) {
    if (i > 0) yield ",";
    yield* event_json_pieces(events[i]);
  }
  yield pruned_before > 0 ? `],"next":${next},"pruned_before":${pruned_before}}` : `],"next":${next}}`;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Resolves on a later turn of the event loop, after timers and I/O that are due. */
export function next_turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Pieces of text as a byte stream, in chunks of about yield_after_ms of work, each on its own turn of the event loop. */
export function text_stream(pieces: Iterable<string>): ReadableStream<Uint8Array> {
  const it = pieces[Symbol.iterator]();
  const encoder = new TextEncoder();
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!first) await next_turn();
      first = false;
      const started = performance.now();
      let text = "";
      for (;;) {
        const piece = it.next();
        if (piece.done) {
          if (text !== "") controller.enqueue(encoder.encode(text));
          controller.close();
          return;
        }
        text += piece.value;
        if (performance.now() - started >= yield_after_ms) break;
      }
      controller.enqueue(encoder.encode(text));
    },
  });
}

/** Why a held event is gone, for a technician (the API's 410 and the CLI's get). */
export function pruned_message(name: string, origin: string, pruned_through: number, first_pos: number): string {
  return `event ${name} was pruned by retention: this replica no longer stores origin ${origin} up to seq ${pruned_through} (nor any position before ${first_pos}); ask an upstream that holds it`;
}
