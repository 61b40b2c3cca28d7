import type { DropReason } from "./counters.ts";

/** Thrown inside the decoders when a received message must be dropped; never escapes the Replicator. */
export class Malformed extends Error {
  readonly reason: DropReason;

  constructor(reason: DropReason, message: string) {
    super(message);
    this.name = "Malformed";
    this.reason = reason;
  }
}
