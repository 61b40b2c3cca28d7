import { decode, encode } from "cbor2";
import { Malformed } from "./malformed.ts";
import { type SeqRange, decode_ids, decode_ranges, decode_vv, encode_ids, encode_ranges, encode_vv } from "./packed.ts";
import type { ParsedTopic } from "./topics.ts";

/**
 * The wire format: a small versioned CBOR map `{v, from, kind, ...}` per MQTT
 * message. Events travel inside `frames` as the log's own checksummed record
 * frames packed into one byte string (design.md section 3), so a batch is
 * copied out of the segment mapping rather than re-encoded per event.
 * Receivers ignore fields they do not know, so v1 can grow compatibly.
 */
export const protocol_version = 1;
/** A repair request names at most this many origins (keeps its answer's `held` small). */
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
  frames: Uint8Array;
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
  frames: Uint8Array;
  part: Part | null;
  /** The final message answering `req`. */
  last: boolean;
  /** On the last message: what the sender durably holds of origins it could not serve up to `upto`. */
  held: Map<string, number> | null;
}

export type SyncMessage = VvMessage | StatusMessage | EventsMessage | WantMessage | AnswerMessage;

export function encode_message(m: SyncMessage): Uint8Array {
  const base = { v: protocol_version, from: m.from, kind: m.kind };
  switch (m.kind) {
    case "vv":
      return encode({ ...base, name: m.name, vv: encode_vv(m.vv), pull: m.pull === "*" ? "*" : encode_ids(m.pull) });
    case "status":
      return encode({ ...base, online: m.online, session: m.session });
    case "events":
      return encode(m.part === null ? { ...base, frames: m.frames } : { ...base, frames: m.frames, part: [m.part.at, m.part.total, m.part.id] });
    case "want":
      return encode({ ...base, to: m.to, req: m.req, max: m.max_bytes, ranges: encode_ranges(m.ranges) });
    case "to": {
      const body: Record<string, unknown> = { ...base, to: m.to, req: m.req, frames: m.frames };
      if (m.part !== null) body.part = [m.part.at, m.part.total, m.part.id];
      if (m.last) body.last = true;
      if (m.held !== null && m.held.size > 0) body.held = encode_vv(m.held);
      return encode(body);
    }
  }
}

const decode_options = { maxDepth: 4, rejectDuplicateKeys: true, ignoreGlobalTags: true } as const;

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
 * reason) for anything that is not a well-formed v1 message of the topic's
 * kind from the replica named in the topic. Frames are checked later.
 */
export function decode_message(bytes: Uint8Array, topic: ParsedTopic): SyncMessage {
  let value: unknown;
  try {
    value = decode(bytes, decode_options);
  } catch (err) {
    throw new Malformed("bad_cbor", `not CBOR: ${String(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Map || value instanceof Uint8Array) {
    throw new Malformed("bad_cbor", "not a CBOR map with text keys");
  }
  const body = value as Record<string, unknown>;
  if (body.v !== protocol_version) throw new Malformed("unknown_version", `version ${String(body.v)}`);
  if (typeof body.from !== "string") throw new Malformed("bad_shape", "field from is not text");
  if (body.from !== topic.from) throw new Malformed("impersonation", `from ${body.from} on a topic of ${topic.from}`);
  if (body.kind !== topic.kind) throw new Malformed("bad_shape", `kind ${String(body.kind)} on a ${topic.kind} topic`);
  const from = topic.from;
  switch (topic.kind) {
    case "vv": {
      const name = body.name;
      if (typeof name !== "string" || name.length > name_max_chars) throw new Malformed("bad_shape", "field name is not a short text");
      const pull = body.pull === "*" ? "*" : decode_ids(bytes_field(body, "pull"));
      return { kind: "vv", from, name, vv: decode_vv(bytes_field(body, "vv")), pull };
    }
    case "status":
      if (typeof body.online !== "boolean") throw new Malformed("bad_shape", "field online is not a boolean");
      return { kind: "status", from, online: body.online, session: body.session === undefined ? 0 : count_field(body, "session", 0) };
    case "events":
      return { kind: "events", from, frames: bytes_field(body, "frames"), part: part_field(body) };
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
      return {
        kind: "to",
        from,
        to: topic.peer as string,
        req: count_field(body, "req", 0),
        frames: bytes_field(body, "frames"),
        part: part_field(body),
        last: body.last === true,
        held,
      };
    }
  }
}
