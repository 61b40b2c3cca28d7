import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Random } from "../../src/lib/random.ts";
import { flag_batch_end, flag_rejected } from "../../src/log/frame.ts";
import { Log } from "../../src/log/log.ts";
import { type SyncMessage, decode_message, encode_message } from "../../src/sync/messages.ts";
import { type Outbound, Replicator, sync_defaults } from "../../src/sync/replicator.ts";
import { Topics } from "../../src/sync/topics.ts";
import { fuzz_async, fuzz_replaying, fuzz_timeout_ms } from "../support/fuzz.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { DecodedEvents, decode_events } from "../../src/sync/wire_events.ts";
import { type Ev, type Mutation, chunk_frames, decoded_list, fixed_origins, frames_of, message_arb, mutate, mutations_arb, sometimes, topic_of, vv_arb } from "./arbitraries.ts";

/**
 * One replica (a real Log on an in-memory disk) receiving what several fake
 * peers send: honest histories, conflicting forgeries, fragments out of
 * order, random and damaged messages, requests of every shape, between
 * ticks, local appends and reconnects. Whatever arrives, the replica never
 * throws, stores only events some peer really sent (crc-valid, as sent) of
 * origins it pulls, never takes back what it held, and its log verifies.
 */

const max_packet_bytes = 8192;
const peers = fixed_origins.slice(0, 3);
/** Not pulled when the replica pulls a list; a peer may still send its events. */
const stranger = fixed_origins[3];

/** The content of origin:seq in version v (0: the honest one; others: what a forger or a copied replica id sends). */
function history_event(origin: string, seq: number, version: number): Ev {
  const rng = new Random((Number.parseInt(origin.slice(8), 16) ^ (seq * 2654435761) ^ (version * 40503)) >>> 0);
  const size = rng.chance(0.05) ? rng.int(5000, 12_000) : rng.int(0, 200);
  return {
    origin,
    seq,
    time_ms: 1_700_000_000_000 + seq * 10 + version,
    flags: (seq % 4 === 0 ? flag_batch_end : 0) | (version === 2 ? flag_rejected : 0),
    payload: rng.bytes(size),
  };
}

type Action =
  | { t: "events"; peer: number; origin: number; from_seq: number; count: number; version: number; kind: "events" | "to"; capacity: number; order: number[]; dup: boolean; mutations: Mutation[] | null }
  | { t: "message"; peer: number; m: SyncMessage; mutations: Mutation[] | null; topic: number }
  | { t: "claim"; peer: number; vv: Map<string, number> }
  | { t: "want"; peer: number; req: number; max_bytes: number; ranges: { origin: number; after: number; n: number }[] }
  | { t: "bytes"; peer: number; kind: number; bytes: Uint8Array }
  | { t: "tick"; ms: number }
  | { t: "append"; n: number }
  | { t: "reconnect" };

const peer_arb = fc.integer({ min: 0, max: peers.length - 1 });

const action_arb = (me: string): fc.Arbitrary<Action> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant("events" as const),
        peer: peer_arb,
        // -1: the sending peer's own; else the peers, the stranger, or the replica itself
        origin: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: peers.length + 1 }) }),
        from_seq: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 })),
        count: fc.integer({ min: 1, max: 10 }),
        version: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) }),
        kind: fc.constantFrom("events" as const, "to" as const),
        capacity: fc.integer({ min: 1024, max: max_packet_bytes - 512 }),
        order: fc.array(fc.nat(), { maxLength: 4 }),
        dup: fc.boolean(),
        mutations: sometimes(mutations_arb, 8),
      }),
    },
    {
      weight: 3,
      arbitrary: peer_arb.chain((peer) =>
        fc.record({
          t: fc.constant("message" as const),
          peer: fc.constant(peer),
          m: message_arb(peers[peer], me),
          mutations: sometimes(mutations_arb, 2),
          topic: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
        }),
      ),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant("claim" as const), peer: peer_arb, vv: vv_arb(1) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("want" as const),
        peer: peer_arb,
        req: fc.nat({ max: 5 }),
        max_bytes: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 1 << 20 }), fc.constant(Number.MAX_SAFE_INTEGER)),
        ranges: fc.uniqueArray(fc.record({ origin: fc.integer({ min: 0, max: peers.length + 1 }), after: fc.nat({ max: 6 }), n: fc.oneof(fc.integer({ min: 1, max: 30 }), fc.constant(2 ** 53 - 100)) }), {
          maxLength: 4,
          selector: (r) => r.origin,
        }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("bytes" as const), peer: peer_arb, kind: fc.nat({ max: 7 }), bytes: fc.uint8Array({ maxLength: 100 }) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant("tick" as const), ms: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 70_000 })) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("append" as const), n: fc.integer({ min: 1, max: 5 }) }) },
    { weight: 1, arbitrary: fc.constant({ t: "reconnect" as const }) },
  );

/** Origin i: a peer, the stranger, or (last) the replica itself. */
function origin_of(i: number): string {
  return i < peers.length ? peers[i] : i === peers.length ? stranger : me;
}

/** A fixed id for the replica under test, so arbitraries can name it. */
async function open_victim(seed: number): Promise<Log> {
  const rng = new Random(seed);
  return Log.open({
    dir: "/data",
    io: new MemFileIO(),
    sync: "always",
    segment_size_bytes: 64 * 1024,
    clock: { now_ms: () => 1_700_000_000_000 },
    timers: new ManualTimers(),
    fill_random: (b) => rng.fill(b),
  });
}

const probe = await open_victim(7);
const me = probe.id;
await probe.close();

const topics = new Topics("t");

/** Everything the replica publishes must be a well-formed message within the packet size. */
function check_outbound(out: Outbound[]): void {
  for (const o of out) {
    expect(o.payload.length + o.topic.length).toBeLessThanOrEqual(max_packet_bytes);
    const parsed = topics.parse(o.topic);
    if (parsed === null) throw new Error(`published on a topic of no kind: ${o.topic}`);
    expect(parsed.from).toBe(me);
    decode_message(o.payload, parsed);
    o.release?.();
  }
}

describe("fuzz: the replicator against many peers", () => {
  test(
    "any sequence of messages: no throw, only pulled origins and sent content stored, the vv never goes back, the log verifies",
    async () => {
      const scenario_arb = fc.record({
        pull: fc.oneof(fc.constant("*" as const), fc.subarray(peers)),
        gap_buffer_max_bytes: fc.constantFrom(16 * 1024, 4 * 1024 * 1024),
        accept_batch_max_bytes: fc.constantFrom(4096, 1024 * 1024),
        peers_max: fc.constantFrom(2, 10_000),
        // Tight tables and a small disk quota for peers' events now and then, so their limits are reached too.
        tight: fc.boolean(),
        actions: fc.array(action_arb(me), { minLength: 1, maxLength: 60, size: "medium" }),
      });
      const seen = { stored: 0, dropped: 0, served: 0, conflicts: 0 };
      await fuzz_async(
        "replicator merge",
        fc.asyncProperty(scenario_arb, async (s) => {
          const log = await open_victim(7);
          expect(log.id).toBe(me);
          let now = 1_700_000_000_000;
          const rep = new Replicator({
            log,
            prefix: "t",
            pull: s.pull,
            max_packet_bytes,
            want_timeout_ms: 1000,
            retry_backoff_base_ms: 100,
            gap_buffer_max_bytes: s.gap_buffer_max_bytes,
            accept_batch_max_bytes: s.accept_batch_max_bytes,
            peers_max: s.peers_max,
            ...(s.tight ? { claims_per_peer_max: 2, origins_max: 4, claimants_per_origin_max: 1, peer_events_max_bytes: 16 * 1024 } : {}),
          });
          const pulls = (origin: string) => origin !== me && (s.pull === "*" || s.pull.includes(origin));
          /** origin:seq -> every content (time, rejected flag, payload) a peer sent with a valid crc. */
          const sent = new Map<string, Set<string>>();
          const content = (time_ms: number, flags: number, payload: Uint8Array) => `${time_ms}/${flags & flag_rejected}/${Buffer.from(payload).toString("hex")}`;
          let own = 0;
          let vv = log.vv();
          check_outbound(rep.on_connect(now));

          const record = (e: Ev) => {
            const key = `${e.origin}:${e.seq}`;
            if (!sent.has(key)) sent.set(key, new Set());
            sent.get(key)?.add(content(e.time_ms, e.flags, e.payload));
          };
          /** Records the crc-valid events a delivered message carries whole (random messages carry some too). */
          const record_carried = (topic: string, payload: Uint8Array) => {
            const parsed = topics.parse(topic);
            if (parsed === null) return;
            try {
              const m = decode_message(payload, parsed);
              if (m.kind !== "events" && m.kind !== "to") return;
              const d = new DecodedEvents();
              decode_events(m.events, d);
              decoded_list(d).forEach(record);
            } catch {}
          };
          const deliver = (topic: string, payload: Uint8Array) => {
            record_carried(topic, payload);
            check_outbound(rep.on_message(topic, payload, now));
          };

          for (const a of s.actions) {
            switch (a.t) {
              case "events": {
                const origin = a.origin < 0 ? peers[a.peer] : origin_of(a.origin);
                const events = Array.from({ length: a.count }, (_, i) => history_event(origin, a.from_seq + i, a.version));
                events.forEach(record);
                const chunks = chunk_frames(frames_of(events), a.capacity);
                // Reorder (fragments too), duplicate, damage one.
                for (const k of a.order) {
                  const i = k % chunks.length;
                  const j = (k >> 3) % chunks.length;
                  [chunks[i], chunks[j]] = [chunks[j], chunks[i]];
                }
                if (a.dup) chunks.push(...chunks.slice(0, 2));
                const from = peers[a.peer];
                chunks.forEach((c, i) => {
                  const m: SyncMessage =
                    a.kind === "events"
                      ? { kind: "events", from, events: c.events, part: c.part }
                      : { kind: "to", from, to: me, req: 1, events: c.events, part: c.part, last: i === chunks.length - 1, held: null };
                  let payload = encode_message(m);
                  if (a.mutations !== null && i === 0) payload = mutate(payload, a.mutations);
                  deliver(topic_of(m, me), payload);
                });
                break;
              }
              case "message": {
                let payload = encode_message(a.m);
                if (a.mutations !== null) payload = mutate(payload, a.mutations);
                const origin = a.m.kind === "entry" ? a.m.origin : me;
                let topic = topic_of(a.m, me, origin);
                // Now and then the wrong topic: another kind, another addressee, another prefix.
                if (a.topic === 1) topic = topic.replace(/\/(vv|events|status|want|to)(\/|$)/, "/events$2");
                if (a.topic === 2) topic = topic.replace(me, peers[0]);
                if (a.topic === 3) topic = `x/${topic}`;
                deliver(topic, payload);
                break;
              }
              case "claim":
                deliver(topics.vv(peers[a.peer]), encode_message({ kind: "vv", from: peers[a.peer], name: "p", vv: new Map([...a.vv, ...[...vv_claims(a.vv)]]), pull: "*" }));
                break;
              case "want": {
                const from = peers[a.peer];
                const ranges = a.ranges.map((r) => ({ origin: origin_of(r.origin), after: r.after, upto: r.after + r.n }));
                deliver(topics.want(from, me), encode_message({ kind: "want", from, to: me, req: a.req, max_bytes: a.max_bytes, ranges }));
                break;
              }
              case "bytes": {
                const from = peers[a.peer];
                const topic = [topics.vv(from), topics.events(from), topics.status(from), topics.want(from, me), topics.to(from, me), topics.entry(from, me), topics.want(from, peers[0]), `t/${from}/nope`][a.kind];
                deliver(topic, a.bytes);
                break;
              }
              case "tick":
                now += a.ms;
                check_outbound(rep.tick(now));
                break;
              case "append":
                for (let i = 0; i < a.n; i++) log.append(new TextEncoder().encode(`own-${own + i}`));
                own += a.n;
                check_outbound(rep.on_local(now));
                break;
              case "reconnect":
                rep.on_disconnect(now);
                now += 10;
                check_outbound(rep.on_connect(now));
                break;
            }
            // Let fsyncs complete, as the event loop would between messages.
            await new Promise<void>((resolve) => setImmediate(resolve));
            check_outbound(rep.on_local(now));

            const next = log.vv();
            for (const [origin, seq] of Object.entries(next)) {
              if (origin === me) {
                expect(seq).toBe(own);
                continue;
              }
              if (!pulls(origin)) throw new Error(`stored events of ${origin}, which this replica does not pull (pull: ${JSON.stringify(s.pull)})`);
              const before = vv[origin] ?? 0;
              if (seq < before) throw new Error(`vv of ${origin} went back from ${before} to ${seq}`);
              for (let q = before + 1; q <= seq; q++) {
                const e = log.get(origin, q);
                if (e === null) throw new Error(`${origin}:${q} is within the vv but not held`);
                const got = content(e.time_ms, e.rejected ? flag_rejected : 0, e.payload);
                if (!sent.get(`${origin}:${q}`)?.has(got)) throw new Error(`stored ${origin}:${q} with content no peer sent`);
              }
            }
            for (const origin of Object.keys(vv)) if (!(origin in next)) throw new Error(`vv lost ${origin}`);
            vv = next;
            // What peers can make it hold stays within its bounds.
            const status = rep.status(now);
            expect(status.gap_buffer_bytes).toBeLessThanOrEqual(s.gap_buffer_max_bytes);
            expect(status.reassembly_bytes).toBeLessThanOrEqual(sync_defaults.reassembly_max_bytes);
          }
          await log.durable();
          const c = rep.counters;
          seen.stored += c.events_appended;
          seen.dropped += Object.values(c.dropped).reduce((x, y) => x + y, 0);
          seen.served += c.events_served;
          seen.conflicts += c.conflicts;
          const report = log.verify();
          if (!report.ok) throw new Error(`the log does not verify: ${JSON.stringify(report)}`);
          await log.close();
        }),
        100,
      );
      if (process.env.FUZZ_VERBOSE) console.log(`replicator: ${JSON.stringify(seen)}`);
      // The scenarios reach every path that matters: events stored, messages dropped, requests served, conflicts seen.
      if (!fuzz_replaying) expect(Object.values(seen).every((n) => n > 0)).toBe(true);
    },
    fuzz_timeout_ms,
  );
});

/** Claims of the replica's own origin now and then, so the acknowledgement path runs too. */
function vv_claims(vv: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  if (vv.size % 3 === 0) out.set(me, vv.size);
  return out;
}
