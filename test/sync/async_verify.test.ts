import { describe, expect, test } from "bun:test";
import { encode_message } from "../../src/sync/messages.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { forge_payload, frames_of_log } from "../support/forgery.ts";
import { TestNet, dec, enc } from "./net.ts";

/**
 * A replica that verifies signatures asynchronously (a browser tab's
 * WebCrypto) runs the same replicator through on_message_async: it takes
 * what its peers wrote, refuses crc-valid forgeries, and serves what it
 * holds to others.
 */
describe("signatures verified asynchronously", () => {
  test("a replica verifying through on_message_async converges both ways, refuses a crc-valid forgery, and relays verified events", async () => {
    const net = new TestNet(7);
    const a = await net.add({ max_packet_bytes: 8192 });
    const tab = await net.add({ max_packet_bytes: 8192, verify_async: true });
    const c = await net.add({ max_packet_bytes: 8192 });
    net.connect(a);
    net.connect(tab);
    for (let i = 1; i <= 300; i++) a.log.append(enc(`a-${i}`));
    for (let i = 1; i <= 50; i++) tab.log.append(enc(`tab-${i}`));
    await net.run();
    expect(tab.log.held(a.id)).toBe(300);
    expect(a.log.held(tab.id)).toBe(50);
    expect(tab.log.verify().ok).toBe(true);

    // A crc-valid forgery of a's next event, pushed on a's topic: only the signature tells.
    net.disconnect(tab);
    a.log.append(enc("a-301"));
    await net.run();
    const forged = forge_payload(frames_of_log(a.log, a.id, 300, 301));
    net.connect(tab);
    net.inject(`t/${a.id}/events`, encode_message({ kind: "events", from: a.id, events: encode_frames(forged), part: null }));
    await net.step();
    expect(tab.rep.counters.events_dropped.bad_signature).toBe(1);
    await net.run();
    expect(tab.log.held(a.id)).toBe(301);
    expect(dec(tab.log.get(a.id, 301)?.payload ?? new Uint8Array())).toBe("a-301");
    expect(tab.log.verify().ok).toBe(true);

    // Out of order: a later range parks in the gap buffer and is joined again, and checked again, when the gap fills.
    net.disconnect(a);
    // Two ranges: each batch's own group commit seals it.
    a.log.append_batch([enc("a-302"), enc("a-303")]);
    await a.log.durable();
    a.log.append_batch([enc("a-304"), enc("a-305")]);
    await a.log.durable();
    await net.run();
    const push = (after: number, upto: number) => encode_message({ kind: "events", from: a.id, events: encode_frames(frames_of_log(a.log, a.id, after, upto)), part: null });
    const verify = tab.verify_async as NonNullable<typeof tab.verify_async>;
    await tab.rep.on_message_async(`t/${a.id}/events`, push(303, 305), net.now, verify);
    expect(tab.rep.counters.events_buffered).toBe(2);
    expect(tab.log.held(a.id)).toBe(301);
    await tab.rep.on_message_async(`t/${a.id}/events`, push(301, 303), net.now, verify);
    expect(tab.log.held(a.id)).toBe(305);
    expect(tab.log.verify().ok).toBe(true);
    net.connect(a);
    await net.run();

    // c never meets a: it gets a's events (and the tab's) from the tab alone.
    net.disconnect(a);
    net.connect(c);
    await net.run();
    expect(c.log.held(a.id)).toBe(305);
    expect(c.log.held(tab.id)).toBe(50);
    expect(c.log.verify().ok).toBe(true);
  });
});
