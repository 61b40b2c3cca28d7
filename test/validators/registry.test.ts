import { describe, expect, test } from "bun:test";
import { encode } from "cbor2";
import { InterlogError } from "../../src/lib/errors.ts";
import { builtin_validators, build_validator, validator_registry, ValidatorRegistry } from "../../src/validators/registry.ts";
import { define_validator, duration, type ValidationContext, z } from "../../src/validators/validator.ts";

const text = (s: string) => new TextEncoder().encode(s);
const ctx: ValidationContext = { kind: "append", origin: "3f09c2a41b7e55d0", seq: 1, time_ms: 1_700_000_000_000 };

function config_invalid(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(InterlogError);
    expect((err as InterlogError).code).toBe("CONFIG_INVALID");
    return (err as Error).message;
  }
  throw new Error("expected CONFIG_INVALID");
}

describe("the validator registry", () => {
  test("knows the compiled-in validators by name", () => {
    expect(validator_registry.names()).toEqual(["max-size", "utf8", "json", "cbor", "gps-fix"]);
  });

  test("an unknown name is CONFIG_INVALID listing the known names", () => {
    expect(config_invalid(() => build_validator([{ name: "jsno", options: {} }]))).toBe(
      'unknown validator "jsno"; known validators: max-size, utf8, json, cbor, gps-fix',
    );
  });

  test("bad options are CONFIG_INVALID naming the validator and the option", () => {
    expect(config_invalid(() => validator_registry.create({ name: "max-size", options: { max_bytes: "big" } }))).toContain(
      'bad options for validator "max-size": max-size.max_bytes: "big" is not a size',
    );
    expect(config_invalid(() => validator_registry.create({ name: "max-size", options: { max_bytes: 0 } }))).toContain(
      "max-size.max_bytes: max_bytes must be between 1 byte and 16.0 MiB",
    );
    expect(config_invalid(() => validator_registry.create({ name: "json", options: { strict: true } }))).toContain('bad options for validator "json"');
  });

  test("a composed validator runs the configured ones in order and returns the first failure, prefixed by its name", () => {
    const check = build_validator([
      { name: "max-size", options: { max_bytes: 32 } },
      { name: "json", options: {} },
    ]);
    expect(check.names).toEqual(["max-size", "json"]);
    expect(check(text('{"door":"open"}'), ctx)).toBeNull();
    expect(check(text("not json"), ctx)).toStartWith("json: payload is not JSON: ");
    expect(check(text(`"${"x".repeat(40)}"`), ctx)).toBe("max-size: payload is 42 bytes, larger than the limit of 32 bytes (32 B)");
    expect(build_validator([])(text("anything"), ctx)).toBeNull();
  });

  test("the same list accepts JSON and CBOR fixes for a fleet of containers", () => {
    const check = build_validator([{ name: "max-size", options: { max_bytes: "1KiB" } }, { name: "gps-fix", options: {} }]);
    expect(check(encode({ lat: 1.5, lon: 103.8, time_ms: 10 }), { ...ctx, kind: "sync" })).toBeNull();
    expect(check(encode({ lat: 1.5, lon: 203.8, time_ms: 11 }), { ...ctx, seq: 2, kind: "sync" })).toBe("gps-fix: lon must be a number from -180 to 180, got 203.8");
  });

  test("a validator that throws rejects the event instead of crashing the replica", () => {
    const fragile = define_validator({
      name: "fragile",
      summary: "throws on everything",
      options: z.strictObject({}),
      create: () => () => {
        throw new Error("index out of range");
      },
    });
    const check = new ValidatorRegistry([fragile]).compose([{ name: "fragile", options: {} }]);
    expect(check(text("x"), ctx)).toBe("fragile: validator failed: index out of range");
  });

  test("a user-written validator registers with options that take units", () => {
    // What a user writes in src/validators/<name>.ts, then adds to builtin_validators.
    const door_open = define_validator({
      name: "door-open-time",
      summary: "a reefer door may stay open at most max_open",
      options: z.strictObject({ max_open: duration("longest a door may stay open").prefault("10min") }),
      create: ({ max_open }) => (payload, ctx) => {
        const { open_ms } = JSON.parse(new TextDecoder().decode(payload)) as { open_ms: number };
        return open_ms <= max_open ? null : `door of ${ctx.origin} open for ${open_ms} ms, longer than ${max_open} ms`;
      },
    });
    const registry = new ValidatorRegistry([...builtin_validators, door_open]);
    expect(registry.names()).toContain("door-open-time");
    const check = registry.compose([{ name: "door-open-time", options: { max_open: "2s" } }]);
    expect(check(text('{"open_ms": 1500}'), ctx)).toBeNull();
    expect(check(text('{"open_ms": 2500}'), ctx)).toBe(`door-open-time: door of ${ctx.origin} open for 2500 ms, longer than 2000 ms`);
    expect(registry.compose([{ name: "door-open-time", options: {} }])(text('{"open_ms": 599999}'), ctx)).toBeNull();
  });

  test("names must be unique and written in lowercase words", () => {
    const named = (name: string) => define_validator({ name, summary: "", options: z.strictObject({}), create: () => () => null });
    expect(() => new ValidatorRegistry([named("a"), named("a")])).toThrow('validator "a" is registered twice');
    expect(() => new ValidatorRegistry([named("Max_Size")])).toThrow('validator name "Max_Size" must be lowercase words joined by "-"');
  });
});
