/**
 * One HTTP request from its own process, so that the process measuring a
 * server's event loop does not also do the client's work:
 *
 *   bun test/admin/body_sender.ts URL CONTENT_TYPE declared|chunked bomb|FILE
 *   bun test/admin/body_sender.ts URL get-page|get-sse
 *
 * POST: `declared` sends the body with a Content-Length, `chunked` as a
 * stream of 64 KiB chunks without one. `bomb` is the CBOR batch bomb of
 * issue #12; otherwise the body is FILE's contents. Prints
 * {"status","body","ms"} (body: the JSON answer).
 *
 * GET: `get-page` reads a page of /api/events, `get-sse` the first event of
 * an event stream; prints {"status","events":[{"pos","payload_bytes"}],"ms"}.
 */
import fs from "node:fs";

export const bomb_bytes = 17 * 1024 * 1024;

/** 17 MiB: a CBOR array head claiming 17 MiB - 5 items, then that many empty byte strings (decoded whole: ~17.8 million Uint8Arrays, about 1.9 GB). */
export function cbor_bomb(): Uint8Array {
  const bomb = new Uint8Array(bomb_bytes);
  bomb[0] = 0x9a; // array, 4-byte count
  new DataView(bomb.buffer).setUint32(1, bomb_bytes - 5);
  bomb.fill(0x40, 5); // empty byte strings
  return bomb;
}

export const sender_script = import.meta.path;

interface EventJson {
  pos: number;
  payload: string;
}

async function get(url: string, what: string): Promise<void> {
  const started = performance.now();
  const res = await fetch(url);
  let events: EventJson[];
  if (what === "get-page") {
    events = ((await res.json()) as { events: EventJson[] }).events;
  } else {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    // Pieces joined only when a message boundary arrives (a few times), not on every chunk of a 22 MiB line.
    const parts: string[] = [];
    let last = "";
    let message: string | undefined;
    while (message === undefined) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the event stream ended before an event");
      const piece = decoder.decode(value, { stream: true });
      parts.push(piece);
      if (!`${last}${piece}`.includes("\n\n")) {
        last = piece.slice(-1);
        continue;
      }
      last = piece.slice(-1);
      const text = parts.join("");
      parts.length = 0;
      const blocks = text.split("\n\n");
      parts.push(blocks.pop() ?? "");
      message = blocks.find((block) => block.startsWith("event: event\n"));
    }
    await reader.cancel();
    const data = message.split("\n").find((line) => line.startsWith("data: "));
    events = [JSON.parse((data ?? "").slice(6)) as EventJson];
  }
  const summary = events.map((e) => ({ pos: e.pos, payload_bytes: Buffer.from(e.payload, "base64").length }));
  process.stdout.write(`${JSON.stringify({ status: res.status, events: summary, ms: performance.now() - started })}\n`);
}

if (import.meta.main && (process.argv[3] === "get-page" || process.argv[3] === "get-sse")) {
  await get(process.argv[2], process.argv[3]);
} else if (import.meta.main) {
  const [url, type, mode, source] = process.argv.slice(2);
  if (url === undefined || type === undefined || (mode !== "declared" && mode !== "chunked") || source === undefined) {
    throw new Error("usage: bun test/admin/body_sender.ts URL CONTENT_TYPE declared|chunked bomb|FILE");
  }
  const bytes = source === "bomb" ? cbor_bomb() : new Uint8Array(fs.readFileSync(source));
  let body: Uint8Array | ReadableStream<Uint8Array> = bytes;
  if (mode === "chunked") {
    let at = 0;
    body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(at, at + 64 * 1024));
        at += 64 * 1024;
      },
    });
  }
  const started = performance.now();
  const res = await fetch(url, { method: "POST", headers: { "content-type": type }, body });
  const text = await res.text();
  process.stdout.write(`${JSON.stringify({ status: res.status, body: JSON.parse(text), ms: performance.now() - started })}\n`);
}
