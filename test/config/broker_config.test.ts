import { describe, expect, test } from "bun:test";
import { load_config } from "../../src/config/load.ts";
import { config_error, config_files } from "./config_files.ts";

const { write: write_config } = config_files();

describe("mqtt: a cluster's nodes and the broker's kind", () => {
  test("url may list a cluster's nodes; the replica is given all of them, in order", () => {
    const file = write_config(`
      data_dir: d
      mqtt:
        url: [mqtt://node-a:1883, mqtt://node-b:1883]
        preset: rabbitmq
    `);
    const mqtt = load_config(file, {}).mqtt;
    expect(mqtt?.urls).toEqual(["mqtt://node-a:1883", "mqtt://node-b:1883"]);
    expect(mqtt?.url).toBe("mqtt://node-a:1883");
    // RabbitMQ's MQTT plugin speaks 3.1.1 only: the preset says so.
    expect(mqtt?.protocol_version).toBe(4);
  });

  test("one url stays a list of one; MQTT 5 unless the preset or mqtt.protocol says otherwise", () => {
    const one = load_config(write_config("data_dir: d\nmqtt:\n  url: mqtt://broker:1883\n"), {}).mqtt;
    expect(one?.urls).toEqual(["mqtt://broker:1883"]);
    expect(one?.protocol_version).toBe(5);
    const old = load_config(write_config('data_dir: d\nmqtt:\n  url: mqtt://broker:1883\n  protocol: "3.1.1"\n'), {}).mqtt;
    expect(old?.protocol_version).toBe(4);
    for (const preset of ["emqx", "hivemq", "mosquitto"]) {
      expect(load_config(write_config(`data_dir: d\nmqtt:\n  preset: ${preset}\n`), {}).mqtt?.protocol_version).toBe(5);
    }
  });

  test("a list mixing schemes, an empty list and a bad entry are refused with the key named", () => {
    const mixed = write_config("data_dir: d\nmqtt:\n  url: [mqtt://a:1883, mqtts://b:8883]\n");
    expect(config_error(() => load_config(mixed, {}))).toBe(`${mixed}:3:3: mqtt.url: expected URLs of one scheme (nodes of one cluster), got mqtt, mqtts`);
    const empty = write_config("data_dir: d\nmqtt:\n  url: []\n");
    expect(config_error(() => load_config(empty, {}))).toContain("mqtt.url: expected at least one broker URL");
    const bad = write_config("data_dir: d\nmqtt:\n  url: [mqtt://a:1883, http://b]\n");
    expect(config_error(() => load_config(bad, {}))).toContain("expected a broker URL like mqtt://127.0.0.1:1883");
  });

  test("a prefix with a dot is refused with the rabbitmq preset (RabbitMQ maps / to .)", () => {
    const dotted = write_config("data_dir: d\nmqtt:\n  preset: rabbitmq\n  prefix: fleet.eu\n");
    expect(config_error(() => load_config(dotted, {}))).toContain('mqtt.prefix: RabbitMQ maps MQTT\'s "/" to "."');
    expect(load_config(write_config("data_dir: d\nmqtt:\n  prefix: fleet.eu\n"), {}).mqtt?.prefix).toBe("fleet.eu");
  });

  test("MQTT 5 with the rabbitmq preset, or an unknown protocol, is refused", () => {
    const v5 = write_config('data_dir: d\nmqtt:\n  preset: rabbitmq\n  protocol: "5"\n');
    expect(config_error(() => load_config(v5, {}))).toContain("mqtt.protocol: RabbitMQ's MQTT plugin speaks only MQTT 3.1.1");
    const v3 = write_config('data_dir: d\nmqtt:\n  protocol: "3.1"\n');
    expect(config_error(() => load_config(v3, {}))).toContain('mqtt.protocol: expected "5" or "3.1.1", got');
  });
});
