import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import YAML from "yaml";
import type { Config } from "../../src/config/config.ts";
import { load_config } from "../../src/config/load.ts";
import { InterlogError } from "../../src/lib/errors.ts";
import { is_origin } from "../../src/log/ids.ts";
import { fuzz, fuzz_replaying, fuzz_timeout_ms } from "../support/fuzz.ts";
import { sometimes } from "./arbitraries.ts";

/**
 * The config loader (src/config/load.ts) against anything a user or a
 * broken deploy script can put in the file: it either loads a config that
 * keeps the file format's promises, or throws InterlogError CONFIG_INVALID
 * naming the file (and, for each problem, a line and column inside it);
 * never any other exception.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interlog-fuzz-config-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, "interlog.yaml");
const env = { TOKEN: "t0ken", PASSWORD: "pw", EMPTY: "" };

type Outcome = { ok: true; config: Config } | { ok: false; message: string };

/** Loads `content` as the config file; any exception but CONFIG_INVALID naming the file fails the property. */
function load(content: string | Uint8Array): Outcome {
  fs.writeFileSync(file, content);
  let config: Config;
  try {
    config = load_config(file, env);
  } catch (err) {
    if (!(err instanceof InterlogError) || err.code !== "CONFIG_INVALID") throw new Error(`load_config threw something other than CONFIG_INVALID: ${String(err)}`, { cause: err });
    if (!err.message.includes(file)) throw new Error(`a CONFIG_INVALID message that does not name the file: ${err.message}`);
    const lines = (typeof content === "string" ? content : Buffer.from(content).toString("utf8")).split(/\r\n|\r|\n/).length;
    const problems = (err.details.problems ?? []) as { line: number; column: number; message: string }[];
    for (const p of problems) {
      if (!(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines + 1 && Number.isInteger(p.column) && p.column >= 1)) {
        throw new Error(`a problem placed outside the file (line ${p.line}, column ${p.column}, of ${lines} lines): ${p.message}`);
      }
    }
    return { ok: false, message: err.message };
  }
  check_config(config);
  return { ok: true, config };
}


/** What a loaded config promises (README "Configuration"; src/config/schema.ts). */
function check_config(c: Config): void {
  const safe = (n: number, what: string) => {
    if (!Number.isSafeInteger(n)) throw new Error(`${what} is ${n}, not a whole number a program can use`);
  };
  expect(path.isAbsolute(c.data_dir)).toBe(true);
  expect(c.name.length).toBeGreaterThan(0);
  safe(c.log.segment_size_bytes, "log.segment_size");
  safe(c.log.sync_interval_ms, "log.sync_interval");
  // Found by this fuzzer before the schema had upper limits: a timer cannot wait longer.
  expect(c.log.sync_interval_ms).toBeLessThanOrEqual(timer_max_ms);
  expect(c.log.segment_size_bytes % 4096).toBe(0);
  expect(c.log.segment_size_bytes).toBeGreaterThanOrEqual(64 * 1024);
  expect(c.log.sync_interval_ms).toBeGreaterThanOrEqual(1);
  expect(["always", "interval", "never"]).toContain(c.log.sync);
  if (c.mqtt !== null) {
    safe(c.mqtt.max_packet_bytes, "mqtt.max_packet");
    expect(c.mqtt.max_packet_bytes).toBeGreaterThanOrEqual(4096);
    expect(c.mqtt.max_packet_bytes).toBeLessThanOrEqual(268_435_455);
    expect(c.log.sync).not.toBe("never");
  }
  if (c.replication.pull !== "*") for (const id of c.replication.pull) expect(is_origin(id)).toBe(true);
  safe(c.admin.port, "admin.port");
  expect(c.admin.port).toBeLessThanOrEqual(65535);
  expect(Array.isArray(c.validators.append) && Array.isArray(c.validators.sync)).toBe(true);
  // trust.replicas: unset (trust on first use), or a non-empty list of replica ids and public keys (lowercase hex).
  if (c.trust.replicas !== null) {
    expect(c.trust.replicas.length).toBeGreaterThan(0);
    for (const entry of c.trust.replicas) expect(is_origin(entry) || /^[0-9a-f]{64}$/.test(entry)).toBe(true);
  }
}

/** A timer waits at most 2^31 - 1 ms; a longer one fires every millisecond instead. */
const timer_max_ms = 2 ** 31 - 1;

// ------------------------------------------------------------ YAML-ish text

const keys = [
  "name", "data_dir", "log", "segment_size", "sync", "sync_interval", "mqtt", "url", "prefix", "username", "password_env", "password", "max_packet", "preset",
  "ca_file", "cert_file", "key_file", "replication", "pull", "admin", "listen", "token_env", "token", "allowed_hosts", "validators", "append", "max-size", "max_bytes",
  "json", "cbor", "trust", "replicas", "<<", "__proto__", "constructor", "toString", "1", "? x", "\"quoted key\"", "'k'", "",
];
const scalars = [
  "./data", "/var/lib/interlog", "64MiB", "1MiB", "4KiB", "63KiB", "1.5MiB", "99999999999999999999GiB", "0", "-1", "1e400", "0x10", "0o17", ".inf", "-.inf", ".nan",
  "~", "null", "true", "false", "yes", "on", "always", "interval", "never", "10ms", "2s", "1000h", "0.5ms", "mqtt://127.0.0.1:1883", "mqtts://b.example:8883",
  "mqtt://u:p@h", "ws://", "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80", "[::]:99999", "localhost:0", "aws-iot", "mosquitto", "fleet/eu", "a//b", "*",
  "3f09c2a41b7e55d0", "0000000000000000", "3F09C2A41B7E55D0", "9f1c0b2e7d4a6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c", "TOKEN", "EMPTY", "UNSET_VAR", "1abc", "\"a\\x00b\"", "\"\\uD800\"", "'it''s'", "\"unterminated", "'", "\"", "|", ">-",
  "&a", "*a", "&a [1, 2]", "*undefined_alias", "!!str 5", "!!int x", "!!binary aGk=", "!!float 1", "!!map {}", "!!seq []", "!!set {a}", "!!omap [a: 1]",
  "!!timestamp 2001-12-14", "!custom v", "!<tag:x> v", "[", "]", "{", "}", "[a, b]", "{a: 1, a: 2}", "{ max_bytes: 4KiB }", "[json, cbor]", "[\"*\"]", "- x",
  "# comment", "@", "`", "%", ",", "?", ":", "::", "\t", "é", "😀", "a: b: c",
];

const line_arb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.constantFrom("", "", "  ", "    ", "      ", " ", "\t", "- ", "  - "), fc.constantFrom(...keys), fc.constantFrom(": ", ":", " : ", ":  "), fc.oneof(fc.constantFrom(...scalars), fc.constant("")))
      .map(([indent, key, sep, value]) => `${indent}${key}${sep}${value}`),
  },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom("", "  ", "    "), fc.constantFrom(...scalars)).map(([indent, v]) => `${indent}- ${v}`) },
  { weight: 1, arbitrary: fc.constantFrom("---", "...", "%YAML 1.2", "%YAML 1.1", "%TAG ! tag:x,2000:", "", "#", "   ", "? complex", ": value", "<<: *a") },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

const yamlish_arb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.array(line_arb, { maxLength: 25 }).map((lines) => lines.join("\n")) },
  // A valid config with a few lines spliced in.
  {
    weight: 3,
    arbitrary: fc.tuple(fc.array(line_arb, { maxLength: 4 }), fc.nat()).map(([extra, at]) => {
      const lines = ["name: truck", "data_dir: ./data", "log:", "  segment_size: 1MiB", "  sync: interval", "admin:", "  listen: 127.0.0.1:8080"];
      lines.splice(at % (lines.length + 1), 0, ...extra);
      return lines.join("\n");
    }),
  },
  // Aliases nested many levels deep (a "billion laughs" file).
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }).map((n) => `a0: &a0 [x, x, x, x]\n${Array.from({ length: n }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}, *a${i}, *a${i}, *a${i}]`).join("\n")}\ndata_dir: d\n`) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
);

// ------------------------------------------------------ values serialized to YAML

const near_valid_value_arb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...scalars) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 4096, 65536, 2 ** 53, 1e300)) },
);

/** Numbers as people write them with units: any digits, a fraction, spaces, a unit in any case. */
const with_unit_arb = (units: string[]): fc.Arbitrary<string | number> =>
  fc.oneof(
    fc
      .tuple(fc.oneof(fc.nat({ max: 5000 }).map(String), fc.stringMatching(/^[0-9]{1,25}$/)), fc.option(fc.stringMatching(/^\.[0-9]{1,4}$/)), fc.constantFrom("", " "), fc.constantFrom(...units, ...units.map((u) => u.toUpperCase()), ""))
      .map(([whole, frac, space, unit]) => `${whole}${frac ?? ""}${space}${unit}`),
    fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 53, 1e21)),
  );
const size_arb = with_unit_arb(["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]);
const duration_arb = with_unit_arb(["ms", "s", "m", "min", "h"]);

/** Mostly one of the values the key takes, now and then anything. */
const v = (...valid: unknown[]): fc.Arbitrary<unknown> => fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: near_valid_value_arb });
const section = <T extends Record<string, fc.Arbitrary<unknown>>>(fields: T): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 8, arbitrary: fc.record(fields, { requiredKeys: [] }) }, { weight: 1, arbitrary: near_valid_value_arb });

/** A config object with each known key now and then present, mostly with a value it takes. */
const config_object_arb: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.record(
      {
        name: v("truck-0042", "  x  ", "x".repeat(64)),
        log: section({
          segment_size: fc.oneof(v("64MiB", "1MiB", 65536, "1.5MiB"), size_arb),
          sync: v("always", "interval", "never"),
          sync_interval: fc.oneof(v("10ms", "2s", 1, "0.5s"), duration_arb),
        }),
        mqtt: section({
          url: v("mqtt://127.0.0.1:1883", "mqtts://broker.example.com:8883", "wss://b.example/mqtt"),
          prefix: v("fleet/eu", "interlog", "x".repeat(64)),
          username: v("truck"),
          password_env: v("PASSWORD", "UNSET_VAR"),
          max_packet: fc.oneof(v("128KiB", "4KiB", "256MiB"), size_arb),
          preset: v("mosquitto", "aws-iot"),
        }),
        replication: section({ pull: fc.oneof({ weight: 4, arbitrary: v(["*"], ["3f09c2a41b7e55d0", "00000000000000aa"]) }, { weight: 1, arbitrary: fc.array(near_valid_value_arb, { maxLength: 3 }) }) }),
        admin: section({ listen: v("127.0.0.1:8080", "[::1]:9090", "0.0.0.0:8080", "localhost:0"), token_env: v("TOKEN", "EMPTY"), allowed_hosts: fc.oneof({ weight: 4, arbitrary: v(["truck.local"], ["a.example.", "B.EXAMPLE"]) }, { weight: 1, arbitrary: fc.array(near_valid_value_arb, { maxLength: 3 }) }) }),
        trust: section({
          replicas: fc.oneof(
            { weight: 8, arbitrary: v(["3f09c2a41b7e55d0"], ["3f09c2a41b7e55d0", "9f1c0b2e7d4a6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c"]) },
            // Nothing, an id in capitals, one digit short.
            { weight: 1, arbitrary: fc.constantFrom([], ["3F09C2A41B7E55D0"], ["3f09c2a41b7e55d"]) },
            { weight: 1, arbitrary: fc.array(near_valid_value_arb, { maxLength: 3 }) },
          ),
        }),
        validators: section({
          append: fc.array(
            fc.oneof(
              { weight: 4, arbitrary: v("json", "cbor", "utf8", "max-size", { "max-size": { max_bytes: "4KiB" } }, { json: null }) },
              { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("max-size", "json", "x", "__proto__"), near_valid_value_arb, { maxKeys: 2 }) },
            ),
            { maxLength: 3 },
          ),
          sync: fc.array(v("cbor", "json"), { maxLength: 2 }),
        }),
      },
      { requiredKeys: [] },
    ),
    v("./data", "/var/lib/interlog"),
    // TLS files, with any url, and one key of any name.
    sometimes(fc.record({ ca_file: v("ca.pem"), cert_file: v("c.pem"), key_file: v("k.pem") }, { requiredKeys: [] }), 4),
    sometimes(fc.tuple(fc.constantFrom(...keys), near_valid_value_arb), 8),
  )
  .map(([config, data_dir, tls, extra]) => {
    const c: Record<string, unknown> = { data_dir, ...config };
    if (tls !== null && typeof c.mqtt === "object" && c.mqtt !== null && !Array.isArray(c.mqtt)) c.mqtt = { ...c.mqtt, ...tls };
    if (extra !== null) c[extra[0]] = extra[1];
    return c;
  });

describe("fuzz: the config loader", () => {
  test(
    "YAML-ish text loads, or fails with CONFIG_INVALID naming the file and places inside it",
    () => {
      let loaded = 0;
      fuzz(
        "config text",
        fc.property(yamlish_arb, (text) => {
          if (load(text).ok) loaded++;
        }),
        400,
      );
      if (process.env.FUZZ_VERBOSE) console.log(`config text: ${loaded} loaded`);
      if (!fuzz_replaying) expect(loaded).toBeGreaterThan(0);
    },
    fuzz_timeout_ms,
  );

  test(
    "any bytes (not UTF-8 too) fail with CONFIG_INVALID or load",
    () => {
      fuzz(
        "config bytes",
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 50 }).map((b) => new Uint8Array(Buffer.concat([Buffer.from("data_dir: d\nname: "), b])))), (bytes) => {
          load(bytes);
        }),
        200,
      );
    },
    fuzz_timeout_ms,
  );

  test(
    "any JSON-able value and any config-shaped object, written as YAML, load or fail with CONFIG_INVALID",
    () => {
      let loaded = 0;
      fuzz(
        "config values",
        fc.property(fc.oneof({ weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, { weight: 3, arbitrary: config_object_arb }), (value) => {
          const o = load(YAML.stringify(value));
          if (o.ok) loaded++;
        }),
        400,
      );
      if (process.env.FUZZ_VERBOSE) console.log(`config values: ${loaded} loaded`);
      if (!fuzz_replaying) expect(loaded).toBeGreaterThan(0);
    },
    fuzz_timeout_ms,
  );

  // Found by this fuzzer; fixed with upper limits in the schema.
  test("a sync_interval longer than a timer can wait (2^31 ms, about 24.9 days) is refused", () => {
    expect(load("data_dir: ./data\nlog:\n  sync: interval\n  sync_interval: 2147483648\n").ok).toBe(false);
  });

  test("a segment_size beyond 2^53 bytes is refused", () => {
    expect(load("data_dir: ./data\nlog:\n  segment_size: 1000000000000000000000B\n").ok).toBe(false);
  });
});
