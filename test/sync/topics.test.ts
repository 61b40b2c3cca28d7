import { describe, expect, test } from "bun:test";
import { Topics, any_replica, prefix_default } from "../../src/sync/topics.ts";
import { topic_matches } from "../sim/topic_match.ts";

const me = "00000000000000a1";
const hub = "00000000000000b2";
const other = "00000000000000c3";

describe("topics", () => {
  test("a replica that pulls everything subscribes to requests for it, every status, vv and push", () => {
    const t = new Topics("p");
    expect(t.subscriptions(me, null, null)).toEqual([`p/+/want/${me}`, `p/+/to/${me}`, "p/+/status", "p/+/vv", "p/+/events"]);
  });

  test("a partial replica subscribes to the vv entries it needs of the replicas it watches, and their pushes", () => {
    const t = new Topics("fleet/eu");
    const subs = t.subscriptions(me, new Set([hub]), new Set([other]));
    expect(subs).toEqual([
      `fleet/eu/+/want/${me}`,
      `fleet/eu/+/to/${me}`,
      `fleet/eu/${other}/status`,
      `fleet/eu/${other}/vv/${me}`,
      `fleet/eu/${other}/vv/${hub}`,
      `fleet/eu/${hub}/status`,
      `fleet/eu/${hub}/vv/${me}`,
      `fleet/eu/${hub}/vv/${hub}`,
      `fleet/eu/${hub}/events`,
    ]);
  });

  test("filters match exactly the topics the others publish that concern this replica", () => {
    const t = new Topics();
    expect(t.prefix).toBe(prefix_default);
    const full = t.subscriptions(me, null, null);
    const partial = t.subscriptions(me, new Set([hub]), null);
    const matched = (subs: string[], topic: string) => subs.some((f) => topic_matches(f, topic));
    for (const subs of [full, partial]) {
      expect(matched(subs, t.want(hub, me))).toBe(true);
      expect(matched(subs, t.to(hub, me))).toBe(true);
      expect(matched(subs, t.want(hub, other))).toBe(false);
      expect(matched(subs, t.status(hub))).toBe(true);
      expect(matched(subs, t.events(hub))).toBe(true);
      expect(matched(subs, t.entry(hub, me))).toBe(!subs.includes(t.vv(any_replica)));
    }
    expect(matched(full, t.vv(other))).toBe(true);
    expect(matched(full, t.events(other))).toBe(true);
    expect(matched(partial, t.vv(hub))).toBe(false);
    expect(matched(partial, t.events(other))).toBe(false);
    expect(matched(partial, t.entry(hub, other))).toBe(false);
  });

  test("every topic built parses back to its publisher, kind and peer; filters do not", () => {
    const t = new Topics("p");
    expect(t.parse(t.entry(hub, me))).toEqual({ from: hub, kind: "entry", peer: me });
    expect(t.parse(t.want(hub, me))).toEqual({ from: hub, kind: "want", peer: me });
    expect(t.parse(t.vv(hub))).toEqual({ from: hub, kind: "vv", peer: null });
    for (const filter of t.subscriptions(me, null, null)) expect(t.parse(filter)).toBeNull();
  });
});
