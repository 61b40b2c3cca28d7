import { describe, expect, test } from "bun:test";
import type { Outbound } from "../../src/sync/replicator.ts";
import { broker_presets } from "../../src/transport/presets.ts";
import { PublishQueue } from "../../src/transport/publish_queue.ts";
import { for_seeds } from "../support/seeded.ts";

const msg = (bytes: number, retain = false): Outbound => ({ topic: "t/x/events", payload: new Uint8Array(bytes), retain, qos: 1 });

describe("outgoing pacing", () => {
  test("with the AWS IoT preset no one-second window carries more than 100 publishes, and bytes average at most 512 KiB/s yet reach it", async () => {
    await for_seeds(5, (rng) => {
      const aws = broker_presets.aws_iot;
      let now = 0;
      const sent: { at: number; bytes: number }[] = [];
      const q = new PublishQueue(
        { publishes_per_s: aws.publishes_per_s, bytes_per_s: aws.bytes_per_s, inflight_max: 8, queue_max_bytes: 1 << 30 },
        { now_ms: () => now },
        (m, done) => {
          sent.push({ at: now, bytes: m.payload.length });
          done();
        },
      );
      for (let i = 0; i < 1500; i++) q.push([msg(rng.chance(0.2) ? rng.int(60_000, aws.max_packet_bytes) : rng.int(10, 2000))]);
      while (q.stats.queued > 0) {
        q.drain();
        now += rng.int(1, 7);
      }
      expect(sent.length).toBe(1500);
      let lo = 0;
      let count = 0;
      let bytes = 0;
      for (const s of sent) {
        count++;
        bytes += s.bytes;
        while (sent[lo].at <= s.at - 1000) {
          count--;
          bytes -= sent[lo].bytes;
          lo++;
        }
        expect(count).toBeLessThanOrEqual(100);
        // A broker delays bytes over its throughput (it does not discard them): a second holds at most the rate (and 50 ms of it) and one message.
        expect(bytes).toBeLessThanOrEqual(512 * 1024 * 1.05 + aws.max_packet_bytes);
      }
      // Over any longer span the average stays within the rate, and a backlog of big messages goes out near it
      // (a window that must hold each whole message sent five 88 KB answers a second: 0.84 of the limit).
      const span_s = (sent[sent.length - 1].at - sent[0].at) / 1000;
      const total = sent.reduce((sum, s) => sum + s.bytes, 0);
      expect(total - sent[sent.length - 1].bytes).toBeLessThanOrEqual(512 * 1024 * (span_s + 0.05));
      const big = sent.filter((s) => s.bytes >= 60_000);
      for (let i = 0; i + 20 < big.length; i += 20) {
        const window = sent.filter((s) => s.at >= big[i].at && s.at < big[i + 20].at);
        const rate = window.reduce((sum, s) => sum + s.bytes, 0) / ((big[i + 20].at - big[i].at) / 1000);
        expect(rate).toBeGreaterThan(0.95 * 512 * 1024);
      }
    });
  });

  test("a clock stepped back (NTP) does not stall pacing for the step", () => {
    const aws = broker_presets.aws_iot;
    let now = 10_000_000;
    let sent = 0;
    const q = new PublishQueue(
      { publishes_per_s: aws.publishes_per_s, bytes_per_s: aws.bytes_per_s, inflight_max: 64, queue_max_bytes: 1 << 30 },
      { now_ms: () => now },
      (_m, done) => {
        sent++;
        done();
      },
    );
    q.push(Array.from({ length: 200 }, () => msg(100_000)));
    q.drain();
    const before = sent;
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(200);
    now -= 3_600_000;
    // Within a couple of seconds of the step (not an hour), sending goes on at the rate.
    for (let i = 0; i < 200; i++) {
      now += 10;
      q.drain();
    }
    expect(sent - before).toBeGreaterThanOrEqual(8);
  });

  test("at most inflight_max publishes await their acknowledgement", () => {
    const pending: (() => void)[] = [];
    const q = new PublishQueue({ publishes_per_s: null, bytes_per_s: null, inflight_max: 3, queue_max_bytes: 1 << 20 }, { now_ms: () => 0 }, (_m, done) =>
      pending.push(() => done()),
    );
    q.push(Array.from({ length: 10 }, () => msg(100)));
    q.drain();
    expect(pending.length).toBe(3);
    pending.shift()?.();
    q.drain();
    expect(pending.length).toBe(3);
    expect(q.stats.sent).toBe(1);
  });

  test("a full queue drops its newest non-retained messages and keeps retained ones", () => {
    const sent: number[] = [];
    const q = new PublishQueue({ publishes_per_s: null, bytes_per_s: null, inflight_max: 8, queue_max_bytes: 1000 }, { now_ms: () => 0 }, (m) =>
      sent.push(m.payload.length),
    );
    q.push([msg(400, true), msg(401), msg(402), msg(403)]);
    expect(q.stats.queued_bytes).toBeLessThanOrEqual(1000);
    expect(q.stats.dropped).toBe(2);
    q.drain();
    // What was queued first goes out, in order: a receiver gets a prefix it can use.
    expect(sent).toEqual([400, 401]);
  });

  test("a newer retained state replaces the queued one on its topic instead of queueing behind it", () => {
    const sent: Outbound[] = [];
    let release: (() => void) | null = null;
    const q = new PublishQueue({ publishes_per_s: null, bytes_per_s: null, inflight_max: 1, queue_max_bytes: 1 << 20 }, { now_ms: () => 0 }, (m, done) => {
      sent.push(m);
      release = () => done();
    });
    const state = (topic: string, n: number): Outbound => ({ topic, payload: new Uint8Array(n), retain: true, qos: 1 });
    q.push([state("t/a/vv/1", 10)]);
    q.drain(); // in flight: cannot be replaced any more
    q.push([state("t/a/vv/1", 11), msg(5), state("t/a/vv/2", 20), state("t/a/vv/1", 12), state("t/a/vv/1", 13)]);
    expect(q.stats.queued).toBe(3);
    expect(q.stats.superseded).toBe(2);
    expect(q.stats.queued_bytes).toBe(13 + 5 + 20);
    for (let i = 0; i < 4; i++) {
      (release as (() => void) | null)?.();
      q.drain();
    }
    expect(sent.map((m) => [m.topic, m.payload.length])).toEqual([
      ["t/a/vv/1", 10],
      ["t/a/vv/1", 13],
      ["t/x/events", 5],
      ["t/a/vv/2", 20],
    ]);
  });
});
