import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { Random, seed_from_env } from "../../src/lib/random.ts";
import { utf8_error_offset } from "../../src/validators/utf8.ts";
import type { ValidationContext } from "../../src/validators/validator.ts";
import { validator_registry } from "../../src/validators/registry.ts";

const text = (s: string) => new TextEncoder().encode(s);
const ctx: ValidationContext = { kind: "append", origin: "3f09c2a41b7e55d0", seq: 1, time_ms: 1_700_000_000_000 };
const make = (name: string, options: Record<string, unknown> = {}) => validator_registry.create({ name, options });

describe("max-size", () => {
  test("accepts up to max_bytes and rejects one byte more, saying both sizes", () => {
    const check = make("max-size", { max_bytes: "1KiB" });
    expect(check(new Uint8Array(1024), ctx)).toBeNull();
    expect(check(new Uint8Array(0), ctx)).toBeNull();
    expect(check(new Uint8Array(1025), ctx)).toBe("payload is 1025 bytes, larger than the limit of 1024 bytes (1.0 KiB)");
  });

  test("defaults to 64KiB", () => {
    const check = make("max-size");
    expect(check(new Uint8Array(64 * 1024), ctx)).toBeNull();
    expect(check(new Uint8Array(64 * 1024 + 1), ctx)).toContain("larger than the limit of 65536 bytes");
  });
});

describe("utf8", () => {
  const check = make("utf8");

  test("accepts text in any script, and the empty payload", () => {
    for (const s of ["", "plain ascii", "Grüße aus Köln", "冷链集装箱 温度 -18°C", "🚚📦 ok", "\u{10FFFF}"]) expect(check(text(s), ctx)).toBeNull();
  });

  test("rejects broken sequences, naming the first bad byte and its offset", () => {
    expect(check(new Uint8Array([0x61, 0x62, 0xff]), ctx)).toBe("payload is not valid UTF-8 text: bad byte 0xff at offset 2");
    expect(check(new Uint8Array([0xc0, 0xaf]), ctx)).toContain("bad byte 0xc0 at offset 0"); // overlong "/"
    expect(check(new Uint8Array([0xed, 0xa0, 0x80]), ctx)).toContain("at offset 0"); // a UTF-16 surrogate
    expect(check(new Uint8Array([0xf4, 0x90, 0x80, 0x80]), ctx)).toContain("at offset 0"); // above U+10FFFF
    expect(check(new Uint8Array([0x41, 0xe2, 0x82]), ctx)).toContain("bad byte 0xe2 at offset 1"); // cut short
  });

  test("agrees with the platform's strict UTF-8 decoder on random bytes", () => {
    const seed = seed_from_env();
    const rng = new Random(seed);
    const strict = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < 20_000; i++) {
      // Mostly valid text with a few random bytes spliced in, so both outcomes are common.
      const bytes = text(String.fromCodePoint(...Array.from({ length: rng.int(0, 8) }, () => rng.pick([0x41, 0xe9, 0x4e2d, 0x1f69a, 0x7ff, 0xffff]))));
      if (rng.chance(0.5)) bytes[rng.int(0, Math.max(0, bytes.length - 1))] = rng.u32() & 255;
      let valid = true;
      try {
        strict.decode(bytes);
      } catch {
        valid = false;
      }
      if ((utf8_error_offset(bytes) < 0) !== valid) throw new Error(`SEED=${seed}: disagreement on bytes ${Buffer.from(bytes).toString("hex")}`);
    }
  });
});

describe("json", () => {
  const check = make("json");

  test("accepts any one JSON value", () => {
    for (const s of ['{"temp_c": -18.5, "door": "closed"}', "[1,2,3]", '"text"', "42", "null", ' \n{"a":{}}\n ']) expect(check(text(s), ctx)).toBeNull();
  });

  test("rejects what is not JSON, saying so", () => {
    expect(check(text("{temp: 3}"), ctx)).toStartWith("payload is not JSON: ");
    expect(check(text('{"a": 1} trailing'), ctx)).toStartWith("payload is not JSON: ");
    expect(check(new Uint8Array(0), ctx)).toBe("payload is empty, expected a JSON value");
    expect(check(new Uint8Array([0x22, 0xff, 0x22]), ctx)).toBe("payload is not JSON: payload is not valid UTF-8 text: bad byte 0xff at offset 1");
  });
});

describe("cbor", () => {
  const check = make("cbor");

  test("accepts one well-formed CBOR item, tags and all", () => {
    const items: unknown[] = [{ temp_c: -18.5, door: "closed" }, [1, 2, 3], "text", 42, null, new Uint8Array([1, 2, 3]), new Date(1_700_000_000_000), 2n ** 70n];
    for (const item of items) expect(check(encode(item), ctx)).toBeNull();
  });

  test("rejects truncated items, trailing bytes, reserved encodings and the empty payload", () => {
    const map = encode({ temp_c: -18.5 });
    expect(check(map.subarray(0, map.length - 2), ctx)).toStartWith("payload is not well-formed CBOR: ");
    expect(check(new Uint8Array([...map, 0x01]), ctx)).toBe("payload is not well-formed CBOR: Extra data in input");
    expect(check(new Uint8Array([0x1c]), ctx)).toStartWith("payload is not well-formed CBOR: "); // additional info 28 is reserved
    expect(check(new Uint8Array(0), ctx)).toBe("payload is empty, expected one CBOR item");
    expect(check(text('{"json": "is not cbor"}'), ctx)).toStartWith("payload is not well-formed CBOR: ");
  });

  test("refuses nesting deep enough to be an attack", () => {
    const deep = new Uint8Array(1000).fill(0x81); // 1000 nested one-element arrays...
    expect(check(new Uint8Array([...deep, 0x00]), ctx)).toStartWith("payload is not well-formed CBOR: ");
  });
});

describe("gps-fix (the example domain validator)", () => {
  const truck = "3f09c2a41b7e55d0";
  const container = "00000000000000aa";
  const at = (origin: string, seq: number, kind: "append" | "sync" = "sync"): ValidationContext => ({ kind, origin, seq, time_ms: 1_700_000_000_000 });
  const fix_json = (lat: number, lon: number, time_ms: number) => text(JSON.stringify({ lat, lon, time_ms, sats: 9 }));
  const fix_cbor = (lat: number, lon: number, time_ms: number) => encode({ lat, lon, time_ms });

  test("accepts fixes as JSON or CBOR with lat/lon in range and device time moving forward", () => {
    const check = make("gps-fix");
    expect(check(fix_json(53.5461, 9.9661, 1_700_000_000_000), at(truck, 1))).toBeNull();
    expect(check(fix_cbor(-90, 180, 1_700_000_060_000), at(truck, 2))).toBeNull();
    expect(check(fix_json(90, -180, 1_700_000_060_000), at(truck, 3))).toBeNull(); // the same time again is fine
  });

  test("rejects out-of-range coordinates and missing fields with what was wrong", () => {
    const check = make("gps-fix");
    expect(check(fix_json(91, 0, 1), at(truck, 1))).toBe("lat must be a number from -90 to 90, got 91");
    expect(check(fix_cbor(0, -180.5, 1), at(truck, 1))).toBe("lon must be a number from -180 to 180, got -180.5");
    expect(check(text('{"lat": "53.5", "lon": 9.9, "time_ms": 1}'), at(truck, 1))).toBe('lat must be a number from -90 to 90, got "53.5"');
    expect(check(text('{"lat": 53.5, "lon": 9.9}'), at(truck, 1))).toBe("time_ms must be the fix's device time in ms since 1970, got undefined");
    expect(check(text("[53.5, 9.9]"), at(truck, 1))).toBe("a GPS fix must be a map with lat, lon and time_ms");
    expect(check(text("{lat: 53.5"), at(truck, 1))).toStartWith("a GPS fix must be a JSON or CBOR map: payload is not JSON");
  });

  test("rejects a fix whose device time goes back, per origin", () => {
    const check = make("gps-fix");
    expect(check(fix_json(10, 10, 5_000), at(truck, 1))).toBeNull();
    expect(check(fix_json(10, 10, 1_000), at(container, 1))).toBeNull(); // another device has its own clock
    expect(check(fix_json(10, 10, 4_999), at(truck, 2))).toBe(
      `time_ms 4999 goes back 1 ms from this device's previous fix (5000, event ${truck}:1); check the device clock`,
    );
    expect(check(fix_json(10, 10, 1_500), at(container, 2))).toBeNull();
  });

  test("a seq reused after a refused append is not compared with the event that was never written", () => {
    const check = make("gps-fix");
    expect(check(fix_json(10, 10, 9_000), at(truck, 7, "append"))).toBeNull(); // ...but the append failed elsewhere
    expect(check(fix_json(10, 10, 8_000), at(truck, 7, "append"))).toBeNull(); // the retry gets seq 7 again
    expect(check(fix_json(10, 10, 7_000), at(truck, 8, "append"))).toContain("goes back 1000 ms");
  });

  test("each configured use keeps its own memory", () => {
    const on_append = make("gps-fix");
    const on_sync = make("gps-fix");
    expect(on_append(fix_json(0, 0, 5_000), at(truck, 1))).toBeNull();
    expect(on_sync(fix_json(0, 0, 1_000), at(truck, 2))).toBeNull();
  });
});
