import { type ObjectCreator, decode } from "cbor2";
import { encode_envelope } from "./envelope_cbor.ts";
import { Malformed } from "./malformed.ts";
import { type SeqRange, decode_ids, decode_ranges, decode_vv, encode_ids, encode_ranges, encode_vv } from "./packed.ts";
import type { ParsedTopic, TopicKind } from "./topics.ts";

/**
 * The wire format (protocol v3: signed ranges). Every MQTT message is
 *
 *   u8 version (3) | u8 kind | u32 envelope_bytes (LE) | envelope | events
 *
 * where the envelope is a small CBOR map (`{from, ...}`; receivers ignore
 * fields they do not know, so a version can grow compatibly) and `events`,
 * on events and answer messages, is the compact run encoding of
 * wire_events.ts: about 8 bytes per event instead of the 40-byte record
 * header, and the receiver rebuilds the origin's frames bit for bit. v1
 * (a CBOR map carrying whole record frames) is gone: it spent 15.6 % on
 * headers for a 256-byte event.
 */
export const protocol_version = 3;
export const message_prefix_bytes = 6;
const kind_codes: Record<TopicKind, number> = { vv: 1, status: 2, events: 3, want: 4, to: 5, entry: 6 };
export const want_ranges_max = 256;
export const name_max_chars = 256;

/**
 * One fragment of an event too large for one message: bytes
 * [at, at + frames.length) of a frame of `total` bytes whose crc is `id`.
 */
export interface Part {
  at: number;
  total: number;
  id: number;
}

export interface VvMessage {
  kind: "vv";
  from: string;
  name: string;
  /** Durable version vector: origin -> highest seq held durably. */
  vv: Map<string, number>;
  pull: "*" | string[];
  /**
   * The crc32c of the sender's own event at its own vv entry (its newest
   * durable one): a replica holding that seq with another crc sees a clone
   * of the sender's data directory. Absent when it holds none.
   */
  head?: { seq: number; crc: number } | null;
}

/**
 * One entry of the sender's durable vv, retained on `P/<from>/vv/<origin>`:
 * the acknowledgement a replica that pulls few origins waits for (its own
 * entry) and the sources of what it pulls, without the whole vv of a hub
 * that grows with the fleet.
 */
export interface EntryMessage {
  kind: "entry";
  from: string;
  name: string;
  /** The origin (from the topic). */
  origin: string;
  /** The sender holds origin's events 1..seq durably (0: none). */
  seq: number;
  /** Whether the sender pulls (keeps) this origin's events. */
  pulls: boolean;
}

export interface StatusMessage {
  kind: "status";
  from: string;
  online: boolean;
  /** Changes with every connection, so peers can tell a reconnect from a replayed retained status. */
  session: number;
}

export interface EventsMessage {
  kind: "events";
  from: string;
  /** Encoded events (wire_events.ts), or a fragment of one encoded event. */
  events: Uint8Array;
  part: Part | null;
}

export interface WantMessage {
  kind: "want";
  from: string;
  to: string;
  req: number;
  /** How many bytes of frames the requester takes in answer to this request (its flow-control window). */
  max_bytes: number;
  ranges: SeqRange[];
}

export interface AnswerMessage {
  kind: "to";
  from: string;
  to: string;
  req: number;
  /** Encoded events (wire_events.ts), or a fragment of one encoded event. */
  events: Uint8Array;
  part: Part | null;
  /** The final message answering `req`. */
  last: boolean;
  /** On the last message: what the sender durably holds of origins it could not serve up to `upto`. */
  held: Map<string, number> | null;
  /**
   * On the last message: origin -> F, "this sender pruned that origin's
   * events through seq F (retention)", for requested ranges starting below
   * F; those ranges are not served (the requester could not take later
   * events without the pruned ones) and it asks another peer. Optional
   * (absent when nothing asked for was pruned): receivers that do not know
   * the field ignore it, so protocol v3 is unchanged.
   */
  gone?: Map<string, number> | null;
}

export type SyncMessage = VvMessage | EntryMessage | StatusMessage | EventsMessage | WantMessage | AnswerMessage;

/** Encodes `m`; into `buffer` (from a MessagePool) when given and large enough, else a new one. */
export function encode_message(m: SyncMessage, buffer: Uint8Array | null = null): Uint8Array {
  const base = { from: m.from };
  let envelope: Record<string, unknown>;
  let events: Uint8Array | null = null;
  switch (m.kind) {
    case "vv":
      envelope = { ...base, name: m.name, vv: encode_vv(m.vv), pull: m.pull === "*" ? "*" : encode_ids(m.pull) };
      if (m.head !== undefined && m.head !== null) envelope.head = [m.head.seq, m.head.crc];
      break;
    case "entry":
      envelope = { ...base, name: m.name, seq: m.seq, pulls: m.pulls };
      break;
    case "status":
      envelope = { ...base, online: m.online, session: m.session };
      break;
    case "events":
      envelope = m.part === null ? base : { ...base, part: [m.part.at, m.part.total, m.part.id] };
      events = m.events;
      break;
    case "want":
      envelope = { ...base, to: m.to, req: m.req, max: m.max_bytes, ranges: encode_ranges(m.ranges) };
      break;
    case "to": {
      envelope = { ...base, to: m.to, req: m.req };
      if (m.part !== null) envelope.part = [m.part.at, m.part.total, m.part.id];
      if (m.last) envelope.last = true;
      if (m.held !== null && m.held.size > 0) envelope.held = encode_vv(m.held);
      if (m.gone !== undefined && m.gone !== null && m.gone.size > 0) envelope.gone = encode_vv(m.gone);
      events = m.events;
      break;
    }
  }
  return assemble_message(m.kind, encode_envelope(envelope), events, protocol_version, buffer);
}

/** Frames an envelope (already CBOR) and an events region into one message. Exported for tests that forge messages. */
export function assemble_message(
  kind: TopicKind,
  envelope: Uint8Array,
  events: Uint8Array | null,
  version = protocol_version,
  buffer: Uint8Array | null = null,
): Uint8Array {
  const events_bytes = events === null ? 0 : events.length;
  const total = message_prefix_bytes + envelope.length + events_bytes;
  const bytes = buffer !== null && buffer.length >= total ? buffer.subarray(0, total) : new Uint8Array(total);
  bytes[0] = version;
  bytes[1] = kind_codes[kind];
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(2, envelope.length, true);
  bytes.set(envelope, message_prefix_bytes);
  if (events !== null) bytes.set(events, message_prefix_bytes + envelope.length);
  return bytes;
}

/**
 * A map with text keys becomes a plain object, and a key given twice is an
 * error (a peer must not say two things). Done here rather than with cbor2's
 * rejectDuplicateKeys, which hex-encodes every key of every map: 13 of the
 * 20 us a small envelope took to decode.
 */
const envelope_object: ObjectCreator = (entries) => {
  const seen = new Set<string>();
  for (const [key] of entries) {
    if (typeof key !== "string") return new Map(entries.map(([k, v]) => [k, v]));
    if (seen.has(key)) throw new Error(`duplicate map key "${key.slice(0, 40)}"`);
    seen.add(key);
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, v]));
};

const decode_options = { maxDepth: 4, ignoreGlobalTags: true, createObject: envelope_object } as const;

function decode_head(value: unknown): { seq: number; crc: number } | null {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length !== 2) throw new Malformed("bad_shape", "field head is not [seq, crc]");
  const [seq, crc] = value as unknown[];
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) throw new Malformed("bad_shape", "field head has no valid seq");
  if (typeof crc !== "number" || !Number.isInteger(crc) || crc < 0 || crc > 0xffffffff) throw new Malformed("bad_shape", "field head has no valid crc");
  return { seq, crc };
}

function bytes_field(body: Record<string, unknown>, key: string): Uint8Array {
  const value = body[key];
  if (!(value instanceof Uint8Array)) throw new Malformed("bad_shape", `field ${key} is not a byte string`);
  return value;
}

function count_field(body: Record<string, unknown>, key: string, min: number): number {
  const value = body[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new Malformed(typeof value === "bigint" ? "seq_overflow" : "bad_shape", `field ${key} is not an integer >= ${min}`);
  }
  return value;
}

function part_field(body: Record<string, unknown>): Part | null {
  const value = body.part;
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length !== 3) throw new Malformed("bad_shape", "field part is not [at, total, id]");
  const [at, total, id] = value as unknown[];
  if (
    typeof at !== "number" ||
    typeof total !== "number" ||
    typeof id !== "number" ||
    !Number.isSafeInteger(at) ||
    !Number.isSafeInteger(total) ||
    !Number.isSafeInteger(id) ||
    at < 0 ||
    total < 1 ||
    at >= total
  ) {
    throw new Malformed("bad_part", "field part is out of range");
  }
  return { at, total, id };
}

/**
 * Decodes a message received on `topic`. Throws Malformed (with the drop
 * reason) for anything that is not a well-formed v2 message of the topic's
 * kind from the replica named in the topic. Events are checked later.
 */
export function decode_message(bytes: Uint8Array, topic: ParsedTopic): SyncMessage {
  if (bytes.length < message_prefix_bytes) throw new Malformed("bad_cbor", `a message of ${bytes.length} bytes`);
  if (bytes[0] !== protocol_version) throw new Malformed("unknown_version", `version ${bytes[0]}`);
  if (bytes[1] !== kind_codes[topic.kind]) throw new Malformed("bad_shape", `kind ${bytes[1]} on a ${topic.kind} topic`);
  const envelope_end = message_prefix_bytes + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2, true);
  if (envelope_end > bytes.length) throw new Malformed("bad_cbor", "an envelope longer than the message");
  let value: unknown;
  try {
    value = decode(bytes.subarray(message_prefix_bytes, envelope_end), decode_options);
  } catch (err) {
    throw new Malformed("bad_cbor", `not CBOR: ${String(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Map || value instanceof Uint8Array) {
    throw new Malformed("bad_cbor", "not a CBOR map with text keys");
  }
  const body = value as Record<string, unknown>;
  if (typeof body.from !== "string") throw new Malformed("bad_shape", "field from is not text");
  if (body.from !== topic.from) throw new Malformed("impersonation", `from ${body.from} on a topic of ${topic.from}`);
  const events = bytes.subarray(envelope_end);
  const carries_events = topic.kind === "events" || topic.kind === "to";
  if (!carries_events && events.length > 0) throw new Malformed("bad_shape", `${events.length} bytes after a ${topic.kind} envelope`);
  const from = topic.from;
  switch (topic.kind) {
    case "vv": {
      const name = body.name;
      if (typeof name !== "string" || name.length > name_max_chars) throw new Malformed("bad_shape", "field name is not a short text");
      const pull = body.pull === "*" ? "*" : decode_ids(bytes_field(body, "pull"));
      const head = decode_head(body.head);
      return head === null ? { kind: "vv", from, name, vv: decode_vv(bytes_field(body, "vv")), pull } : { kind: "vv", from, name, vv: decode_vv(bytes_field(body, "vv")), pull, head };
    }
    case "entry": {
      const name = body.name;
      if (typeof name !== "string" || name.length > name_max_chars) throw new Malformed("bad_shape", "field name is not a short text");
      if (typeof body.pulls !== "boolean") throw new Malformed("bad_shape", "field pulls is not a boolean");
      return { kind: "entry", from, name, origin: topic.peer as string, seq: count_field(body, "seq", 0), pulls: body.pulls };
    }
    case "status":
      if (typeof body.online !== "boolean") throw new Malformed("bad_shape", "field online is not a boolean");
      return { kind: "status", from, online: body.online, session: body.session === undefined ? 0 : count_field(body, "session", 0) };
    case "events":
      return { kind: "events", from, events, part: part_field(body) };
    case "want": {
      if (body.to !== topic.peer) throw new Malformed("bad_shape", "field to does not match the topic");
      const ranges = decode_ranges(bytes_field(body, "ranges"));
      if (ranges.length > want_ranges_max) throw new Malformed("bad_shape", `more than ${want_ranges_max} ranges`);
      return { kind: "want", from, to: topic.peer as string, req: count_field(body, "req", 0), max_bytes: count_field(body, "max", 1), ranges };
    }
    case "to": {
      if (body.to !== topic.peer) throw new Malformed("bad_shape", "field to does not match the topic");
      if (body.last !== undefined && typeof body.last !== "boolean") throw new Malformed("bad_shape", "field last is not a boolean");
      const held = body.held === undefined ? null : decode_vv(bytes_field(body, "held"), true);
      const answer: AnswerMessage = {
        kind: "to",
        from,
        to: topic.peer as string,
        req: count_field(body, "req", 0),
        events,
        part: part_field(body),
        last: body.last === true,
        held,
      };
      // Absent unless sent, so a message decodes as it was built.
      if (body.gone !== undefined) answer.gone = decode_vv(bytes_field(body, "gone"));
      return answer;
    }
  }
}
