import path from "node:path";
import type { FileIO } from "../../src/log/file_io.ts";

/**
 * A FileIO that passes every call through to `base` and counts what the log
 * did to its segment files: files made (zero-filled or allocated), and
 * pruned segment files renamed to the spare (recycled) instead.
 */
export interface FileCounts {
  /** create_zeroed and create_zeroed_sync calls. */
  created: number;
  /** Renames of a segment file (`*.seg`) to `spare`. */
  recycled: number;
  /** Unlinks of segment files. */
  unlinked_segments: number;
  /** Every call by method name. */
  calls: Record<string, number>;
}

export function counting_io(base: FileIO): { io: FileIO; counts: FileCounts } {
  const counts: FileCounts = { created: 0, recycled: 0, unlinked_segments: 0, calls: {} };
  const io = new Proxy(base, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function") return value;
      const name = String(prop);
      return (...args: unknown[]) => {
        counts.calls[name] = (counts.calls[name] ?? 0) + 1;
        if (name === "create_zeroed" || name === "create_zeroed_sync") counts.created++;
        if (name === "rename" && String(args[0]).endsWith(".seg") && path.basename(String(args[1])) === "spare") counts.recycled++;
        if (name === "unlink" && String(args[0]).endsWith(".seg")) counts.unlinked_segments++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { io, counts };
}
