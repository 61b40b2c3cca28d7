import path from "node:path";
import { describe, expect, test } from "bun:test";
import { redact_config } from "../../src/config/config.ts";
import { load_config } from "../../src/config/load.ts";
import { config_error, config_files } from "./config_files.ts";

const repo = path.join(import.meta.dir, "..", "..");
const { write: write_config } = config_files();

describe("a valid config", () => {
  test("only data_dir given: every other key takes its default", () => {
    const file = write_config("data_dir: ./somewhere\n");
    const config = load_config(file, {});
    expect(config.data_dir).toBe(path.resolve("somewhere"));
    expect(config.name.length).toBeGreaterThan(0);
    expect(config.log).toEqual({ segment_size_bytes: 64 * 1024 * 1024, sync: "always", sync_interval_ms: 10 });
    expect(config.mqtt).toBeNull();
    expect(config.replication).toEqual({ pull: "*" });
    expect(config.admin).toEqual({ listen: "127.0.0.1:8080", host: "127.0.0.1", port: 8080, token: null, allowed_hosts: [], app: false, app_dir: null });
    expect(config.validators).toEqual({ append: [], sync: [] });
    expect(config.trust).toEqual({ replicas: null });
  });

  test("trust.replicas lists the replicas (ids or public keys) whose events are accepted from peers", () => {
    const key = "7f".repeat(32);
    const config = load_config(write_config(`data_dir: d\ntrust:\n  replicas: ["3f09c2a41b7e55d0", "${key}"]\n`), {});
    expect(config.trust).toEqual({ replicas: ["3f09c2a41b7e55d0", key] });
    expect(load_config(write_config("data_dir: d\ntrust:\n"), {}).trust).toEqual({ replicas: null });
  });

  test("sizes and durations take units; secrets come from the named environment variables", () => {
    const file = write_config(`
      name: truck-0042
      data_dir: /var/lib/interlog
      log:
        segment_size: 1MiB
        sync: interval
        sync_interval: 2s
      mqtt:
        url: mqtts://broker.example.com:8883
        prefix: fleet/eu
        username: truck-0042
        password_env: TRUCK_MQTT_PASSWORD
        max_packet: 64KiB
        preset: aws-iot
        ca_file: ca.pem
        cert_file: truck.pem
        key_file: truck.key
      replication:
        pull: ["3f09c2a41b7e55d0", "00000000000000aa"]
      admin:
        listen: "[::]:9090"
        token_env: TRUCK_ADMIN_TOKEN
      validators:
        append:
          - max-size: { max_bytes: 4KiB }
          - json
        sync: [cbor]
    `);
    const config = load_config(file, { TRUCK_MQTT_PASSWORD: "s3cret", TRUCK_ADMIN_TOKEN: "t0ken" });
    expect(config.name).toBe("truck-0042");
    expect(config.log).toEqual({ segment_size_bytes: 1024 * 1024, sync: "interval", sync_interval_ms: 2000 });
    expect(config.mqtt).toEqual({
      url: "mqtts://broker.example.com:8883",
      urls: ["mqtts://broker.example.com:8883"],
      protocol_version: 5,
      tls: true,
      prefix: "fleet/eu",
      username: "truck-0042",
      password: "s3cret",
      max_packet_bytes: 64 * 1024,
      preset: "aws-iot",
      ca_file: path.resolve("ca.pem"),
      cert_file: path.resolve("truck.pem"),
      key_file: path.resolve("truck.key"),
    });
    expect(config.replication.pull).toEqual(["3f09c2a41b7e55d0", "00000000000000aa"]);
    expect(config.admin).toEqual({ listen: "[::]:9090", host: "::", port: 9090, token: "t0ken", allowed_hosts: [], app: false, app_dir: null });
    expect(config.validators.append).toEqual([
      { name: "max-size", options: { max_bytes: "4KiB" } },
      { name: "json", options: {} },
    ]);
    expect(config.validators.sync).toEqual([{ name: "cbor", options: {} }]);
    const shown = JSON.stringify(redact_config(config));
    expect(shown).not.toContain("s3cret");
    expect(shown).not.toContain("t0ken");
  });

  test("an empty section means its defaults, and an empty mqtt section means offline", () => {
    const config = load_config(write_config("data_dir: d\nlog:\nmqtt:\nadmin:\n"), {});
    expect(config.log.sync).toBe("always");
    expect(config.mqtt).toBeNull();
    expect(config.admin.port).toBe(8080);
  });

  test("config/default.yaml: data in ./data, admin on 127.0.0.1:8080, no broker", () => {
    const config = load_config(path.join(repo, "config", "default.yaml"), {});
    expect(config.data_dir).toBe(path.resolve("data"));
    expect(config.admin).toMatchObject({ host: "127.0.0.1", port: 8080, token: null });
    expect(config.mqtt).toBeNull();
  });

  test("config/example-fleet.yaml: a truck syncing through a TLS broker, secrets from the environment", () => {
    const env = { INTERLOG_MQTT_PASSWORD: "pw", INTERLOG_ADMIN_TOKEN: "tok" };
    const config = load_config(path.join(repo, "config", "example-fleet.yaml"), env);
    expect(config.mqtt).toMatchObject({ tls: true, password: "pw", ca_file: "/etc/interlog/fleet-ca.pem" });
    expect(config.admin.token).toBe("tok");
    expect(config.validators.append.map((v) => v.name)).toEqual(["max-size", "gps-fix"]);
  });
});

describe("config errors name the file, line and key path and say what was expected", () => {
  test("bad YAML syntax", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        sync: [always
        segment_size: 1MiB
    `);
    const message = config_error(() => load_config(file, {}));
    expect(message).toContain(`${file}:4:3: log.sync[0]: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]`);
  });

  test("a key written twice", () => {
    const file = write_config("data_dir: a\nlog: {}\nlog: {}\n");
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:3:1: log: YAML syntax: Map keys must be unique`);
  });

  test("wrong type", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        sync: always
      admin:
        listen: 8080
    `);
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:5:3: admin.listen: expected text, got 8080`);
  });

  test("a size or duration that is neither a whole number nor text with a unit", () => {
    const file = write_config("data_dir: d\nlog:\n  segment_size: true\n  sync_interval: 1.5\n");
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `2 problems in ${file}:`,
        `${file}:3:3: log.segment_size: expected a size such as 64MiB or 128KiB, or a whole number of bytes; got true`,
        `${file}:4:3: log.sync_interval: expected a duration such as 500ms or 10s, or a whole number of milliseconds; got 1.5`,
      ].join("\n"),
    );
  });

  test("a section that is not a mapping", () => {
    const file = write_config("data_dir: ./data\nmqtt: mqtt://broker:1883\n");
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:2:1: mqtt: expected a mapping (key: value lines), got "mqtt://broker:1883"`);
  });

  test("unknown key, with the keys allowed there", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        segment_size: 64MiB
        fsync: always
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:4:3: log.fsync: unknown key "fsync"; expected one of: segment_size, sync, sync_interval`,
    );
  });

  test("a secret written into the file is an unknown key that says where it goes", () => {
    const file = write_config(`
      data_dir: ./data
      mqtt:
        url: mqtt://127.0.0.1:1883
        password: hunter2
    `);
    const message = config_error(() => load_config(file, {}));
    expect(message).toBe(`${file}:4:3: mqtt.password: unknown key "password"; put the password in an environment variable and name it in password_env`);
    expect(message).not.toContain("hunter2");
  });

  test("bad unit", () => {
    const file = write_config(`
      data_dir: ./data
      mqtt:
        max_packet: 128 KB/s
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:3:3: mqtt.max_packet: "128 KB/s" is not a size; write a number with a unit, e.g. 64MiB (units: b, kb, mb, gb, kib, mib, gib)`,
    );
  });

  test("a duration where a size belongs, and a size out of range", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        segment_size: 10ms
        sync_interval: 0
    `);
    const message = config_error(() => load_config(file, {}));
    expect(message).toContain(`${file}:3:3: log.segment_size: "10ms" is not a size`);
    expect(message).toContain(`${file}:4:3: log.sync_interval: expected at least 1ms`);
  });

  test("segment_size must be a multiple of 4KiB and at least 1MiB", () => {
    const file = write_config("data_dir: d\nlog: { segment_size: 100000 }\n");
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:2:8: log.segment_size: expected a multiple of 4KiB of at least 1MiB (a segment holds whole signed ranges of peers' events), e.g. 64MiB`,
    );
  });

  test("missing secret environment variable", () => {
    const file = write_config(`
      data_dir: ./data
      mqtt:
        url: mqtts://broker.example.com:8883
        password_env: INTERLOG_MQTT_PASSWORD
    `);
    expect(config_error(() => load_config(file, { INTERLOG_MQTT_PASSWORD: "" }))).toBe(
      `${file}:4:3: mqtt.password_env: the environment variable INTERLOG_MQTT_PASSWORD is not set (or empty); set it to the secret, or remove mqtt.password_env`,
    );
    expect(load_config(file, { INTERLOG_MQTT_PASSWORD: "pw" }).mqtt?.password).toBe("pw");
  });

  test("bad enum", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        sync: sometimes
      mqtt:
        preset: vernemq
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `2 problems in ${file}:`,
        `${file}:3:3: log.sync: expected one of always, interval, never; got "sometimes"`,
        `${file}:5:3: mqtt.preset: expected one of mosquitto, aws-iot, rabbitmq, emqx, hivemq; got "vernemq"`,
      ].join("\n"),
    );
  });

  test("sync: never with a broker is refused: peers would hold events a power cut can take back", () => {
    const file = write_config(`
      data_dir: ./data
      log:
        sync: never
      mqtt:
        url: mqtt://127.0.0.1:1883
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:3:3: log.sync: never cannot be used with mqtt: peers would be sent events a power cut can take back; use interval (fsync every sync_interval) or always`,
    );
    // Offline, never stays allowed.
    expect(load_config(write_config("data_dir: ./data\nlog:\n  sync: never\n"), {}).log.sync).toBe("never");
  });

  test("a key that is a mapping or list is a config error at its line, not a warning on stderr", () => {
    const file = write_config("data_dir: ./data\nlog:\n  ? [a, b]\n  : 1\n");
    const message = config_error(() => load_config(file, {}));
    expect(message.startsWith(`${file}:3:5: `)).toBe(true);
    expect(message).toContain("a key must be plain text, not a mapping or list");
  });

  test("sizes and durations have upper limits: a sync interval a timer can wait, a segment a file can be", () => {
    expect(config_error(() => load_config(write_config("data_dir: ./data\nlog:\n  sync: interval\n  sync_interval: 2h\n"), {}))).toContain(
      "log.sync_interval: expected at most 1h",
    );
    expect(config_error(() => load_config(write_config("data_dir: ./data\nlog:\n  segment_size: 8GiB\n"), {}))).toContain("log.segment_size: expected at most 4GiB");
  });

  test("missing data_dir, and an empty file", () => {
    const expected = "data_dir: required but missing; expected the directory holding the log, e.g. data_dir: ./data (relative to the working directory)";
    const file = write_config("name: truck\n");
    expect(config_error(() => load_config(file, {}))).toBe(`${file}:1:1: ${expected}`);
    const empty = write_config("");
    expect(config_error(() => load_config(empty, {}))).toBe(`${empty}:1:1: ${expected}`);
  });

  test("a file that is not there", () => {
    const file = write_config("data_dir: d\n").replace(/\.yaml$/, "-missing.yaml");
    expect(config_error(() => load_config(file, {}))).toStartWith(`${file}: cannot read the config file: ENOENT`);
  });

  test("the admin API beyond loopback needs a token", () => {
    const file = write_config("data_dir: d\nadmin:\n  listen: 0.0.0.0:8080\n");
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:3:3: admin.listen: listening on 0.0.0.0 opens the admin API beyond this machine; set admin.token_env to the name of an environment variable holding a token`,
    );
    const with_token = write_config("data_dir: d\nadmin:\n  listen: 0.0.0.0:8080\n  token_env: TOKEN\n");
    expect(load_config(with_token, { TOKEN: "t" }).admin).toMatchObject({ host: "0.0.0.0", token: "t" });
  });

  test("broker settings that do not fit together", () => {
    const file = write_config(`
      data_dir: ./data
      mqtt:
        url: mqtt://broker.example.com
        preset: aws-iot
        max_packet: 256KiB
        ca_file: ca.pem
        cert_file: truck.pem
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `5 problems in ${file}:`,
        `${file}:3:3: mqtt.url: AWS IoT Core accepts only TLS connections; use an mqtts:// url`,
        `${file}:5:3: mqtt.max_packet: AWS IoT Core accepts packets of at most 128KiB; got 262144 bytes`,
        `${file}:6:3: mqtt.ca_file: ca_file is only used with TLS; use an mqtts:// (or wss://) url, or remove ca_file`,
        `${file}:7:3: mqtt.cert_file: cert_file is only used with TLS; use an mqtts:// (or wss://) url, or remove cert_file`,
        `${file}:7:3: mqtt.cert_file: cert_file needs key_file too (a client certificate and its key go together)`,
      ].join("\n"),
    );
  });

  test("a broker URL that is not one, or carries a password", () => {
    const file = write_config("data_dir: d\nmqtt:\n  url: http://broker\n");
    expect(config_error(() => load_config(file, {}))).toBe(
      `${file}:3:3: mqtt.url: expected a broker URL like mqtt://127.0.0.1:1883 or mqtts://broker.example.com:8883, got "http://broker"`,
    );
    const with_password = write_config("data_dir: d\nmqtt:\n  url: mqtt://truck:hunter2@broker\n");
    const message = config_error(() => load_config(with_password, {}));
    expect(message).toContain("mqtt.url: put the user name in mqtt.username and the password in an environment variable named by mqtt.password_env");
    expect(message).not.toContain("hunter2");
  });

  test("replication.pull takes \"*\" alone or replica ids", () => {
    const file = write_config(`data_dir: d\nreplication:\n  pull:\n    - "*"\n    - 3F09C2A41B7E55D0\n`);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `2 problems in ${file}:`,
        `${file}:4:7: replication.pull[0]: "*" (every replica) must be the only entry`,
        `${file}:5:7: replication.pull[1]: expected "*" or a replica id (16 lowercase hex digits, as interlog status shows), got "3F09C2A41B7E55D0"`,
      ].join("\n"),
    );
  });

  test("trust.replicas takes replica ids or public keys, at least one", () => {
    const file = write_config(`data_dir: d\ntrust:\n  replicas:\n    - 3F09C2A41B7E55D0\n    - abc\n`);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `2 problems in ${file}:`,
        `${file}:4:7: trust.replicas[0]: expected a replica id (16 lowercase hex digits) or public key (64), as interlog status shows; got "3F09C2A41B7E55D0"`,
        `${file}:5:7: trust.replicas[1]: expected a replica id (16 lowercase hex digits) or public key (64), as interlog status shows; got "abc"`,
      ].join("\n"),
    );
    const empty = write_config("data_dir: d\ntrust:\n  replicas: []\n");
    expect(config_error(() => load_config(empty, {}))).toBe(`${empty}:3:3: trust.replicas: must list at least 1 item`);
  });

  test("validators: unknown name lists the known ones; bad options point at the option", () => {
    const file = write_config(`
      data_dir: ./data
      validators:
        append:
          - jsn
          - max-size: { max_bytes: lots }
        sync:
          - max-size: { max_byte: 1KiB }
          - [json]
    `);
    expect(config_error(() => load_config(file, {}))).toBe(
      [
        `4 problems in ${file}:`,
        `${file}:4:7: validators.append[0]: unknown validator "jsn"; known validators: max-size, utf8, json, cbor, gps-fix`,
        `${file}:5:19: validators.append[1].max-size.max_bytes: "lots" is not a size; write a number with a unit, e.g. 64MiB (units: b, kb, mb, gb, kib, mib, gib)`,
        `${file}:7:19: validators.sync[0].max-size.max_byte: unknown key "max_byte"; expected one of: max_bytes`,
        `${file}:8:7: validators.sync[1]: expected a validator name such as max-size, or NAME: {options} such as max-size: {max_bytes: 64KiB}; got a list`,
      ].join("\n"),
    );
  });
});
