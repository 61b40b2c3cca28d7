import { describe, expect, test } from "bun:test";
import { load_config } from "../../src/config/load.ts";
import { config_error, config_files } from "../config/config_files.ts";

const { write: write_config } = config_files();

describe("admin.allowed_hosts in the config", () => {
  test("names are lowercased without a trailing dot; the listen host is added when it is a name", () => {
    const file = write_config(`
      data_dir: d
      admin:
        listen: localhost:8080
        allowed_hosts: [Truck-0042.Fleet.Example., depot-gw, depot-gw]
    `);
    expect(load_config(file, {}).admin.allowed_hosts).toEqual(["localhost", "truck-0042.fleet.example", "depot-gw"]);
    expect(load_config(write_config("data_dir: d\n"), {}).admin.allowed_hosts).toEqual([]);
    const v6 = write_config("data_dir: d\nadmin:\n  listen: '[::1]:8080'\n");
    expect(load_config(v6, {}).admin.allowed_hosts).toEqual([]);
  });

  test("a URL, a port or a wildcard is an error naming the line and what to write", () => {
    const file = write_config(`
      data_dir: d
      admin:
        allowed_hosts:
          - truck.example
          - https://truck.example
          - truck.example:8080
          - "*.example"
    `);
    const expected = (line: number, index: number, value: string) =>
      `${file}:${line}:7: admin.allowed_hosts[${index}]: expected a host name such as truck-0042.local (no scheme, port or path), got "${value}"`;
    expect(config_error(() => load_config(file, {}))).toBe(
      `3 problems in ${file}:\n${[expected(5, 1, "https://truck.example"), expected(6, 2, "truck.example:8080"), expected(7, 3, "*.example")].join("\n")}`,
    );
  });
});
