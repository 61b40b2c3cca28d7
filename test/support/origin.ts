import { without_local_marks } from "../../src/log/frame.ts";
import { Log, type LogOptions } from "../../src/log/log.ts";
import { temp_dir } from "./temp_dir.ts";

const encoder = new TextEncoder();

/**
 * Another replica that writes events: a real Log of its own (own key, own
 * id), so what it hands over is signed exactly as a peer's events are.
 * Tests give its frames to `Log.accept_frames` where they used to make up
 * foreign events: a made-up event can no longer be stored.
 */
export class Origin {
  private constructor(readonly log: Log) {}

  static async open(options: Partial<LogOptions> = {}): Promise<Origin> {
    return new Origin(await Log.open({ dir: temp_dir("origin-"), sync: "never", ...options }));
  }

  get id(): string {
    return this.log.id;
  }

  /**
   * Appends the payloads as one batch and returns their frames, signed (one
   * range), ready for accept_frames.
   */
  write(...payloads: (Uint8Array | string)[]): Uint8Array {
    const bytes = payloads.map((p) => (typeof p === "string" ? encoder.encode(p) : p));
    const first = bytes.length === 1 ? this.log.append(bytes[0]) : this.log.append_batch(bytes);
    return this.frames(first - 1);
  }

  /** The frames of this origin's events with seq in (after, upto], as stored (signed ranges whole when the bounds are range ends). */
  frames(after = 0, upto = Number.POSITIVE_INFINITY): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const e of this.log.events_after(this.id, after)) {
      if (e.seq > upto) break;
      parts.push(e.frame);
    }
    // As the origin wrote them: the local words (write epochs) are this log's, not the origin's.
    return without_local_marks(new Uint8Array(Buffer.concat(parts)));
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
