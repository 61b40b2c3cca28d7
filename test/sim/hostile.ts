import { encode } from "cbor2";
import { crc32c_update } from "../../src/lib/crc32c.ts";
import type { Random } from "../../src/lib/random.ts";
import { flag_batch_end, frame_header_bytes, frame_size_bytes, write_frame_header } from "../../src/log/frame.ts";
import { new_origin, origin_hi, origin_lo } from "../../src/log/ids.ts";
import { encode_message } from "../../src/sync/messages.ts";
import type { Delivery, SimBroker } from "./sim_broker.ts";

/** A record frame for `origin:seq` with a valid crc. */
export function make_frame(origin: string, seq: number, payload: Uint8Array, time_ms = 1): Uint8Array {
  const bytes = new Uint8Array(frame_size_bytes(payload.length));
  bytes.set(payload, frame_header_bytes);
  write_frame_header(bytes, new DataView(bytes.buffer), 0, origin_hi(origin), origin_lo(origin), seq, time_ms, flag_batch_end, payload);
  return bytes;
}

/** A frame whose seq is 2^53 or more, with a crc that matches (so only the seq check can catch it). */
export function overflow_frame(origin: string, payload: Uint8Array): Uint8Array {
  const bytes = make_frame(origin, 1, payload);
  const view = new DataView(bytes.buffer);
  view.setUint32(20, 0x00200000, true);
  view.setUint32(4, crc32c_update(0, bytes, 8, frame_header_bytes + payload.length), true);
  return bytes;
}

/**
 * A misbehaving client on the simulated broker: random bytes, truncated and
 * replayed messages, impersonation, lying version vectors, corrupt frames,
 * oversize and unknown-version messages, requests for absurd ranges. It never
 * sends a crc-valid event that could pass for real data (nothing can tell
 * forged content from real without signatures; a broker ACL is the defence).
 */
export class Hostile {
  readonly id: string;
  private epoch = 0;
  private readonly captured: Delivery[] = [];
  private victims: string[] = [];
  private max_packet_bytes = 0;
  sent = 0;

  constructor(
    private readonly rng: Random,
    private readonly broker: SimBroker,
    private readonly prefix = "sim",
  ) {
    this.id = new_origin((b) => rng.fill(b));
  }

  connect(max_packet_bytes: number, victims: string[]): void {
    this.max_packet_bytes = max_packet_bytes;
    this.victims = victims;
    this.epoch = this.broker.connect(this.id, [`${this.prefix}/#`], null);
  }

  receive(d: Delivery): void {
    if (this.captured.length >= 64) this.captured.splice(this.rng.int(0, 63), 1);
    this.captured.push(d);
  }

  private topic(kind: string, victim: string): string {
    const p = `${this.prefix}/${this.id}`;
    return kind === "want" || kind === "to" ? `${p}/${kind}/${victim}` : `${p}/${kind}`;
  }

  private send(topic: string, payload: Uint8Array, retain = false): void {
    this.sent++;
    this.broker.publish(this.id, this.epoch, { topic, payload, retain, qos: 1 });
  }

  act(_now_ms: number): void {
    const rng = this.rng;
    const victim = rng.pick(this.victims);
    const kind = rng.pick(["vv", "events", "status", "want", "to"]);
    const base = { v: 1, from: this.id, kind };
    switch (rng.int(0, 11)) {
      case 0:
        return this.send(this.topic(kind, victim), rng.bytes(rng.int(0, 300)));
      case 1: {
        const c = this.captured.length > 0 ? rng.pick(this.captured) : null;
        if (c === null) return;
        const ckind = c.topic.split("/")[2];
        return this.send(this.topic(ckind, victim), c.payload.subarray(0, rng.int(0, Math.max(0, c.payload.length - 1))));
      }
      case 2: {
        // Someone else's message under our own id: `from` gives it away.
        const c = this.captured.length > 0 ? rng.pick(this.captured) : null;
        if (c === null) return;
        const parts = c.topic.split("/");
        return this.send(this.topic(parts[2], parts[3] ?? victim), c.payload);
      }
      case 3: {
        // A replay on the original topic: looks like a broker duplicate.
        const c = this.captured.length > 0 ? rng.pick(this.captured) : null;
        if (c === null) return;
        return this.send(c.topic, c.payload);
      }
      case 4: {
        // Claims events nobody can serve.
        const vv = new Map<string, number>();
        for (const v of this.victims) if (rng.chance(0.5)) vv.set(v, rng.chance(0.5) ? 2 ** 53 - 1 : rng.int(1, 1_000_000));
        return this.send(this.topic("vv", victim), encode_message({ kind: "vv", from: this.id, name: "mallory", vv, pull: "*" }), true);
      }
      case 5: {
        const frame = make_frame(victim, rng.int(1, 1000), rng.bytes(rng.int(0, 100)));
        frame[rng.int(8, frame.length - 1)] ^= 1 << rng.int(0, 7);
        return this.send(this.topic("to", victim), encode({ ...base, kind: "to", to: victim, req: rng.int(0, 100), frames: frame, last: true }));
      }
      case 6:
        return this.send(this.topic("to", victim), encode({ ...base, kind: "to", to: victim, req: 1, frames: overflow_frame(victim, rng.bytes(10)) }));
      case 7:
        // A live push carrying another origin's events.
        return this.send(this.topic("events", victim), encode({ ...base, kind: "events", frames: make_frame(victim, 1, rng.bytes(20)) }));
      case 8:
        return this.send(this.topic(kind, victim), rng.bytes(this.max_packet_bytes + rng.int(1, 1000)));
      case 9:
        return this.send(this.topic(kind, victim), encode({ ...base, v: rng.pick([0, 2, 99, "1"]) }));
      case 10: {
        const ranges = new Uint8Array(24);
        const view = new DataView(ranges.buffer);
        view.setUint32(0, origin_hi(victim), true);
        view.setUint32(4, origin_lo(victim), true);
        view.setUint32(16, 0xffffffff, true);
        view.setUint32(20, rng.chance(0.5) ? 0x1fffff : 0xffffffff, true);
        return this.send(this.topic("want", victim), encode({ ...base, kind: "want", to: victim, req: rng.int(0, 1e6), max: 2 ** 40, ranges }));
      }
      default:
        // Mistyped fields.
        return this.send(this.topic(kind, victim), encode({ ...base, to: victim, req: "x", frames: "nope", vv: [1, 2], online: "yes", name: 5 }));
    }
  }
}
