import type { MqttClient } from "mqtt";

/**
 * Bytes a payload needs free in front of it for the PUBLISH header written
 * there: the fixed header (1 + up to 4), the topic (2 + its UTF-8 bytes),
 * the packet id (2) and an empty MQTT 5 property list (1).
 */
export function publish_header_max_bytes(topic_bytes: number): number {
  return 1 + 4 + 2 + topic_bytes + 2 + 1;
}

/** The parts of mqtt.js's client (5.x) this file replaces or reads; not in its public types. */
interface ClientInternals {
  stream: { write(bytes: Uint8Array): boolean; once(event: "drain", cb: () => void): unknown } | null;
  noop: (err?: Error) => void;
  emit(event: "packetsend", packet: unknown): boolean;
  _writePacket(packet: PublishLike, cb?: (err?: Error) => void): void;
}

interface PublishLike {
  cmd: string;
  topic?: unknown;
  payload?: unknown;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  properties?: Record<string, unknown>;
}

/**
 * Writes a PUBLISH whose payload has room in front of it as one buffer: its
 * header goes into that room and header and payload leave in one socket
 * write. mqtt.js (mqtt-packet) writes a PUBLISH as seven pieces on a corked
 * socket, and the socket joins every piece of the turn into a new buffer at
 * uncork (Buffer.concat of up to a push burst, 1 MiB): that copy and its
 * allocation were about a sixth of the sender's CPU in live sync (issue 16).
 * Anything else (other packets, payloads without room, MQTT 5 properties)
 * goes mqtt.js's way. Returns the function that marks a payload as having
 * `room_bytes` free before it in its ArrayBuffer, which this may overwrite.
 */
export function write_publishes_whole(client: MqttClient, protocol_version: 4 | 5): (payload: Buffer, room_bytes: number) => void {
  const room = new WeakMap<Uint8Array, number>();
  const internals = client as unknown as ClientInternals;
  const original = internals._writePacket;
  if (typeof original !== "function") return () => {}; // another mqtt.js: keep its way
  const encoder = new TextEncoder();
  internals._writePacket = function (this: ClientInternals, packet, cb) {
    const payload = packet.payload;
    const free = payload instanceof Uint8Array ? room.get(payload) : undefined;
    const stream = this.stream;
    if (
      free === undefined ||
      stream === null ||
      packet.cmd !== "publish" ||
      typeof packet.topic !== "string" ||
      (packet.properties !== undefined && Object.keys(packet.properties).length > 0)
    ) {
      return original.call(this, packet, cb);
    }
    const body = payload as Uint8Array;
    const topic = encoder.encode(packet.topic);
    const qos = packet.qos ?? 0;
    const variable = 2 + topic.length + (qos > 0 ? 2 : 0) + (protocol_version === 5 ? 1 : 0);
    const remaining = variable + body.length;
    const length_bytes = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x200000 ? 3 : 4;
    const header = 1 + length_bytes + variable;
    if (header > free) return original.call(this, packet, cb);
    const start = body.byteOffset - header;
    const out = Buffer.from(body.buffer, start, header + body.length);
    let at = 0;
    out[at++] = 0x30 | (packet.dup === true ? 0x08 : 0) | (qos << 1) | (packet.retain === true ? 0x01 : 0);
    for (let left = remaining; ; ) {
      const byte = left & 0x7f;
      left >>>= 7;
      out[at++] = left > 0 ? byte | 0x80 : byte;
      if (left === 0) break;
    }
    out[at++] = topic.length >>> 8;
    out[at++] = topic.length & 0xff;
    out.set(topic, at);
    at += topic.length;
    if (qos > 0) {
      const id = packet.messageId ?? 0;
      out[at++] = id >>> 8;
      out[at++] = id & 0xff;
    }
    if (protocol_version === 5) out[at++] = 0; // no properties
    this.emit("packetsend", packet);
    const flushed = stream.write(out);
    if (!flushed && cb !== undefined && cb !== this.noop) stream.once("drain", cb);
    else cb?.();
  };
  return (payload, room_bytes) => {
    if (room_bytes > 0) room.set(payload, room_bytes);
  };
}
