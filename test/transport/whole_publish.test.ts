import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt, { type MqttClient } from "mqtt";
import { store_publishes_without_copy } from "../../src/transport/store_without_copy.ts";
import { publish_header_max_bytes, write_publishes_whole } from "../../src/transport/whole_publish_writer.ts";
import { Mosquitto } from "../support/mosquitto.ts";

/**
 * The transport's PUBLISH path (header written in front of the payload, one
 * socket write; no copy into mqtt.js's store): what a subscriber gets is
 * what was published, byte for byte, with its topic and flags, for every
 * length of the remaining-length field, with MQTT 5 and 3.1.1.
 */
let broker: Mosquitto;

beforeAll(async () => {
  broker = await Mosquitto.start();
});

afterAll(async () => {
  await broker.kill();
});

async function connect(client_id: string, protocol: 4 | 5): Promise<MqttClient> {
  const client = mqtt.connect(broker.url, { clientId: client_id, protocolVersion: protocol, clean: true, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
  qos: number;
}

/** Sizes around each step of the remaining-length field (1 to 3 bytes) and a few ordinary ones. */
const sizes = [0, 1, 97, 98, 99, 100, 256, 16_340, 16_345, 16_350, 100_000, 300_000];

for (const protocol of [5, 4] as const) {
  describe(`whole PUBLISH writes, MQTT ${protocol === 5 ? "5" : "3.1.1"}`, () => {
    test("a subscriber gets every payload, topic, QoS and retain flag as published, also after the buffer is reused", async () => {
      const tag = `${protocol}-${process.pid}`;
      const topic = `whole/${tag}/events`;
      const subscriber = await connect(`sub-${tag}`, protocol);
      const publisher = await connect(`pub-${tag}`, protocol);
      try {
        const received: Received[] = [];
        subscriber.on("message", (t, payload, packet) => received.push({ topic: t, payload: Buffer.from(payload), retain: packet.retain, qos: packet.qos }));
        await subscriber.subscribeAsync(`whole/${tag}/#`, { qos: 1 });
        store_publishes_without_copy(publisher);
        const mark = write_publishes_whole(publisher, protocol);
        const room = publish_header_max_bytes(Buffer.byteLength(topic));
        const sent: { payload: Buffer; qos: 0 | 1 }[] = [];
        let acked = 0;
        for (const [i, size] of sizes.entries()) {
          // A pooled buffer: the payload after `room` free bytes, which the writer fills with the header.
          const pooled = new Uint8Array(room + size);
          for (let j = 0; j < size; j++) pooled[room + j] = (i * 31 + j * 7) & 0xff;
          const payload = Buffer.from(pooled.buffer, room, size);
          mark(payload, room);
          const qos = i % 3 === 2 ? 0 : 1;
          sent.push({ payload: Buffer.from(payload), qos });
          publisher.publish(topic, payload, { qos }, (err) => {
            expect(err ?? null).toBeNull();
            // Acknowledged (QoS 1) or written (QoS 0): the pool may reuse the buffer now.
            pooled.fill(0xee);
            acked++;
          });
        }
        const deadline = Date.now() + 20_000;
        while ((received.length < sizes.length || acked < sizes.length) && Date.now() < deadline) await Bun.sleep(10);
        expect(received.map((r) => r.payload.length)).toEqual(sizes);
        for (const [i, r] of received.entries()) {
          expect(r.topic).toBe(topic);
          expect(r.retain).toBe(false);
          expect(r.qos).toBe(sent[i].qos);
          expect(r.payload.equals(sent[i].payload)).toBe(true);
        }
      } finally {
        publisher.end(true);
        subscriber.end(true);
      }
    });

    test("a retained message written whole is what a later subscriber gets; a payload without enough room goes mqtt.js's way, intact", async () => {
      const tag = `${protocol}-retained-${process.pid}`;
      const topic = `whole/${tag}/vv`;
      const publisher = await connect(`pub-${tag}`, protocol);
      try {
        store_publishes_without_copy(publisher);
        const mark = write_publishes_whole(publisher, protocol);
        const room = publish_header_max_bytes(Buffer.byteLength(topic));
        const pooled = new Uint8Array(room + 500).fill(0x5a, room);
        const retained = Buffer.from(pooled.buffer, room, 500);
        mark(retained, room);
        await publisher.publishAsync(topic, retained, { qos: 1, retain: true });
        const tight = new Uint8Array(3 + 40).fill(0x33, 3);
        const short_room = Buffer.from(tight.buffer, 3, 40);
        mark(short_room, 3);
        await publisher.publishAsync(`whole/${tag}/other`, short_room, { qos: 1 });
        expect(Buffer.from(tight.buffer, 0, 3).equals(Buffer.alloc(3))).toBe(true); // too little room: nothing written in front
      } finally {
        publisher.end(true);
      }
      const later = await connect(`later-${tag}`, protocol);
      try {
        const got = new Promise<Received>((resolve) => later.on("message", (t, payload, packet) => resolve({ topic: t, payload: Buffer.from(payload), retain: packet.retain, qos: packet.qos })));
        await later.subscribeAsync(topic, { qos: 1 });
        const r = await got;
        expect(r.retain).toBe(true);
        expect(r.payload.equals(Buffer.alloc(500, 0x5a))).toBe(true);
      } finally {
        later.end(true);
      }
    });
  });
}
