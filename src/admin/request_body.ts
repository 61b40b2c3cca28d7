/**
 * Reads a request body with a byte limit, refusing as early as it can: by
 * Content-Length before reading anything, else as soon as the bytes taken in
 * pass the limit (a chunked body), and, through `refuse_head`, as soon as its
 * first bytes show the body will be refused anyway. The rest of a refused
 * body is never buffered. Chunks are kept as they arrive and joined once.
 */

export type BodyRead<T> = { kind: "body"; bytes: Uint8Array } | { kind: "too_large" } | { kind: "refused"; refusal: T };

export interface BodyLimits<T> {
  max_bytes: number;
  /** Called once with the first `head_bytes` bytes (fewer when the body is shorter); a non-null answer stops reading. */
  refuse_head?: (head: Uint8Array) => T | null;
  head_bytes?: number;
}

export async function read_body<T>(request: Request, limits: BodyLimits<T>): Promise<BodyRead<T>> {
  const { max_bytes, refuse_head, head_bytes = 0 } = limits;
  const declared = request.headers.get("content-length");
  if (declared !== null && !request.headers.has("transfer-encoding") && Number(declared) > max_bytes) return { kind: "too_large" };
  if (request.body === null) return { kind: "body", bytes: new Uint8Array(0) };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let head_checked = refuse_head === undefined;
  const stop = async <R>(answer: R): Promise<R> => {
    await reader.cancel().catch(() => {});
    return answer;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (!done) {
      size += value.length;
      if (size > max_bytes) return stop({ kind: "too_large" });
      chunks.push(value);
    }
    if (!head_checked && (done || size >= head_bytes)) {
      head_checked = true;
      const refusal = refuse_head?.(join(chunks, Math.min(size, head_bytes)));
      if (refusal !== undefined && refusal !== null) return done ? { kind: "refused", refusal } : stop({ kind: "refused", refusal });
    }
    if (done) break;
  }
  return { kind: "body", bytes: join(chunks, size) };
}

/** The first `length` bytes of the chunks, as one array (the only chunk itself when it is all of them). */
function join(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1 && chunks[0].length === length) return chunks[0];
  const joined = new Uint8Array(length);
  let filled = 0;
  for (const chunk of chunks) {
    if (filled >= length) break;
    const part = chunk.subarray(0, length - filled);
    joined.set(part, filled);
    filled += part.length;
  }
  return joined;
}
