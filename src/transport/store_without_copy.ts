import type { MqttClient } from "mqtt";

/** The parts of mqtt.js's client (5.x) this file replaces or calls; not in its public types. */
interface ClientInternals {
  outgoingStore: { put(packet: unknown, cb: (err?: Error) => void): unknown };
  _storeAndSend(packet: PublishLike, cb: ((err?: Error) => void) | undefined, cbStorePut: () => void): void;
  _writePacket(packet: unknown, cb: ((err?: Error) => void) | undefined): void;
}

interface PublishLike {
  cmd: string;
  topic?: string | Buffer;
  properties?: { topicAlias?: number };
}

/**
 * mqtt.js deep-copies every outgoing QoS 1 publish, payload and all, before
 * it puts it in its outgoing store (rfdc), so that a caller may change the
 * packet meanwhile. This transport never does: a message's buffer goes back
 * to the replicator's pool only once its PUBACK came, after mqtt.js removed
 * it from the store, and a buffer that is never acknowledged is never
 * reused. The copy (a fresh ~128 KiB buffer per message) cost about a sixth
 * of the sender's CPU in live sync (issue 16). Packets with a topic alias,
 * which mqtt.js rewrites in its stored copy, still take the original path;
 * this transport never sets one.
 */
export function store_publishes_without_copy(client: MqttClient): void {
  const internals = client as unknown as ClientInternals;
  const original = internals._storeAndSend;
  if (typeof original !== "function" || typeof internals._writePacket !== "function") return; // another mqtt.js: keep its way
  internals._storeAndSend = function (this: ClientInternals, packet, cb, cbStorePut) {
    if (packet.cmd !== "publish" || packet.properties?.topicAlias !== undefined || typeof packet.topic !== "string" || packet.topic.length === 0) {
      return original.call(this, packet, cb, cbStorePut);
    }
    this.outgoingStore.put(packet, (err) => {
      if (err) return cb?.(err);
      cbStorePut();
      this._writePacket(packet, cb);
    });
  };
}
