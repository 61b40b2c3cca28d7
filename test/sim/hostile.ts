import { encode } from "cbor2";
import type { Random } from "../../src/lib/random.ts";
import { flag_batch_end, frame_header_bytes, frame_size_bytes, write_frame_header } from "../../src/log/frame.ts";
import { new_origin, origin_hi, origin_lo } from "../../src/log/ids.ts";
import { assemble_message, encode_message, protocol_version } from "../../src/sync/messages.ts";
import type { TopicKind } from "../../src/sync/topics.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import type { Delivery, SimBroker } from "./sim_broker.ts";

/** A record frame for `origin:seq` with a valid crc. */
export function make_frame(origin: string, seq: number, payload: Uint8Array, time_ms = 1, flags = flag_batch_end): Uint8Array {
  const bytes = new Uint8Array(frame_size_bytes(payload.length));
  bytes.set(payload, frame_header_bytes);
  write_frame_header(bytes, new DataView(bytes.buffer), 0, origin_hi(origin), origin_lo(origin), seq, time_ms, flags, payload);
  return bytes;
}

/** The wire encoding of one event `origin:seq` with a valid crc. */
export function make_events(origin: string, seq: number, payload: Uint8Array, time_ms = 1): Uint8Array {
  return encode_frames(make_frame(origin, seq, payload, time_ms));
}

/** Encoded events whose run starts at a seq of 2^53 or more (only the seq check can catch it). */
export function overflow_events(origin: string, payload: Uint8Array): Uint8Array {
  const bytes = make_events(origin, 1, payload);
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(12, 0x00200000, true);
  return bytes;
}

/** A message with any envelope at all (CBOR-encoded as given), for forging bad ones. */
export function forge(kind: TopicKind, envelope: unknown, events: Uint8Array | null = null, version = protocol_version): Uint8Array {
  return assemble_message(kind, encode(envelope), events, version);
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
    if (kind === "entry") return `${p}/vv/${victim}`;
    return kind === "want" || kind === "to" ? `${p}/${kind}/${victim}` : `${p}/${kind}`;
  }

  private send(topic: string, payload: Uint8Array, retain = false): void {
    this.sent++;
    this.broker.publish(this.id, this.epoch, { topic, payload, retain, qos: 1 });
  }

  act(_now_ms: number): void {
    const rng = this.rng;
    const victim = rng.pick(this.victims);
    const kind = rng.pick<TopicKind>(["vv", "entry", "events", "status", "want", "to"]);
    const base = { from: this.id };
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
        const events = make_events(victim, rng.int(1, 1000), rng.bytes(rng.int(0, 100)));
        events[rng.int(0, events.length - 1)] ^= 1 << rng.int(0, 7);
        return this.send(this.topic("to", victim), forge("to", { ...base, to: victim, req: rng.int(0, 100), last: true }, events));
      }
      case 6:
        return this.send(this.topic("to", victim), forge("to", { ...base, to: victim, req: 1 }, overflow_events(victim, rng.bytes(10))));
      case 7:
        // A live push carrying another origin's events.
        return this.send(this.topic("events", victim), forge("events", base, make_events(victim, 1, rng.bytes(20))));
      case 8:
        return this.send(this.topic(kind, victim), rng.bytes(this.max_packet_bytes + rng.int(1, 1000)));
      case 9:
        return this.send(this.topic(kind, victim), forge(kind, base, null, rng.pick([0, 1, 3, 99, 255])));
      case 10: {
        const ranges = new Uint8Array(24);
        const view = new DataView(ranges.buffer);
        view.setUint32(0, origin_hi(victim), true);
        view.setUint32(4, origin_lo(victim), true);
        view.setUint32(16, 0xffffffff, true);
        view.setUint32(20, rng.chance(0.5) ? 0x1fffff : 0xffffffff, true);
        return this.send(this.topic("want", victim), forge("want", { ...base, to: victim, req: rng.int(0, 1e6), max: 2 ** 40, ranges }));
      }
      default:
        // Mistyped fields.
        return this.send(this.topic(kind, victim), forge(kind, { ...base, to: victim, req: "x", part: "nope", vv: [1, 2], online: "yes", name: 5 }));
    }
  }
}
