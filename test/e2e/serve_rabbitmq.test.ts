import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { free_port } from "../support/mosquitto.ts";
import { RabbitMq } from "../support/rabbitmq.ts";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";
import { wait_for } from "../support/wait_for.ts";

/**
 * `serve` processes configured for RabbitMQ as a user would write it
 * (`preset: rabbitmq`, `url` listing a node that is down and one that is
 * up): the preset's MQTT 3.1.1, QoS 0 subscriptions and announcements reach
 * the transport, and the status names the node in use.
 */
const octets = { "content-type": "application/octet-stream" };
let node: RabbitMq;

beforeAll(async () => {
  node = await RabbitMq.start();
}, 180_000);

afterAll(async () => {
  await node?.stop();
});

interface StatusBody {
  vv: Record<string, number>;
  sync: { connected: boolean; broker: { url: string; mqtt: string; connects: number } | null };
}

describe("interlog serve with preset: rabbitmq", () => {
  test("a url list whose first node is down: the replicas use the live one over MQTT 3.1.1 and converge, also a replica started later", async () => {
    const dead = `mqtt://127.0.0.1:${await free_port()}`;
    const dir = temp_dir();
    const yaml = (name: string) =>
      `name: ${name}\ndata_dir: ./${name}\nlog:\n  sync: always\nmqtt:\n  url: [${dead}, ${node.url}]\n  preset: rabbitmq\n  prefix: e2e\nadmin:\n  listen: 127.0.0.1:0\n`;
    const a = await ServeProcess.start(write_config(dir, "a.yaml", yaml("truck-a")));
    const b = await ServeProcess.start(write_config(dir, "b.yaml", yaml("truck-b")));
    let c: ServeProcess | null = null;
    try {
      for (let i = 0; i < 30; i++) expect((await a.fetch("/api/events", { method: "POST", headers: octets, body: `from a ${i}` })).status).toBe(201);
      for (let i = 0; i < 20; i++) expect((await b.fetch("/api/events", { method: "POST", headers: octets, body: `from b ${i}` })).status).toBe(201);
      const status = async (p: ServeProcess) => (await (await p.fetch("/api/status")).json()) as StatusBody;
      await wait_for("a and b to hold each other's events", async () => {
        const [sa, sb] = [await status(a), await status(b)];
        return sa.vv[b.id] === 20 && sb.vv[a.id] === 30 ? true : null;
      });
      const sa = await status(a);
      expect(sa.sync.connected).toBe(true);
      expect(sa.sync.broker?.url).toBe(new URL(node.url).toString());
      expect(sa.sync.broker?.mqtt).toBe("3.1.1");
      // c comes after a's and b's retained vvs were published: RabbitMQ does not hand those to its wildcard subscription.
      c = await ServeProcess.start(write_config(dir, "c.yaml", yaml("truck-c")));
      const late = c;
      await wait_for("the late replica to learn and pull a's and b's events", async () => {
        const sc = await status(late);
        return sc.vv[a.id] === 30 && sc.vv[b.id] === 20 ? true : null;
      }, 10_000);
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
      if (c !== null) expect(await c.stop()).toBe(0);
    }
  });
});
