import { encode } from "cbor2";
import type { Random } from "../../src/lib/random.ts";
import {
  flag_batch_end,
  flag_signed,
  frame_crc_compute,
  frame_crc_offset,
  frame_flags,
  frame_flags_offset,
  frame_header_bytes,
  frame_len,
  frame_size_at,
  frame_size_bytes,
  write_frame_header,
} from "../../src/log/frame.ts";
import { origin_hi, origin_lo } from "../../src/log/ids.ts";
import { Log } from "../../src/log/log.ts";
import { Malformed } from "../../src/sync/malformed.ts";
import { assemble_message, decode_message, encode_message, protocol_version } from "../../src/sync/messages.ts";
import { type ParsedTopic, type TopicKind, Topics } from "../../src/sync/topics.ts";
import { DecodedEvents, decode_events, encode_frames } from "../../src/sync/wire_events.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import type { WriteRecord } from "./checkers.ts";
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

/** Re-makes the crc of the frame at `at` after its bytes were changed: what a forger does so a crc check passes. */
function fix_crc(frames: Uint8Array, at: number): void {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  view.setUint32(at + frame_crc_offset, frame_crc_compute(frames, at, frame_len(view, at)), true);
}

/** Offsets of the frames in a contiguous region. */
function frame_offsets(frames: Uint8Array): number[] {
  const view = new DataView(frames.buffer, frames.byteOffset, frames.byteLength);
  const out: number[] = [];
  for (let at = 0; at < frames.length; at += frame_size_at(view, at)) out.push(at);
  return out;
}

/**
 * A Byzantine client on the simulated broker. Besides garbage (random bytes,
 * truncated and replayed messages, impersonation, lying version vectors,
 * corrupt frames, oversize and unknown-version messages, absurd requests) it
 * has a real key and log of its own, writes real signed events, claims to
 * hold everything (so honest replicas ask it), and answers their requests
 * with crc-valid forgeries of honest origins' events: payload bit flips with
 * the crc made good, signed runs replayed, reordered, truncated (the proof
 * cut off) or extended with a forged event, its own signed ranges relabelled
 * with a victim's id, and answers nobody asked for. Only signatures can tell
 * these from real events; the simulator's checkers prove no replica stores
 * one.
 */
export class Hostile {
  readonly id: string;
  private epoch = 0;
  private readonly captured: Delivery[] = [];
  /** Signed frame regions seen on the wire (decoded from honest answers and pushes), to replay and forge from. */
  private readonly regions: Uint8Array[] = [];
  private readonly decoded = new DecodedEvents();
  private victims: string[] = [];
  private max_packet_bytes = 0;
  private log: Log | null = null;
  sent = 0;
  forgeries = 0;

  private constructor(
    private readonly rng: Random,
    private readonly broker: SimBroker,
    private readonly writes: WriteRecord,
    private readonly now: () => number,
    private readonly prefix: string,
    log: Log,
  ) {
    this.log = log;
    this.id = log.id;
  }

  /** A hostile client with a real signing log of its own (its events are real, and recorded in `writes`). */
  static async open(rng: Random, broker: SimBroker, writes: WriteRecord, now: () => number, prefix = "sim"): Promise<Hostile> {
    const log = await Log.open({ dir: "/hostile", io: new MemFileIO(), sync: "never", timers: new ManualTimers(), clock: { now_ms: now }, fill_random: (b) => rng.fill(b) });
    return new Hostile(rng, broker, writes, now, prefix, log);
  }

  /** Its own log (its real, signed events). */
  get own_log(): Log {
    return this.log as Log;
  }

  connect(max_packet_bytes: number, victims: string[]): void {
    this.max_packet_bytes = max_packet_bytes;
    this.victims = victims;
    this.epoch = this.broker.connect(this.id, [`${this.prefix}/#`], null);
  }

  receive(d: Delivery): void {
    if (this.captured.length >= 64) this.captured.splice(this.rng.int(0, 63), 1);
    this.captured.push(d);
    const topic: ParsedTopic | null = new Topics(this.prefix).parse(d.topic);
    if (topic === null || topic.from === this.id) return;
    try {
      const m = decode_message(d.payload, topic);
      if ((m.kind === "to" || m.kind === "events") && m.part === null && m.events.length > 0) {
        decode_events(m.events, this.decoded);
        if (this.regions.length >= 32) this.regions.splice(this.rng.int(0, 31), 1);
        const d = this.decoded;
        const last_at = d.start[d.count - 1] - frame_header_bytes;
        this.regions.push(d.frames.slice(0, last_at + frame_size_bytes(d.end[d.count - 1] - d.start[d.count - 1])));
      }
      if (m.kind === "want" && topic.peer === this.id) this.answer_forged(topic.from, m.req);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
    }
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

  /** Writes a real event of its own (signed, recorded) and pushes it, as an honest replica would. */
  private write_own(): void {
    const log = this.log as Log;
    const payload = this.rng.bytes(this.rng.int(1, 60));
    const seq = log.append(payload);
    this.writes.record(this.id, seq, [payload], this.now());
    const frames = new Uint8Array(Buffer.concat([...log.events_after(this.id, seq - 1)].map((e) => e.frame)));
    this.send(this.topic("events", this.id), forge("events", { from: this.id }, encode_frames(frames)));
  }

  /**
   * Frames that look like an honest origin's and are not: from a captured
   * signed region, one of the forgeries the class comment lists. Every one
   * has crcs that check.
   */
  private forged_frames(): Uint8Array | null {
    const rng = this.rng;
    if (this.regions.length === 0) return null;
    const frames = rng.pick(this.regions).slice();
    const view = new DataView(frames.buffer);
    const offsets = frame_offsets(frames);
    const pick = rng.int(0, offsets.length - 1);
    const at = offsets[pick];
    switch (rng.int(0, 4)) {
      case 0: {
        // A payload (or proof) bit flipped, the crc made good.
        const len = frame_len(view, at);
        if (len <= frame_header_bytes) return null;
        frames[at + rng.int(frame_header_bytes, len - 1)] ^= 1 << rng.int(0, 7);
        fix_crc(frames, at);
        return frames;
      }
      case 1: {
        // Truncated: the frames before a signed one, without it.
        return frames.subarray(0, at);
      }
      case 2: {
        // Extended: a forged event continuing a signed range (unsigned, or claiming a proof it does not have).
        const last = offsets[offsets.length - 1];
        const extra = frames.slice(last, last + frame_size_at(view, last));
        const ev = new DataView(extra.buffer);
        ev.setUint32(16, ev.getUint32(16, true) + 1, true);
        if (rng.chance(0.5)) ev.setUint32(frame_flags_offset, frame_flags(ev, 0) & ~flag_signed, true);
        fix_crc(extra, 0);
        return new Uint8Array(Buffer.concat([frames, extra]));
      }
      case 3: {
        // Reordered: the frames of the region in another order (same bytes, chains broken).
        const parts = offsets.map((o) => frames.slice(o, o + frame_size_at(view, o)));
        for (let i = parts.length - 1; i > 0; i--) {
          const j = rng.int(0, i);
          [parts[i], parts[j]] = [parts[j], parts[i]];
        }
        return new Uint8Array(Buffer.concat(parts));
      }
      default: {
        // Its own signed range relabelled as a victim origin's (the key in the proof is not the victim's).
        const log = this.log as Log;
        if (log.held(this.id) === 0) return null;
        const own = new Uint8Array(Buffer.concat([...log.events_after(this.id, log.held(this.id) - 1)].map((e) => e.frame)));
        const victim = rng.pick(this.victims);
        const oview = new DataView(own.buffer);
        for (const o of frame_offsets(own)) {
          oview.setUint32(o + 8, origin_hi(victim), true);
          oview.setUint32(o + 12, origin_lo(victim), true);
          fix_crc(own, o);
        }
        return own;
      }
    }
  }

  /** Answers a request (it claimed to hold everything) with forged, replayed or reordered events, with the right req. */
  private answer_forged(requester: string, req: number): void {
    const frames = this.rng.chance(0.3) && this.regions.length > 0 ? this.rng.pick(this.regions) : this.forged_frames();
    const events = frames === null || frames.length === 0 ? new Uint8Array(0) : encode_frames(frames);
    if (events.length + 64 > this.max_packet_bytes) return;
    this.forgeries++;
    this.send(this.topic("to", requester), forge("to", { from: this.id, to: requester, req, last: true }, events));
  }

  act(_now_ms: number): void {
    const rng = this.rng;
    const victim = rng.pick(this.victims);
    const kind = rng.pick<TopicKind>(["vv", "entry", "events", "status", "want", "to"]);
    const base = { from: this.id };
    switch (rng.int(0, 14)) {
      case 12:
        return this.write_own();
      case 13: {
        // An answer nobody asked for, carrying forged or replayed events.
        const frames = this.forged_frames();
        if (frames === null || frames.length === 0) return;
        const events = encode_frames(frames);
        if (events.length + 64 > this.max_packet_bytes) return;
        return this.send(this.topic("to", victim), forge("to", { ...base, to: victim, req: rng.int(0, 100), last: true }, events));
      }
      case 14: {
        // Claims to hold every origin far ahead, so honest replicas ask it (and get forgeries).
        const vv = new Map<string, number>();
        for (const v of this.victims) vv.set(v, rng.int(1, 500));
        vv.set(this.id, (this.log as Log).held(this.id));
        return this.send(this.topic("vv", victim), encode_message({ kind: "vv", from: this.id, name: "mallory", vv, pull: "*" }), true);
      }
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
