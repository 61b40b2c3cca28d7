import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { create_admin_app } from "../../src/admin/app.ts";
import { type AdminServer, start_admin_server } from "../../src/admin/server.ts";
import { system_clock } from "../../src/lib/clock.ts";
import { Log } from "../../src/log/log.ts";
import type { AckSource } from "../../src/log/retention.ts";
import type { RetentionJson } from "../../src/admin/retention_view.ts";
import { encode } from "cbor2";
import { ServeProcess, interlog_command } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";

/**
 * `interlog prune`, `read --from` and `get` as an operator sees them: offline
 * on a data directory, and through a running replica's admin API when one
 * holds the directory (here the test process holds it, with a real server).
 */

const segment = 64 * 1024;
const token = "prune-cli-token";

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI in a child process without blocking this one (which may be the replica it talks to). */
async function run(args: string[]): Promise<Run> {
  const proc = Bun.spawn([...interlog_command(), ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", INTERLOG_ADMIN_TOKEN: token },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

/** Appends `events` events of 1000 bytes, in batches of ten. */
async function fill(log: Log, events: number): Promise<void> {
  for (let i = 0; i < events; i += 10) await log.write(Array.from({ length: Math.min(10, events - i) }, () => new Uint8Array(1000).fill(i % 251)));
}

/** A data directory with 64 KiB segments holding ~5 segments of events, closed. */
async function data_dir(): Promise<{ dir: string; id: string }> {
  const dir = path.join(temp_dir(), "data");
  const log = await Log.open({ dir, name: "truck-9", segment_size_bytes: segment });
  await fill(log, 300);
  const id = log.id;
  await log.close();
  return { dir, id };
}

async function read_only<T>(dir: string, look: (log: Log) => T): Promise<T> {
  const log = await Log.open({ dir, read_only: true });
  try {
    return look(log);
  } finally {
    await log.close();
  }
}

const servers: AdminServer[] = [];
const open_logs: Log[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  for (const l of open_logs) await l.close();
});

/** A running replica in this process: its log holds the directory's lock; its upstream holds every durable event. */
async function running_replica(): Promise<{ dir: string; log: Log; server: AdminServer }> {
  const dir = path.join(temp_dir(), "data");
  const log = await Log.open({ dir, name: "hub-feed", segment_size_bytes: segment, retention: { max_bytes: 16 * segment, policy: "drop-acked", reserve_own_bytes: 0 } });
  open_logs.push(log);
  const upstream = "00000000000000cc";
  const acks: AckSource = { upstreams_of: () => [upstream], held_by: (_u, origin) => log.durable_held(origin), upstreams: () => [upstream] };
  log.set_acks(acks);
  await fill(log, 300);
  const server = start_admin_server({ app: create_admin_app({ log, token, body_limit_bytes: 64 * 1024, clock: system_clock }), listen: "127.0.0.1:0" });
  servers.push(server);
  return { dir, log, server };
}

describe("interlog prune offline", () => {
  test("drop-acked prunes nothing without sync, and says why; the log is left as it was", async () => {
    const { dir, id } = await data_dir();
    const before = await read_only(dir, (log) => [log.first_pos, log.count, log.segment_count]);
    for (const args of [["--dry-run"], []]) {
      const r = await run(["prune", "--data-dir", dir, ...args]);
      expect(r.code).toBe(0);
      const lines = r.out.split("\n");
      expect(lines[0]).toBe(`offline prune of ${dir} (no replica runs on it)`);
      expect(lines[1]).toBe(`${args.length > 0 ? "dry run, " : ""}policy drop-acked: ${args.length > 0 ? "would prune" : "pruned"} 0 segment(s), 0 event(s), 0 record bytes`);
      expect(r.out).toContain(`blocked: no upstream pulls origin ${id}, so nothing acknowledges its events up to seq`);
      expect(r.out).toContain("offline: sync is not running, so no upstream's acknowledgement is known here and drop-acked prunes nothing (as expected)");
    }
    expect(await read_only(dir, (log) => [log.first_pos, log.count, log.segment_count])).toEqual(before);
  });

  test("drop-oldest --max-bytes: the dry run lists what would go, the prune removes exactly that; read, get and verify then say what is gone", async () => {
    const { dir, id } = await data_dir();
    const segments_dir = path.join(dir, "segments");
    const before = Object.fromEntries(fs.readdirSync(segments_dir).map((n) => [n, fs.readFileSync(path.join(segments_dir, n)).toString("hex")]));
    const dry = await run(["prune", "--data-dir", dir, "--policy", "drop-oldest", "--max-bytes", String(4 * segment), "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    // A dry run writes nothing: not even the epoch file a writable open bumps.
    const after = Object.fromEntries(fs.readdirSync(segments_dir).map((n) => [n, fs.readFileSync(path.join(segments_dir, n)).toString("hex")]));
    expect(after).toEqual(before);
    const plan = JSON.parse(dry.out) as { dry_run: boolean; segments: { file: string; first_pos: number; end_pos: number; events: number; acked: boolean }[]; total: { events: number; unacked_events: number }; first_pos: number; via: string };
    expect(plan.dry_run).toBe(true);
    expect(plan.via).toBe(`offline prune of ${dir} (no replica runs on it)`);
    expect(plan.segments.length).toBeGreaterThan(0);
    expect(plan.segments[0]).toMatchObject({ file: "00000000000000000000.seg", first_pos: 0, acked: false });
    expect(plan.total.unacked_events).toBe(plan.total.events);
    expect(plan.first_pos).toBe(0);
    expect(await read_only(dir, (log) => log.first_pos)).toBe(0);

    const real = await run(["prune", "--data-dir", dir, "--policy", "drop-oldest", "--max-bytes", String(4 * segment)]);
    expect(real.code).toBe(0);
    const end = plan.segments[plan.segments.length - 1].end_pos;
    expect(real.out).toContain(`policy drop-oldest: pruned ${plan.segments.length} segment(s), ${plan.total.events} event(s)`);
    for (const s of plan.segments) expect(real.out).toContain(`  ${s.file}  positions ${s.first_pos}..${s.end_pos - 1}  ${s.events} events`);
    expect(real.out).toContain("NOT acked");
    expect(real.out).toContain(`${plan.total.events} event(s) no upstream acknowledged were deleted (drop-oldest): lost unless a peer holds them`);
    expect(real.out).toContain(`first position held: ${end}\n`);
    expect(real.out).toContain("blocked: no\n");
    expect(await read_only(dir, (log) => [log.first_pos, log.pruned_through(id)])).toEqual([end, end]);

    // read --from below the first held position: a note on stderr, JSON lines on stdout from the first held one.
    const read = await run(["read", "--data-dir", dir, "--from", "0", "--limit", "2"]);
    expect(read.code).toBe(0);
    expect(read.err).toBe(`interlog read: events before position ${end} were pruned by retention; reading from ${end}\n`);
    expect(read.out.trim().split("\n").map((l) => (JSON.parse(l) as { pos: number }).pos)).toEqual([end, end + 1]);
    const held_read = await run(["read", "--data-dir", dir, "--from", String(end + 1), "--limit", "1"]);
    expect(held_read.err).toBe("");

    const gone = await run(["get", "--data-dir", dir, "--id", `${id}:1`]);
    expect(gone.code).toBe(1);
    expect(gone.err).toBe(
      `interlog get: event ${id}:1 was pruned by retention: this replica no longer stores origin ${id} up to seq ${end} (nor any position before ${end}); ask an upstream that holds it\n`,
    );
    expect(gone.out).toBe("");
    const held = await run(["get", "--data-dir", dir, "--id", `${id}:${end + 1}`]);
    expect(held.code).toBe(0);
    expect(JSON.parse(held.out)).toMatchObject({ pos: end, id: `${id}:${end + 1}`, seq: end + 1 });
    const never = await run(["get", "--data-dir", dir, "--id", `${id}:9999`]);
    expect([never.code, never.err]).toEqual([1, `interlog get: this log holds no event ${id}:9999: it holds origin ${id} up to seq 300\n`]);

    const verify = await run(["verify", "--data-dir", dir]);
    expect(verify.code).toBe(0);
  });

  test("--config gives the directory, the segment size, and the policy and budget of its retention section", async () => {
    const root = temp_dir();
    const dir = path.join(root, "data");
    const log = await Log.open({ dir, segment_size_bytes: 1024 * 1024 });
    for (let i = 0; i < 50; i++) await log.write(Array.from({ length: 100 }, () => new Uint8Array(1000)));
    const [sealed, used] = [log.segment_count - 1, log.used_bytes];
    await log.close();
    const config = path.join(root, "interlog.yaml");
    fs.writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\nlog:\n  segment_size: 1MiB\nadmin:\n  listen: 127.0.0.1:0\nretention:\n  max_bytes: 3MiB\n  policy: drop-oldest\n`);
    const r = await run(["prune", "--config", config, "--dry-run"]);
    expect(r.code).toBe(0);
    const count = Math.ceil((used + 1024 * 1024 - 3 * 1024 * 1024) / (1024 * 1024));
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(sealed);
    expect(r.out.split("\n").slice(0, 2)).toEqual([
      `offline prune of ${dir} (no replica runs on it)`,
      expect.stringMatching(new RegExp(`^dry run, policy drop-oldest: would prune ${count} segment\\(s\\), `)),
    ]);
    // Nothing else was made at the config's segment size: no 64 MiB file appeared.
    for (const name of fs.readdirSync(path.join(dir, "segments"))) {
      if (name.endsWith(".seg") || name === "spare") expect(fs.statSync(path.join(dir, "segments", name)).size).toBe(1024 * 1024);
    }
  });

  test("usage errors: an unknown policy, drop-oldest without a budget", async () => {
    const { dir } = await data_dir();
    const bad = await run(["prune", "--data-dir", dir, "--policy", "reject"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--policy must be drop-acked or drop-oldest, got "reject"');
    const no_budget = await run(["prune", "--data-dir", dir, "--policy", "drop-oldest"]);
    expect(no_budget.code).toBe(2);
    expect(no_budget.err).toContain("drop-oldest prunes down to a budget: give --max-bytes N");
  });
});

describe("interlog prune next to a running replica", () => {
  test("goes through its admin API (dry run, then for real), which knows what the upstream acknowledged", async () => {
    const { dir, log, server } = await running_replica();
    const sealed = log.segment_count - 1;
    expect(sealed).toBeGreaterThanOrEqual(3);

    const dry = await run(["prune", "--data-dir", dir, "--url", server.url, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.err).toBe("");
    const lines = dry.out.split("\n");
    expect(lines[0]).toBe(`prune through the running replica at ${server.url} (${dir} is in use)`);
    expect(lines[1]).toMatch(new RegExp(`^dry run, policy drop-acked: would prune ${sealed} segment\\(s\\), \\d+ event\\(s\\), \\d+ record bytes$`));
    expect(lines[2]).toMatch(/^ {2}00000000000000000000\.seg {2}positions 0\.\.\d+ {2}\d+ events {2}\d+ bytes {2}acked$/);
    expect(dry.out).toContain("not acknowledged: 0 events, 0 bytes");
    expect(dry.out).toContain("blocked: no\n");
    expect(log.first_pos).toBe(0);

    const real = await run(["prune", "--data-dir", dir, "--url", server.url]);
    expect(real.code).toBe(0);
    expect(real.out).toContain(`policy drop-acked: pruned ${sealed} segment(s)`);
    expect(log.first_pos).toBeGreaterThan(0);
    expect(real.out).toContain(`first position held: ${log.first_pos}\n`);
    expect(log.segment_count).toBe(1);

    // tail --from 0 follows from the first held position and notes the gap on stderr.
    const tail = Bun.spawn([...interlog_command(), "tail", "--url", server.url, "--from", "0"], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "", INTERLOG_ADMIN_TOKEN: token },
    });
    try {
      const reader = tail.stdout.getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { done, value } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect((JSON.parse(out.split("\n")[0]) as { pos: number }).pos).toBe(log.first_pos);
    } finally {
      tail.kill();
      await tail.exited;
    }
    expect(await new Response(tail.stderr).text()).toBe(`interlog tail: events before position ${log.first_pos} were pruned by retention; following from ${log.first_pos}\n`);
  });

  test("refuses without the replica's address, or when the address is another replica's", async () => {
    const { dir, log, server } = await running_replica();
    const alone = await run(["prune", "--data-dir", dir]);
    expect(alone.code).toBe(1);
    expect(alone.out).toBe("");
    expect(alone.err).toContain(`data directory is in use by pid ${process.pid}`);
    expect(alone.err).toContain(`A replica runs on ${dir}: prune through its admin API with --config FILE or --url URL`);
    expect(alone.err).toContain("Nothing was pruned.");

    const other = await running_replica();
    const wrong = await run(["prune", "--data-dir", dir, "--url", other.server.url]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain(`the replica at ${other.server.url} is ${other.log.id}, but ${dir} belongs to ${log.id}`);

    const unreachable = await run(["prune", "--data-dir", dir, "--url", "http://127.0.0.1:9"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.err).toContain("cannot reach the replica's admin API at http://127.0.0.1:9");
    expect(log.first_pos).toBe(0);
    expect(server.url).not.toBe(other.server.url);
  });

  test("with interlog serve and its config: blocked names what holds drop-acked back; drop-oldest prunes to the replica's own budget", async () => {
    const root = temp_dir();
    const dir = path.join(root, "data");
    const config = path.join(root, "interlog.yaml");
    fs.writeFileSync(
      config,
      `data_dir: ${JSON.stringify(dir)}\nlog:\n  segment_size: 1MiB\nadmin:\n  listen: 127.0.0.1:0\nretention:\n  max_bytes: 3MiB\n  policy: drop-acked\n`,
    );
    const serve = await ServeProcess.start(config);
    try {
      // About 2.4 MiB of events: two sealed segments and the one being written.
      const batch = encode(Array.from({ length: 400 }, () => new Uint8Array(1000)));
      for (let i = 0; i < 6; i++) {
        const res = await serve.fetch("/api/events", { method: "POST", headers: { "content-type": "application/cbor" }, body: batch });
        expect(res.status).toBe(201);
      }
      // The config gives the directory and the token; its listen port is 0, so the address comes from --url.
      const dry = await run(["prune", "--config", config, "--url", serve.admin_url, "--dry-run"]);
      expect(dry.code).toBe(0);
      expect(dry.out.split("\n")[0]).toBe(`prune through the running replica at ${serve.admin_url} (${dir} is in use)`);
      expect(dry.out).toContain("dry run, policy drop-acked: would prune 0 segment(s)");
      // Offline (no broker in this config) nothing is acknowledged: the blocked line says which origin lacks an upstream.
      expect(dry.out).toContain(`blocked: no upstream pulls origin ${serve.id}, so nothing acknowledges its events up to seq`);

      const real = await run(["prune", "--config", config, "--url", serve.admin_url, "--policy", "drop-oldest"]);
      expect(real.code).toBe(0);
      expect(real.out).toContain("policy drop-oldest: pruned 1 segment(s)");
      expect(real.out).toContain("NOT acked");
      const status = (await (await serve.fetch("/api/status")).json()) as { retention: RetentionJson };
      expect(status.retention.pruned.segments).toBe(1);
      expect(status.retention.pruned.unacked_events).toBe(status.retention.first_pos);
      expect(real.out).toContain(`first position held: ${status.retention.first_pos}\n`);
      const events = (await (await serve.fetch("/api/events?from=0&limit=1")).json()) as { events: { pos: number }[]; pruned_before: number };
      expect([events.events[0].pos, events.pruned_before]).toEqual([status.retention.first_pos, status.retention.first_pos]);
      const metrics = await (await serve.fetch("/metrics")).text();
      expect(metrics).toContain(`interlog_pruned_events_total{acked="false"} ${status.retention.first_pos}`);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });
});
