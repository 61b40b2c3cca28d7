import { describe, expect, test } from "bun:test";
import type { Log } from "../../src/log/log.ts";
import { MaintainPacer, PeerAcks, type PeerTableView } from "../../src/sync/acks.ts";
import { type AnswerMessage, type WantMessage, decode_message, encode_message } from "../../src/sync/messages.ts";
import { Peer } from "../../src/sync/peers.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { TestNet, type TestNode, dec, enc } from "./net.ts";

/**
 * Retention seen from sync (issue 13, "Sync knows about pruning"): what
 * counts as an acknowledgement, what a replica that pruned answers, and what
 * a requester does with that answer, on the in-memory network of net.ts.
 */

const MiB = 1024 * 1024;
const budget = (policy: "drop-acked" | "drop-oldest") => ({ max_bytes: 4 * MiB, policy, reserve_own_bytes: 0 });

/** Appends `lots` lots of 100 events of 256 bytes, each lot made durable and synced; calls `each` after every lot. */
async function record(net: TestNet, node: TestNode, lots: number, each: () => void = () => {}): Promise<void> {
  for (let lot = 0; lot < lots; lot++) {
    const base = node.log.held(node.id);
    for (let i = 1; i <= 100; i++) node.log.append(enc(`${node.id}-${base + i}`.padEnd(256, ".")));
    await node.log.durable();
    await net.run(50);
    each();
  }
}

function payloads(log: Log, origin: string): string[] {
  return [...log.events_after(origin, 0)].map((e) => dec(e.payload));
}

/** Requests `from` sent to `to` (decoded), in order. */
function wants(from: TestNode, to: TestNode): WantMessage[] {
  return from.sent.filter((s) => s.message.kind === "want" && (s.message as WantMessage).to === to.id).map((s) => s.message as WantMessage);
}

function answers(from: TestNode, to: TestNode): AnswerMessage[] {
  return from.sent.filter((s) => s.message.kind === "to" && (s.message as AnswerMessage).to === to.id).map((s) => s.message as AnswerMessage);
}

describe("acknowledgements from the peer table", () => {
  function table(peers: Peer[]): PeerTableView & { version: number } {
    const view = { peer_table: new Map(peers.map((p) => [p.id, p])), version: 0, pulls_version: 0 };
    Object.defineProperty(view, "pulls_version", { get: () => view.version });
    return view;
  }
  const o = "00000000000000a1";
  const hub = new Peer("00000000000000b1");
  hub.pull = "*";
  hub.acked.set(o, 40);
  // A repair claim (pushes, answers; forgettable under sync's limits) is not an acknowledgement.
  hub.claims.set(o, 99);
  const spoke = new Peer("00000000000000b2");
  spoke.pull = new Set([o]);
  spoke.acked.set(o, 7);
  const bystander = new Peer("00000000000000b3");
  bystander.pull = new Set();
  const silent = new Peer("00000000000000b4"); // no vv yet: pull unknown

  test("held_by is what the upstream's own vv acknowledged (0 when unknown), not a repair claim; by default every peer that pulls the origin is its upstream", () => {
    const view = table([hub, spoke, bystander, silent]);
    const acks = new PeerAcks(view, null);
    expect(acks.held_by(hub.id, o)).toBe(40);
    expect(acks.held_by(spoke.id, o)).toBe(7);
    expect(acks.held_by(bystander.id, o)).toBe(0);
    expect(acks.held_by("00000000000000ff", o)).toBe(0);
    expect(acks.upstreams_of(o)).toEqual([hub.id, spoke.id]);
    expect(acks.upstreams_of("00000000000000a2")).toEqual([hub.id]);
    expect(acks.upstreams()).toEqual([hub.id, spoke.id]);
    // A pull list changes: the cached answer follows once the replicator says so.
    bystander.pull = new Set([o]);
    view.version++;
    expect(acks.upstreams_of(o)).toEqual([hub.id, spoke.id, bystander.id]);
    bystander.pull = new Set();
    view.version++;
  });

  test("configured upstreams replace the pullers, whether known or not", () => {
    const acks = new PeerAcks(table([hub, spoke]), ["00000000000000ff", spoke.id]);
    expect(acks.upstreams_of(o)).toEqual(["00000000000000ff", spoke.id]);
    expect(acks.upstreams()).toEqual(["00000000000000ff", spoke.id]);
    expect(acks.held_by("00000000000000ff", o)).toBe(0);
  });

  test("maintain runs at once, then at most once a second however often acks rise, and every 10 s regardless", () => {
    let now = 1_000_000;
    const timers = new ManualTimers();
    let runs = 0;
    const pacer = new MaintainPacer(() => runs++, { now_ms: () => now }, timers, 1000, 10_000);
    pacer.start();
    pacer.notify();
    expect(runs).toBe(1);
    for (let i = 0; i < 50; i++) pacer.notify(); // within the same second: one delayed run
    expect(runs).toBe(1);
    now += 1000;
    timers.advance_ms(1000);
    expect(runs).toBe(2);
    now += 9000;
    timers.advance_ms(9000);
    expect(runs).toBe(3); // the periodic one
    pacer.stop();
    expect(timers.active_count).toBe(0);
  });
});

describe("a device with a disk budget", () => {
  test("prunes only what the hub holds, never fails an append while the hub keeps up, and stops at the budget while the hub is away", async () => {
    const net = new TestNet(11);
    const device = await net.add({ retention: budget("drop-acked") });
    const hub = await net.add();
    net.connect(device);
    net.connect(hub);
    await net.run();
    // Checked after every lot: nothing the hub lacks is ever pruned.
    await record(net, device, 200, () => expect(device.log.pruned_through(device.id)).toBeLessThanOrEqual(hub.log.durable_held(device.id)));
    const status = device.log.retention_status();
    expect(status.pruned.segments).toBeGreaterThan(0);
    expect(status.pruned.unacked_events).toBe(0);
    expect(status.pruned.acked_events).toBe(device.log.pruned_through(device.id));
    expect(status.used_bytes).toBeLessThanOrEqual(4 * MiB);
    expect(hub.log.held(device.id)).toBe(20_000);
    expect(payloads(hub.log, device.id)).toHaveLength(20_000);
    // The hub goes away: the device fills its budget and then refuses appends, naming the hub.
    net.disconnect(hub);
    const hub_held = hub.log.held(device.id);
    let refusal = "";
    for (let i = 0; i < 40_000 && refusal === ""; i++) {
      try {
        device.log.append(enc(`offline-${i}`.padEnd(256, ".")));
      } catch (err) {
        refusal = `${(err as { code?: string }).code}: ${(err as Error).message}`;
      }
      if (i % 100 === 99) await device.log.durable();
    }
    expect(refusal).toContain("LOG_FULL");
    expect(refusal).toContain(hub.id);
    // It pruned what the hub held before it left, nothing more.
    const floor = device.log.pruned_through(device.id);
    expect(floor).toBeLessThanOrEqual(hub_held);
    expect(device.log.retention_status().blocked).toContain(hub.id);
    // Back online, the hub catches up and the device prunes again: appends resume.
    net.connect(hub);
    await net.run();
    await device.log.maintain();
    expect(device.log.pruned_through(device.id)).toBeGreaterThan(floor);
    device.log.append(enc("after the hub caught up"));
    await device.log.durable();
    await net.run();
    expect(hub.log.held(device.id)).toBe(device.log.held(device.id));
    expect(device.log.retention_status().pruned.unacked_events).toBe(0);
  });

  test("a relay's acknowledgements from more pullers than sync keeps repair sources for (claimants_per_origin_max) all count: it prunes the relayed events", async () => {
    const net = new TestNet(12);
    // The device pulls nothing of others, so it is no upstream of the relay's own events.
    const device = await net.add({ pull: [] });
    const relay = await net.add({ retention: budget("drop-acked") });
    const pullers: TestNode[] = [];
    for (let i = 0; i < 6; i++) pullers.push(await net.add());
    for (const n of [device, relay, ...pullers]) net.connect(n);
    await net.run();
    // The device's events reach everyone, then it goes: the relay holds them in its oldest segments.
    await record(net, device, 20);
    net.disconnect(device);
    for (const n of [relay, ...pullers]) expect(n.log.held(device.id)).toBe(2_000);
    await record(net, relay, 200, () => {
      for (const p of pullers) expect(relay.log.pruned_through(relay.id)).toBeLessThanOrEqual(p.log.durable_held(relay.id));
    });
    // Every puller acknowledged the device's events (its vv), so the segments holding them went too.
    expect(relay.log.pruned_through(device.id)).toBe(2_000);
    expect(relay.log.retention_status().pruned.unacked_events).toBe(0);
  });

  test("the synced-events quota is measured again after a prune: it counts peers' events held, not own events pruned", async () => {
    const net = new TestNet(12);
    const device = await net.add({ retention: budget("drop-oldest"), peer_events_max_bytes: 3 * MiB });
    const other = await net.add();
    net.connect(device);
    net.connect(other);
    await net.run();
    for (let round = 0; round < 16; round++) {
      await record(net, device, 10);
      await record(net, other, 2);
    }
    await net.run();
    expect(device.log.first_pos).toBeGreaterThan(0);
    let own_bytes = 0;
    for (const e of device.log.iterate(0)) if (e.origin === device.id) own_bytes += e.frame_bytes;
    expect(device.rep.status(net.now).peer_events_bytes).toBe(device.log.bytes - own_bytes);
  });
});

describe("asking for pruned events", () => {
  test("the replica that pruned says so (gone); the requester gets them from the hub and never asks it for them again", async () => {
    const net = new TestNet(13);
    const device = await net.add({ retention: budget("drop-acked") });
    const hub = await net.add();
    net.connect(device);
    net.connect(hub);
    await net.run();
    await record(net, device, 200);
    const floor = device.log.pruned_through(device.id);
    expect(floor).toBeGreaterThan(0);
    // A new replica: the device claims the most, so it is asked first.
    const fresh = await net.add();
    net.connect(fresh);
    await net.run();
    await record(net, device, 20);
    const first = wants(fresh, device)[0];
    expect(first.ranges).toEqual([{ origin: device.id, after: 0, upto: expect.any(Number) }]);
    const reply = answers(device, fresh).filter((a) => a.req === first.req);
    expect(reply).toHaveLength(1);
    expect(reply[0].events.length).toBe(0);
    expect(reply[0].gone).toEqual(new Map([[device.id, floor]]));
    // Everything came, the pruned part from the hub, in order.
    expect(fresh.log.held(device.id)).toBe(device.log.held(device.id));
    expect(payloads(fresh.log, device.id)).toEqual(payloads(hub.log, device.id));
    // The device was asked again only for what it still holds.
    for (const w of wants(fresh, device).slice(1)) for (const r of w.ranges) if (r.origin === device.id) expect(r.after).toBeGreaterThanOrEqual(floor);
    const c = fresh.rep.status(net.now).counters;
    expect(c.ranges_gone_received).toBe(1);
    expect(c.wants_unproductive).toBe(0);
    expect(device.rep.status(net.now).counters.ranges_gone_sent).toBe(1);
    expect(fresh.rep.status(net.now).unavailable).toEqual([]);
  });

  test("with no other holder the range is recorded as unavailable, and nothing is asked again however long the device keeps writing", async () => {
    const net = new TestNet(14);
    // drop-oldest: the device prunes though nobody holds its events.
    const device = await net.add({ retention: budget("drop-oldest") });
    net.connect(device);
    await net.run();
    await record(net, device, 200);
    const floor = device.log.pruned_through(device.id);
    expect(floor).toBeGreaterThan(0);
    expect(device.log.retention_status().pruned.unacked_events).toBe(floor);
    const late = await net.add();
    net.connect(late);
    await net.run();
    const asked = () => wants(late, device).length;
    expect(asked()).toBe(1);
    const unavailable = late.rep.status(net.now).unavailable;
    expect(unavailable).toEqual([{ origin: device.id, from: 1, to: floor, pruned_by: [device.id], since_ms: expect.any(Number) }]);
    expect(late.rep.status(net.now).counters.events_unavailable).toBe(floor);
    // The device sees the late replica lacking its events: the oldest it still holds is the one counted as unacknowledged.
    const seen_by_device = device.rep.status(net.now).peers.find((p) => p.id === late.id);
    expect(seen_by_device?.oldest_unacked_age_ms).toBe(net.now - (device.log.get(device.id, floor + 1)?.time_ms ?? 0));
    // Seqs are dense: none of the device's later events can be taken either; they are not asked for.
    expect(late.log.held(device.id)).toBe(0);
    // The device goes on writing (its vv rises with every lot, and so its claim) and pruning: still that one request.
    await record(net, device, 100);
    for (let i = 0; i < 50; i++) await net.step(1000);
    expect(device.log.pruned_through(device.id)).toBeGreaterThan(floor);
    expect(asked()).toBe(1);
    const peer = late.rep.status(net.now).peers.find((p) => p.id === device.id);
    expect(peer?.failures).toBe(0);
    expect(peer?.pruned).toEqual({ [device.id]: floor });
    expect(late.rep.status(net.now).counters.events_unavailable).toBe(floor);
  });

  test("a gone answer naming an origin not asked of that peer changes nothing", async () => {
    const net = new TestNet(15);
    const a = await net.add();
    net.connect(a);
    await net.run();
    await record(net, a, 3);
    const stranger = "00000000000000ee";
    const c = await net.add();
    // a's answers claim it pruned an origin c never asked it for.
    a.tamper_out = (topic, payload) => {
      const parsed = net.topics.parse(topic);
      if (parsed === null || parsed.kind !== "to") return payload;
      const m = decode_message(payload, parsed) as AnswerMessage;
      return m.last ? encode_message({ ...m, gone: new Map([[stranger, 5]]) }) : payload;
    };
    net.connect(c);
    await net.run();
    expect(c.log.held(a.id)).toBe(300);
    const peer = c.rep.status(net.now).peers.find((p) => p.id === a.id);
    expect(peer?.pruned).toEqual({});
    expect(c.rep.status(net.now).counters.ranges_gone_received).toBe(0);
  });
});
