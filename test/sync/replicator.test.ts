import { describe, expect, test } from "bun:test";
import { flag_rejected } from "../../src/log/frame.ts";
import type { Log } from "../../src/log/log.ts";
import type { AnswerMessage, WantMessage } from "../../src/sync/messages.ts";
import { encode_message } from "../../src/sync/messages.ts";
import { encode_frames } from "../../src/sync/wire_events.ts";
import { clone_replica, many_origins, mem_log, write_range } from "../support/forgery.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { TestNet, type TestNode, dec, enc } from "./net.ts";

function payloads(log: Log, origin: string): string[] {
  return [...log.events_after(origin, 0)].map((e) => dec(e.payload));
}

function append_many(node: TestNode, count: number, size = 0): void {
  for (let i = 1; i <= count; i++) {
    const text = `${node.log.name}event-${i}`;
    node.log.append(enc(size > 0 ? text.padEnd(size, ".") : text));
  }
}

describe("replication between replicas", () => {
  test("three replicas converge: each holds every origin's events in seq order", async () => {
    const net = new TestNet();
    const nodes = [await net.add(), await net.add(), await net.add()];
    for (const n of nodes) net.connect(n);
    for (const [i, n] of nodes.entries()) {
      for (let k = 1; k <= 20; k++) n.log.append(enc(`r${i}-${k}`));
    }
    await net.run();
    for (const n of nodes) {
      for (const [i, origin] of nodes.entries()) {
        expect(payloads(n.log, origin.id)).toEqual(Array.from({ length: 20 }, (_, k) => `r${i}-${k + 1}`));
      }
      expect(n.log.vv()).toEqual(nodes[0].log.vv());
    }
  });

  test("a replica publishes only events that are durable locally", async () => {
    const net = new TestNet();
    const a = await net.add({ sync: "manual" });
    const b = await net.add();
    net.connect(a);
    net.connect(b);
    await net.run();
    a.log.append(enc("not yet on disk"));
    await net.run(20);
    expect(b.log.held(a.id)).toBe(0);
    const vv_sent = a.sent.filter((s) => s.message.kind === "vv").map((s) => (s.message as { vv: Map<string, number> }).vv.get(a.id) ?? 0);
    expect(Math.max(...vv_sent)).toBe(0);
    expect(a.sent.some((s) => s.message.kind === "events")).toBe(false);
    a.manual_fsync?.();
    await net.run();
    expect(payloads(b.log, a.id)).toEqual(["not yet on disk"]);
  });

  test("a replica far behind catches up in windows, never more than a window per request", async () => {
    const net = new TestNet();
    const window_bytes = 64 * 1024;
    const a = await net.add({ window_bytes, max_packet_bytes: 16 * 1024 });
    const b = await net.add({ window_bytes, max_packet_bytes: 16 * 1024 });
    net.connect(a);
    // Written 30 at a time, each lot made durable: signed ranges of at most 30 events (about 9 KB), well within a window.
    for (let lot = 0; lot < 100; lot++) {
      for (let i = 1; i <= 30; i++) a.log.append(enc(`${a.log.name}event-${lot * 30 + i}`.padEnd(256, ".")));
      await a.log.durable();
    }
    await net.run();
    net.connect(b);
    await net.run();
    expect(b.log.held(a.id)).toBe(3000);
    expect(payloads(b.log, a.id)).toEqual(payloads(a.log, a.id));
    // Answers per request stay within the window; every message within the packet size.
    const by_req = new Map<number, number>();
    for (const s of a.sent) {
      expect(s.bytes).toBeLessThanOrEqual(16 * 1024);
      if (s.message.kind !== "to") continue;
      const m = s.message as AnswerMessage;
      by_req.set(m.req, (by_req.get(m.req) ?? 0) + m.events.length);
    }
    expect(by_req.size).toBeGreaterThan(10);
    for (const bytes of by_req.values()) expect(bytes).toBeLessThanOrEqual(window_bytes);
  });

  test("a signed range larger than the window travels whole, alone in its answer, in fragments within the packet size", async () => {
    const net = new TestNet();
    const window_bytes = 64 * 1024;
    const a = await net.add({ window_bytes, max_packet_bytes: 16 * 1024 });
    const b = await net.add({ window_bytes, max_packet_bytes: 16 * 1024 });
    net.connect(a);
    a.log.append(enc("big".padEnd(100_000, "."))); // one range of about 100 KB: an event is never cut from its range
    a.log.append(enc("after"));
    await net.run();
    net.connect(b);
    await net.run();
    expect(b.log.held(a.id)).toBe(2);
    expect(payloads(b.log, a.id)).toEqual(payloads(a.log, a.id));
    const answers = a.sent.filter((s) => s.message.kind === "to").map((s) => s.message as AnswerMessage);
    for (const s of a.sent) expect(s.bytes).toBeLessThanOrEqual(16 * 1024);
    // The big range went in fragments of one request that carried nothing else; the event after it came in a later request.
    const fragmented = answers.filter((m) => m.part !== null);
    expect(fragmented.length).toBeGreaterThan(5);
    const big_req = fragmented[0].req;
    expect(fragmented.every((m) => m.req === big_req)).toBe(true);
    expect(answers.filter((m) => m.req === big_req && m.part === null).every((m) => m.events.length === 0)).toBe(true);
    expect(b.rep.counters.events_dropped.partial_range).toBe(0);
  });

  test("partial replication: a replica never asks for or stores origins it does not pull", async () => {
    const net = new TestNet();
    const a = await net.add();
    const b = await net.add();
    const c = await net.add();
    const spoke = await net.add({ pull: [a.id] });
    for (const n of [a, b, c, spoke]) net.connect(n);
    for (const n of [a, b, c, spoke]) append_many(n, 10);
    await net.run();
    expect(Object.keys(spoke.log.vv()).sort()).toEqual([a.id, spoke.id].sort());
    expect(spoke.log.held(a.id)).toBe(10);
    for (const s of spoke.sent) {
      if (s.message.kind !== "want") continue;
      for (const r of (s.message as WantMessage).ranges) expect(r.origin).toBe(a.id);
    }
    // Everyone else still gets the spoke's own events.
    expect(b.log.held(spoke.id)).toBe(10);
    expect(spoke.rep.subscriptions()).not.toContain("t/+/events");
  });

  test("a spoke hears its acknowledgement and the hub's events through vv entries, never the hub's whole vv", async () => {
    const net = new TestNet();
    const hub = await net.add();
    const spokes: TestNode[] = [];
    for (let i = 0; i < 6; i++) spokes.push(await net.add({ pull: [hub.id] }));
    for (const n of [hub, ...spokes]) net.connect(n);
    await net.run();
    append_many(hub, 20);
    for (const s of spokes) append_many(s, 5);
    await net.run();
    for (const s of spokes) {
      expect(s.log.held(hub.id)).toBe(20);
      expect(hub.log.held(s.id)).toBe(5);
      expect(s.rep.counters.messages_in.vv).toBe(0);
      expect(s.rep.counters.messages_in.entry).toBeGreaterThan(0);
      const seen_by_hub = s.rep.status(net.now).peers.find((p) => p.id === hub.id);
      expect(seen_by_hub?.vv[s.id]).toBe(5);
      expect(seen_by_hub?.lag_events).toBe(0);
      expect(s.rep.subscriptions()).toEqual(
        expect.arrayContaining([`t/${hub.id}/vv/${s.id}`, `t/${hub.id}/vv/${hub.id}`, `t/${hub.id}/events`, `t/${hub.id}/status`]),
      );
      expect(s.rep.subscriptions()).not.toContain(`t/${hub.id}/vv`);
    }
    // The hub publishes entries only for what spokes follow: its own origin and each spoke's.
    const entry_topics = new Set(hub.sent.filter((m) => m.message.kind === "entry").map((m) => m.topic));
    expect([...entry_topics].sort()).toEqual([hub.id, ...spokes.map((s) => s.id)].map((o) => `t/${hub.id}/vv/${o}`).sort());
  });

  test("an event larger than a message travels in fragments", async () => {
    const net = new TestNet();
    const a = await net.add({ max_packet_bytes: 4096 });
    const b = await net.add({ max_packet_bytes: 4096 });
    net.connect(a);
    net.connect(b);
    const big = "x".repeat(50_000);
    a.log.append(enc(big));
    a.log.append(enc("small"));
    await net.run();
    expect(payloads(b.log, a.id)).toEqual([big, "small"]);
    for (const s of a.sent) expect(s.bytes).toBeLessThanOrEqual(4096);
  });
});

describe("merge rules", () => {
  test("a sync validator's refusal keeps the origin's event, marked rejected (quarantined), and counts it", async () => {
    const net = new TestNet();
    const a = await net.add();
    const b = await net.add({ validate: (p) => (dec(p).startsWith("bad") ? "payload starts with bad" : null) });
    net.connect(a);
    net.connect(b);
    a.log.append(enc("good-1"));
    a.log.append(enc("bad-2"));
    a.log.append(enc("good-3"));
    await net.run();
    const held = [...b.log.events_after(a.id, 0)];
    expect(held.map((e) => [e.seq, e.rejected, dec(e.payload)])).toEqual([
      [1, false, "good-1"],
      [2, true, "bad-2"],
      [3, false, "good-3"],
    ]);
    expect(held[1].flags & flag_rejected).toBe(flag_rejected);
    expect(b.rep.counters.events_rejected).toBe(1);
    expect(b.log.vv()[a.id]).toBe(3);
    expect(b.log.verify().ok).toBe(true);
    // The origin's bytes are kept whole, so a replica downstream gets them, signature intact, and judges them itself.
    net.disconnect(a);
    const c = await net.add();
    net.connect(c);
    await net.run();
    expect([...c.log.events_after(a.id, 0)].map((e) => [e.seq, e.rejected, dec(e.payload)])).toEqual([
      [1, false, "good-1"],
      [2, false, "bad-2"],
      [3, false, "good-3"],
    ]);
    expect(c.rep.counters.events_dropped.bad_signature).toBe(0);
  });

  test("a validator that changes the payload it was shown cannot change what is stored nor leave a record with a bad crc", async () => {
    const net = new TestNet();
    const a = await net.add();
    const b = await net.add({
      validate: (p) => {
        p[0] = 0x58; // against the contract: edits the received bytes in place
        return null;
      },
    });
    net.connect(a);
    net.connect(b);
    for (let i = 1; i <= 5; i++) a.log.append(enc(`e-${i}`));
    await net.run();
    expect(b.log.held(a.id)).toBe(5);
    expect(b.log.verify().ok).toBe(true);
    // The origin signed its bytes: those are what is kept (an edited copy would break the signature for every replica downstream).
    expect(payloads(b.log, a.id)).toEqual(["e-1", "e-2", "e-3", "e-4", "e-5"]);
  });

  test("a duplicate with different content, signed with the same key (a copied data directory), is counted as a replica-id conflict", async () => {
    const net = new TestNet();
    const a = await net.add();
    const b = await net.add();
    net.connect(a);
    net.connect(b);
    a.log.append(enc("original"));
    await net.run();
    // Another device started from a copy of a's data directory: same id, same key, its own event 1.
    const clone = await clone_replica(a.io, "/data");
    expect(clone.id).toBe(a.id);
    const fake = encode_frames(write_range(clone, "an impostor with the same id"));
    net.inject(`t/${a.id}/events`, encode_message({ kind: "events", from: a.id, events: fake, part: null }));
    await net.run();
    expect(b.rep.counters.conflicts).toBe(1);
    expect(b.rep.counters.events_dropped.bad_signature).toBe(0);
    expect(payloads(b.log, a.id)).toEqual(["original"]);
    // The conflict is shown by origin, with the seq and the peer the other copy came from.
    expect(b.rep.conflicts.list().map((c) => [c.origin, c.seq, c.from, c.events])).toEqual([[a.id, 1, a.id, 1]]);
    await clone.close();
  });

  test("the parked tail of another key holder's range is not appended after the origin's own range: only whole signed ranges are stored", async () => {
    const net = new TestNet();
    const b = await net.add();
    net.connect(b);
    // The origin writes 1..4 as one range, then 5; a second device with its key (a copied data directory) writes 1..2, then 3..5.
    const disk = new MemFileIO();
    const writer = await mem_log({ io: disk });
    const origin = writer.id;
    const own_1_4 = write_range(writer, "o1", "o2", "o3", "o4");
    const own_5 = write_range(writer, "o5");
    const clone = await clone_replica(disk, writer.dir);
    write_range(clone, "c1", "c2");
    const clone_3_5 = write_range(clone, "c3", "c4", "c5");
    const push = (frames: Uint8Array) => {
      net.inject(`t/${origin}/events`, encode_message({ kind: "events", from: origin, events: encode_frames(frames), part: null }));
    };
    push(clone_3_5); // ahead of a gap: parked whole
    await net.run(3);
    expect(b.rep.status(net.now).gap_buffer_events).toBe(3);
    push(own_1_4); // the origin's range fills the gap up to 4; the clone's 5 alone is not a range its proof covers
    await net.run(3);
    expect(payloads(b.log, origin)).toEqual(["o1", "o2", "o3", "o4"]);
    expect(b.log.verify().ok).toBe(true);
    push(own_5);
    await net.run(3);
    expect(payloads(b.log, origin)).toEqual(["o1", "o2", "o3", "o4", "o5"]);
    expect(b.log.verify().ok).toBe(true);
    await clone.close();
    await writer.close();
  });

  test("events arriving ahead of a gap are parked and appended once the gap is filled", async () => {
    const net = new TestNet();
    const b = await net.add();
    net.connect(b);
    // An origin that is not on this network: its two signed ranges are pushed (as it would publish them) in the wrong order.
    const writer = await mem_log();
    const origin = writer.id;
    const first = write_range(writer, "e1", "e2");
    const second = write_range(writer, "e3", "e4");
    const send = (frames: Uint8Array) => {
      net.inject(`t/${origin}/events`, encode_message({ kind: "events", from: origin, events: encode_frames(frames), part: null }));
    };
    send(second);
    await net.run(3);
    expect(b.log.held(origin)).toBe(0);
    expect(b.rep.status(net.now).gap_buffer_events).toBe(2);
    send(first);
    await net.run(3);
    expect(payloads(b.log, origin)).toEqual(["e1", "e2", "e3", "e4"]);
    expect(b.rep.status(net.now).gap_buffer_events).toBe(0);
    expect(b.log.verify().ok).toBe(true);
    await writer.close();
  });
});

describe("repair", () => {
  test("when a peer does not answer, the range is asked of another peer that holds it", async () => {
    const net = new TestNet();
    const a = await net.add();
    const relay = await net.add();
    const b = await net.add();
    net.connect(a);
    net.connect(relay);
    append_many(a, 50);
    await net.run();
    expect(relay.log.held(a.id)).toBe(50);
    // The origin goes silent (its answers are lost) but stays "online"; the relay holds everything.
    a.drop_out = (topic) => topic.includes("/to/");
    net.connect(b);
    await net.run();
    expect(b.log.held(a.id)).toBe(50);
    expect(payloads(b.log, a.id)).toEqual(payloads(a.log, a.id));
    expect(b.rep.counters.wants_timed_out).toBeGreaterThan(0);
    expect(b.rep.status(net.now).peers.find((p) => p.id === a.id)?.failures).toBeGreaterThan(0);
  });

  test("a peer claiming events nobody holds does not stall sync with honest peers", async () => {
    const net = new TestNet();
    const a = await net.add();
    const b = await net.add();
    net.connect(a);
    append_many(a, 30);
    await net.run();
    // The liar's claim is retained by the broker and reaches b before anything else.
    const liar = "00000000000000cc";
    const vv = new Map([[a.id, 1_000_000_000]]);
    const lie = encode_message({ kind: "vv", from: liar, name: "liar", vv, pull: "*" });
    const epoch = net.broker.connect(liar, [], null);
    net.broker.publish(liar, epoch, { topic: `t/${liar}/vv`, payload: lie, retain: true, qos: 1 });
    net.connect(b);
    await net.run(200);
    expect(b.log.held(a.id)).toBe(30);
    const s = b.rep.status(net.now);
    const liar_status = s.peers.find((p) => p.id === liar);
    expect(liar_status?.failures).toBeGreaterThan(0);
    expect(s.counters.wants_timed_out).toBeGreaterThan(0);
  });

  test("a vv listing many origins is republished less often, so its bandwidth per subscriber stays bounded", async () => {
    const net = new TestNet();
    const hub = await net.add();
    net.connect(hub);
    const origins = await many_origins(2000, "x", Array.from({ length: 100 }, (_, t) => t));
    expect(hub.log.accept_frames(origins.frames).appended).toBe(2000);
    await hub.log.durable();
    const sent_before = hub.sent.length;
    for (let t = 0; t < 100; t++) {
      expect(hub.log.accept_frames(origins.more(t, "y")).appended).toBe(1); // the vv changes all the time
      await hub.log.durable();
      net.publish(hub, hub.rep.tick((net.now += 100)));
    }
    const vvs = hub.sent.slice(sent_before).filter((s) => s.message.kind === "vv");
    const bytes = vvs.reduce((n, s) => n + s.bytes, 0);
    // 10 s of constant change: at most one vv per 2000 x 1 ms.
    expect(vvs.length).toBeGreaterThan(1);
    expect(vvs.length).toBeLessThanOrEqual(6);
    expect(bytes / 10).toBeLessThan(20_000);
    await origins.close();
  });

  test("after an unchanged period the vv is republished, so a lost one is made good", async () => {
    const net = new TestNet();
    const a = await net.add({ vv_refresh_ms: 1000 });
    net.connect(a);
    await net.run();
    const before = a.sent.filter((s) => s.message.kind === "vv").length;
    for (let i = 0; i < 30; i++) net.publish(a, a.rep.tick((net.now += 100)));
    expect(a.sent.filter((s) => s.message.kind === "vv").length).toBeGreaterThanOrEqual(before + 2);
  });
});
