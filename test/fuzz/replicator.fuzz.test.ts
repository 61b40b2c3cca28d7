import { without_local_marks } from "../../src/log/frame.ts";
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Random } from "../../src/lib/random.ts";
import { Log } from "../../src/log/log.ts";
import { type SyncMessage, type WantMessage, decode_message, encode_message } from "../../src/sync/messages.ts";
import { type Outbound, Replicator, sync_defaults } from "../../src/sync/replicator.ts";
import { Topics } from "../../src/sync/topics.ts";
import { clone_replica, forge_payload, relabel, write_range } from "../support/forgery.ts";
import { fuzz_async, fuzz_replaying, fuzz_timeout_ms } from "../support/fuzz.ts";
import { ManualTimers } from "../support/manual_timers.ts";
import { MemFileIO } from "../support/mem_file_io.ts";
import { type Mutation, chunk_frames, message_arb, mutate, mutations_arb, sometimes, topic_of, vv_arb } from "./arbitraries.ts";

/**
 * One replica (a real Log on an in-memory disk) receiving what several fake
 * peers send: real origins' signed histories, the conflicting history of a
 * second device holding an origin's key (a copied data directory),
 * crc-valid forgeries (a payload changed, another origin's range relabelled,
 * the replica's own id relabelled), ranges cut short, fragments out of
 * order, random and damaged messages, answers to requests it made and to
 * none, requests of every shape, between ticks, local appends and
 * reconnects. Whatever arrives, the replica never throws, stores only
 * events an origin's key signed (bit for bit as written), in whole signed
 * ranges, of origins it pulls, never takes back what it held, and its log
 * verifies.
 */

const max_packet_bytes = 8192;
const history_seqs = 24;
const fixture_now = 1_700_000_000_000;

/** A real origin on an in-memory disk, its ids drawn from `seed` (so every run has the same ids). */
async function open_origin(seed: number): Promise<{ log: Log; io: MemFileIO }> {
  const rng = new Random(seed);
  const io = new MemFileIO();
  let t = fixture_now + seed;
  const log = await Log.open({ dir: "/origin", io, sync: "never", segment_size_bytes: 1024 * 1024, timers: new ManualTimers(), clock: { now_ms: () => (t += 7) }, fill_random: (b) => rng.fill(b) });
  return { log, io };
}

/** Writes history_seqs events in signed ranges of 1..max_range events; payloads mostly small, now and then large, never empty. */
function write_history(log: Log, seed: number, max_range: number): void {
  const rng = new Random(seed);
  while (log.held(log.id) < history_seqs) {
    const n = Math.min(history_seqs - log.held(log.id), rng.int(1, max_range));
    write_range(log, ...Array.from({ length: n }, () => rng.bytes(rng.chance(0.05) ? rng.int(5000, 12_000) : rng.int(1, 200))));
  }
}

/** One origin's history as written: each seq's frame (index seq - 1) and the bounds of the signed range holding it. */
interface History {
  frames: Uint8Array[];
  range_first: number[];
  range_last: number[];
}

function history_of(log: Log): History {
  const h: History = { frames: [], range_first: [], range_last: [] };
  let first = 1;
  for (const e of log.events_after(log.id, 0)) {
    h.frames.push(e.frame.slice());
    if (!e.signed) continue;
    for (let seq = first; seq <= e.seq; seq++) {
      h.range_first[seq - 1] = first;
      h.range_last[seq - 1] = e.seq;
    }
    first = e.seq + 1;
  }
  return h;
}

// Three peers and a stranger (not pulled when the replica pulls a list), each a real origin; for each, a second device with its key.
const origin_logs = await Promise.all([11, 12, 13, 14].map(open_origin));
const peers = origin_logs.slice(0, 3).map((o) => o.log.id);
const stranger = origin_logs[3].log.id;
/** versions[0]: the origins' own histories; versions[1]: their clones', other content in other range bounds. */
const versions: History[][] = [[], []];
for (const [i, o] of origin_logs.entries()) {
  write_history(o.log, 100 + i, 4);
  versions[0].push(history_of(o.log));
  const clone = await clone_replica(o.io, "/origin", { clock: { now_ms: () => fixture_now + 1000 + i } });
  write_history(clone, 200 + i, 5);
  versions[1].push(history_of(clone));
  await clone.close();
  await o.log.close();
}
/** Every frame some origin's key signed, by origin:seq (hex): the only ones a replica may store. */
const signed_frames = new Map<string, Set<string>>();
for (const [i, o] of origin_logs.entries()) {
  for (const v of versions) {
    v[i].frames.forEach((f, k) => {
      const key = `${o.log.id}:${k + 1}`;
      if (!signed_frames.has(key)) signed_frames.set(key, new Set());
      signed_frames.get(key)?.add(Buffer.from(without_local_marks(f)).toString("hex"));
    });
  }
}

/**
 * The frames of origin i's seqs first..last in one version, whole signed
 * ranges when `whole`: 0 the origin's, 1 its clone's, 2 the origin's with a
 * payload byte changed and the crc made good, 3 another origin's relabelled
 * with this one's id (or, for the replica itself, one of the peers').
 */
function frames_for(i: number, first: number, last: number, version: number, whole: boolean): Uint8Array {
  const h = versions[version === 1 ? 1 : 0][i === origin_logs.length ? 0 : i];
  if (whole) {
    first = h.range_first[first - 1];
    last = h.range_last[last - 1];
  }
  const frames = new Uint8Array(Buffer.concat(h.frames.slice(first - 1, last)));
  const origin = origin_of(i);
  if (i === origin_logs.length) return relabel(frames, origin);
  if (version === 2) return forge_payload(frames, (first + last) % (last - first + 1), first);
  if (version === 3) return relabel(new Uint8Array(Buffer.concat(versions[0][(i + 1) % origin_logs.length].frames.slice(first - 1, last))), origin);
  return frames;
}

type Action =
  | {
      t: "events";
      peer: number;
      origin: number;
      from_seq: number;
      count: number;
      whole: boolean;
      version: number;
      kind: "events" | "to";
      capacity: number;
      order: number[];
      dup: boolean;
      mutations: Mutation[] | null;
    }
  | { t: "message"; peer: number; m: SyncMessage; mutations: Mutation[] | null; topic: number }
  | { t: "claim"; peer: number; vv: Map<string, number>; real: [number, number][] }
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
        // Mostly whole signed ranges, as senders send them; now and then cut short.
        whole: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        // Mostly the origin's own events; else its clone's, or a forgery.
        version: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
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
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("claim" as const),
        peer: peer_arb,
        vv: vv_arb(1),
        // Claims of the real origins too, so the replica asks for them.
        real: fc.array(fc.tuple(fc.integer({ min: 0, max: peers.length }), fc.integer({ min: 1, max: history_seqs })), { maxLength: 4 }),
      }),
    },
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
    "any sequence of messages: no throw, only pulled origins' signed events stored, in whole ranges, the vv never goes back, the log verifies",
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
      const seen = { stored: 0, dropped: 0, served: 0, conflicts: 0, bad_signature: 0, unknown_key: 0, partial_range: 0, unsolicited_answer: 0 };
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
          /** The last request the replica sent each peer (answers name it). */
          const asked = new Map<string, number>();
          const check = (out: Outbound[]) => {
            for (const o of out) {
              const parsed = topics.parse(o.topic);
              if (parsed !== null && parsed.kind === "want" && parsed.peer !== null) asked.set(parsed.peer, (decode_message(o.payload, parsed) as WantMessage).req);
            }
            check_outbound(out);
          };
          let own = 0;
          let vv = log.vv();
          check(rep.on_connect(now));
          const deliver = (topic: string, payload: Uint8Array) => check(rep.on_message(topic, payload, now));

          for (const a of s.actions) {
            switch (a.t) {
              case "events": {
                const i = a.origin < 0 ? a.peer : a.origin;
                const first = Math.min(a.from_seq, history_seqs);
                const last = Math.min(first + a.count - 1, history_seqs);
                const chunks = chunk_frames(frames_for(i, first, last, a.version, a.whole), a.capacity);
                // Reorder (fragments too), duplicate, damage one.
                for (const k of a.order) {
                  const x = k % chunks.length;
                  const y = (k >> 3) % chunks.length;
                  [chunks[x], chunks[y]] = [chunks[y], chunks[x]];
                }
                if (a.dup) chunks.push(...chunks.slice(0, 2));
                const from = peers[a.peer];
                const req = asked.get(from) ?? 1;
                chunks.forEach((c, n) => {
                  const m: SyncMessage =
                    a.kind === "events"
                      ? { kind: "events", from, events: c.events, part: c.part }
                      : { kind: "to", from, to: me, req, events: c.events, part: c.part, last: n === chunks.length - 1, held: null };
                  let payload = encode_message(m);
                  if (a.mutations !== null && n === 0) payload = mutate(payload, a.mutations);
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
              case "claim": {
                const claims = new Map([...a.vv, ...vv_claims(a.vv), ...a.real.map(([i, seq]): [string, number] => [origin_of(i), seq])]);
                deliver(topics.vv(peers[a.peer]), encode_message({ kind: "vv", from: peers[a.peer], name: "p", vv: claims, pull: "*" }));
                break;
              }
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
                check(rep.tick(now));
                break;
              case "append":
                for (let i = 0; i < a.n; i++) log.append(new TextEncoder().encode(`own-${own + i}`));
                own += a.n;
                check(rep.on_local(now));
                break;
              case "reconnect":
                rep.on_disconnect(now);
                now += 10;
                check(rep.on_connect(now));
                break;
            }
            // Let fsyncs complete, as the event loop would between messages.
            await new Promise<void>((resolve) => setImmediate(resolve));
            check(rep.on_local(now));

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
                if (e.rejected) throw new Error(`${origin}:${q} is marked rejected, and no validator runs here`);
                if (!signed_frames.get(`${origin}:${q}`)?.has(Buffer.from(without_local_marks(e.frame)).toString("hex"))) throw new Error(`stored ${origin}:${q} as no key holder of ${origin} wrote it`);
              }
              // Whole signed ranges only: the last event held of every origin ends one.
              if (!log.get(origin, seq)?.signed) throw new Error(`the last event held of ${origin} (${seq}) does not end a signed range`);
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
          seen.bad_signature += c.events_dropped.bad_signature;
          seen.unknown_key += c.events_dropped.unknown_key;
          seen.partial_range += c.events_dropped.partial_range;
          seen.unsolicited_answer += c.dropped.unsolicited_answer;
          const report = log.verify();
          if (!report.ok) throw new Error(`the log does not verify: ${JSON.stringify(report)}`);
          await log.close();
        }),
        100,
      );
      if (process.env.FUZZ_VERBOSE) console.log(`replicator: ${JSON.stringify(seen)}`);
      // The scenarios reach every path that matters: events stored, messages dropped, requests served, conflicts and forgeries seen.
      if (!fuzz_replaying) expect(seen).toEqual(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v > 0 ? v : `${k} never reached`])) as typeof seen);
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
