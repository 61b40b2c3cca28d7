import { describe, expect, test } from "bun:test";
import { encode_message } from "../../src/sync/messages.ts";
import { Replicator } from "../../src/sync/replicator.ts";
import type { Outbound } from "../../src/sync/sync_options.ts";
import { mem_log } from "../support/forgery.ts";

/**
 * announce_to_new_peers (the rabbitmq preset): a broker that does not hand
 * retained vvs to later subscribers leaves a newcomer deaf until this
 * replica republishes; a peer coming online with a new session makes it do
 * so, at most once per announce_min_interval_ms however many sessions
 * (a fleet reconnecting after a node died, or a peer flapping on purpose).
 */
const peer = "00000000000000a7";

async function replica(announce: boolean) {
  const log = await mem_log({ sync: "always" });
  log.append(new TextEncoder().encode("first"));
  await log.durable();
  // vv refresh far away: only announcements publish the vv here.
  const rep = new Replicator({ log, prefix: "t", announce_to_new_peers: announce, vv_refresh_ms: 1e9 });
  rep.on_connect(0);
  const vv_topic = rep.topics.vv(log.id);
  const status_topic = rep.topics.status(log.id);
  const announcements = (out: Outbound[]) => out.filter((m) => m.topic === vv_topic).length;
  const statuses = (out: Outbound[]) => out.filter((m) => m.topic === status_topic).length;
  const peer_online = (session: number, now_ms: number) =>
    rep.on_message(rep.topics.status(peer), encode_message({ kind: "status", from: peer, online: true, session }), now_ms);
  return { rep, announcements, statuses, peer_online };
}

describe("announcements to peers that come online", () => {
  test("a peer's new session makes the replica republish its status and vv at the next tick", async () => {
    const r = await replica(true);
    r.peer_online(1, 6_000);
    const out = r.rep.tick(6_050);
    expect(r.announcements(out)).toBe(1);
    expect(r.statuses(out)).toBe(1);
    // The same session again (a duplicate, or the retained one) is nothing new.
    r.peer_online(1, 7_000);
    expect(r.announcements(r.rep.tick(20_000))).toBe(0);
  });

  test("a peer flapping its session every 200 ms draws one announcement per announce_min_interval_ms, not one per session", async () => {
    const r = await replica(true);
    let total = 0;
    for (let now = 6_000, session = 1; now <= 26_000; now += 200, session++) {
      r.peer_online(session, now);
      total += r.announcements(r.rep.tick(now + 50));
    }
    // 20 s at one per 5 s: at 6 s, 11 s, 16 s, 21 s and 26 s.
    expect(total).toBe(5);
  });

  test("without announce_to_new_peers (mosquitto: retained vvs reach newcomers) nothing is republished", async () => {
    const r = await replica(false);
    let total = 0;
    for (let now = 6_000, session = 1; now <= 26_000; now += 1_000, session++) {
      r.peer_online(session, now);
      total += r.announcements(r.rep.tick(now + 50));
    }
    expect(total).toBe(0);
  });
});
