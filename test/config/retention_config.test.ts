import path from "node:path";
import { describe, expect, test } from "bun:test";
import { load_config } from "../../src/config/load.ts";
import type { Config } from "../../src/config/config.ts";
import { peer_events_quota } from "../../src/node.ts";
import { config_error, config_files } from "./config_files.ts";

const repo = path.join(import.meta.dir, "..", "..");
const { write: write_config } = config_files();
const hub = "9a0c5e2b7d1f4e63";
const MiB = 1024 * 1024;

describe("retention: in the config file", () => {
  test("without a retention section nothing changes: no budget", () => {
    expect(load_config(write_config("data_dir: d\n"), {}).retention).toBeNull();
    // An empty section means none, like an empty mqtt: section.
    expect(load_config(write_config("data_dir: d\nretention:\n"), {}).retention).toBeNull();
  });

  test("max_bytes alone: drop-acked, every puller is an upstream, 10% kept for own events", () => {
    const config = load_config(write_config("data_dir: d\nlog:\n  segment_size: 1MiB\nretention:\n  max_bytes: 10MiB\n"), {});
    expect(config.retention).toEqual({ max_bytes: 10 * MiB, policy: "drop-acked", upstreams: null, reserve_own_bytes: Math.floor(10 * MiB * 0.1) });
  });

  test("every key, with units; upstreams listed twice count once", () => {
    const file = write_config(`
      data_dir: d
      retention:
        max_bytes: 2GiB
        policy: drop-oldest
        upstreams: ["${hub}", "${hub}", "00000000000000aa"]
        reserve_own: 512MiB
    `);
    expect(load_config(file, {}).retention).toEqual({ max_bytes: 2 * 1024 * MiB, policy: "drop-oldest", upstreams: [hub, "00000000000000aa"], reserve_own_bytes: 512 * MiB });
    expect(load_config(write_config("data_dir: d\nretention:\n  max_bytes: 1073741824\n  policy: reject\n  reserve_own: 0\n"), {}).retention).toMatchObject({ policy: "reject", reserve_own_bytes: 0 });
  });

  test("config/example-fleet.yaml has a budget", () => {
    const config = load_config(path.join(repo, "config", "example-fleet.yaml"), { INTERLOG_MQTT_PASSWORD: "pw", INTERLOG_ADMIN_TOKEN: "tok" });
    expect(config.retention).toEqual({ max_bytes: 2 * 1024 * MiB, policy: "drop-acked", upstreams: null, reserve_own_bytes: 512 * MiB });
  });
});

describe("retention: errors name the file, line and key", () => {
  test("max_bytes is required", () => {
    const file = write_config("data_dir: d\nretention:\n  policy: reject\n");
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:2:1: retention.max_bytes: expected a size such as 64MiB or 128KiB, or a whole number of bytes; got nothing`);
  });

  test("a budget smaller than three segments", () => {
    const file = write_config("data_dir: d\nlog:\n  segment_size: 1MiB\nretention:\n  max_bytes: 2MiB\n");
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:5:3: retention.max_bytes: expected at least 3.0 MiB (3 segments of log.segment_size 1.0 MiB: the active one, one that can be pruned and the spare); got 2.0 MiB`,
    );
    // The default segment size counts too.
    const default_size = write_config("data_dir: d\nretention:\n  max_bytes: 100MiB\n");
    expect(config_error(() => load_config(default_size, {}))).toContain(`${default_size}:3:3: retention.max_bytes: expected at least 192.0 MiB (3 segments of log.segment_size 64.0 MiB`);
  });

  test("an unknown policy, a bad upstream id, a size without a unit it knows, an unknown key", () => {
    const file = write_config(`
      data_dir: d
      retention:
        max_bytes: 1GiB
        policy: drop-newest
        upstreams: [hub-1]
        reserve_own: 10 percent
        keep: all
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `4 problems in ${file}:`,
        `${file}:4:3: retention.policy: expected one of drop-acked, drop-oldest, reject; got "drop-newest"`,
        `${file}:5:15: retention.upstreams[0]: expected a replica id (16 lowercase hex digits, as interlog status shows), got "hub-1"`,
        `${file}:6:3: retention.reserve_own: "10 percent" is not a size; write a number with a unit, e.g. 64MiB (units: b, kb, mb, gb, kib, mib, gib)`,
        `${file}:7:3: retention.keep: unknown key "keep"; expected one of: max_bytes, policy, upstreams, reserve_own`,
      ].join("\n"),
    );
  });

  test("reserve_own above max_bytes; an empty upstreams list", () => {
    const file = write_config("data_dir: d\nretention:\n  max_bytes: 1GiB\n  reserve_own: 2GiB\n");
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:4:3: retention.reserve_own: expected at most max_bytes (1.0 GiB); got 2.0 GiB`);
    const empty = write_config("data_dir: d\nretention:\n  max_bytes: 1GiB\n  upstreams: []\n");
    expect(config_error(() => load_config(empty, {}))).toBe(`${empty}:4:3: retention.upstreams: must list at least 1 item`);
  });
});

describe("retention and the synced-events quota", () => {
  const log = (disk_bytes: number, free: number | null) => ({ disk_bytes, free_disk_bytes: () => free });
  const with_config = (text: string): Config => load_config(write_config(text), {});

  test("peers' events get at most max_bytes less reserve_own", () => {
    const config = with_config("data_dir: d\nlog:\n  segment_size: 1MiB\nretention:\n  max_bytes: 10MiB\n  reserve_own: 4MiB\n");
    // Half the disk would be far more: the budget rules.
    expect(peer_events_quota(config, log(0, 1024 * MiB))).toBe(6 * MiB);
    // Nothing known of the disk: still the budget.
    expect(peer_events_quota(config, log(0, null))).toBe(6 * MiB);
    // A smaller replication.peer_events_max stays.
    const smaller = with_config("data_dir: d\nlog:\n  segment_size: 1MiB\nreplication:\n  peer_events_max: 1MiB\nretention:\n  max_bytes: 10MiB\n  reserve_own: 4MiB\n");
    expect(peer_events_quota(smaller, log(0, null))).toBe(MiB);
  });

  test("without retention the quota is as before", () => {
    expect(peer_events_quota(with_config("data_dir: d\n"), log(2 * MiB, 6 * MiB))).toBe(4 * MiB);
    expect(peer_events_quota(with_config("data_dir: d\n"), log(0, null))).toBe(Number.POSITIVE_INFINITY);
  });
});
