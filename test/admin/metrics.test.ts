import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { MemFileIO } from "../support/mem_file_io.ts";
import { Origin } from "../support/origin.ts";
import { accept_validated } from "../support/validated_accept.ts";
import { FakeSync, admin_app, dec, enc, metric, post_event } from "./support.ts";

const peer = "00000000000000aa";

async function scrape(call: (url: string) => Promise<Response>): Promise<string> {
  const res = await call("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

describe("GET /metrics", () => {
  test("counts appends, bytes, fsyncs with their latency histogram, disk free and rejected appends", async () => {
    const io = new MemFileIO();
    io.capacity_bytes = 1024 * 1024;
    const t = await admin_app({ validate_append: (p) => (p.length > 100 ? "too big for this test" : null) }, { dir: "/mem/data", io });
    await post_event(t, enc("one"));
    await post_event(t, encode([enc("two"), enc("three")]), "application/cbor");
    expect((await post_event(t, new Uint8Array(101))).status).toBe(422);
    const text = await scrape(t.call);
    expect(metric(text, "interlog_log_appends_total")).toBe(2);
    expect(metric(text, "interlog_log_appended_events_total")).toBe(3);
    expect(metric(text, "interlog_log_appended_bytes_total")).toBe(3 + 3 + 5);
    expect(metric(text, "interlog_log_events")).toBe(3);
    const fsyncs = metric(text, "interlog_log_fsyncs_total") ?? 0;
    expect(fsyncs).toBeGreaterThanOrEqual(2);
    expect(metric(text, "interlog_log_fsync_duration_seconds_count")).toBe(fsyncs);
    expect(metric(text, 'interlog_log_fsync_duration_seconds_bucket{le="+Inf"}')).toBe(fsyncs);
    expect(metric(text, "interlog_disk_free_bytes")).toBe(io.free_bytes() ?? -1);
    expect(metric(text, "interlog_append_rejected_total")).toBe(1);
    expect(metric(text, "interlog_rejected_events")).toBe(0);
    expect(text).not.toContain("interlog_sync_");

    // Latencies are drained into the histogram once: a second scrape counts only new fsyncs.
    await post_event(t, enc("four"));
    const again = await scrape(t.call);
    expect(metric(again, "interlog_log_fsync_duration_seconds_count")).toBe(metric(again, "interlog_log_fsyncs_total"));
  });

  test("reports sync traffic, drops by reason, conflicts, per-peer lag, and rejected events", async () => {
    const sync = new FakeSync();
    sync.totals = { messages_in: 12, messages_out: 7, conflicts: 2, dropped: { bad_crc: 2, unknown_version: 1 } };
    sync.peer_list = [{ id: peer, name: "cloud", vv: {}, lag_events: 40, oldest_unacked_age_ms: 2500, last_seen_ms: 1_000 }];
    const t = await admin_app({ sync, clock: { now_ms: () => 4_000 } });
    const origin = await Origin.open();
    const refuse_bad = (payload: Uint8Array) => (dec(payload).startsWith("bad") ? "bad lat" : null);
    expect(accept_validated(t.log, origin.write("bad lat", "good lat"), refuse_bad)).toEqual({ appended: 2, rejected: 1 });
    await origin.close();
    await t.log.durable();
    let text = await scrape(t.call);
    expect(metric(text, "interlog_sync_connected")).toBe(1);
    expect(metric(text, "interlog_sync_messages_in_total")).toBe(12);
    expect(metric(text, "interlog_sync_messages_out_total")).toBe(7);
    expect(metric(text, "interlog_sync_conflicts_total")).toBe(2);
    expect(metric(text, 'interlog_sync_messages_dropped_total{reason="bad_crc"}')).toBe(2);
    expect(metric(text, 'interlog_sync_messages_dropped_total{reason="unknown_version"}')).toBe(1);
    expect(metric(text, `interlog_sync_peer_lag_events{peer="${peer}",name="cloud"}`)).toBe(40);
    expect(metric(text, `interlog_sync_peer_oldest_unacked_age_seconds{peer="${peer}",name="cloud"}`)).toBe(2.5);
    expect(metric(text, `interlog_sync_peer_last_seen_age_seconds{peer="${peer}",name="cloud"}`)).toBe(3);
    expect(metric(text, "interlog_rejected_events")).toBe(1);

    // A peer that went away disappears from the per-peer series.
    sync.connected = false;
    sync.peer_list = [];
    text = await scrape(t.call);
    expect(metric(text, "interlog_sync_connected")).toBe(0);
    expect(text).not.toContain(`peer="${peer}"`);
  });
});
