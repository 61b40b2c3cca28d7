import type { Random } from "../../src/lib/random.ts";
import type { Outbound } from "../../src/sync/replicator.ts";
import { SubscriptionTrie, topic_matches } from "./topic_match.ts";

/** How the simulated network mistreats each delivery. */
export interface NetworkFaults {
  drop: number;
  duplicate: number;
  delay_min_ms: number;
  delay_max_ms: number;
  /** Chance of a long delay (reordering behind later messages). */
  slow: number;
  slow_max_ms: number;
}

export const no_faults: NetworkFaults = { drop: 0, duplicate: 0, delay_min_ms: 1, delay_max_ms: 5, slow: 0, slow_max_ms: 0 };

export interface Delivery {
  client: string;
  /** The connection the delivery was sent on; a reconnect makes it stale. */
  epoch: number;
  topic: string;
  payload: Uint8Array;
}

interface Client {
  filters: string[];
  epoch: number;
  connected: boolean;
  will: Outbound | null;
}

/**
 * A simulated MQTT broker (QoS 1, clean sessions, no-local subscriptions):
 * keeps retained messages and hands them to new subscribers, publishes a
 * client's will when its link dies, and schedules every delivery through
 * `schedule` with the configured faults. Deterministic for a given rng.
 */
export class SimBroker {
  faults: NetworkFaults = no_faults;
  readonly retained = new Map<string, Uint8Array>();
  private readonly clients = new Map<string, Client>();
  private readonly subscriptions = new SubscriptionTrie<string>();
  private epochs = 0;
  published = 0;
  delivered_bytes = 0;

  constructor(
    private readonly rng: Random,
    private readonly schedule: (delay_ms: number, delivery: Delivery) => void,
  ) {}

  connect(client: string, filters: string[], will: Outbound | null): number {
    const epoch = ++this.epochs;
    const old = this.clients.get(client);
    if (old !== undefined) for (const f of old.filters) this.subscriptions.remove(f, client);
    this.clients.set(client, { filters, epoch, connected: true, will });
    for (const f of filters) this.subscriptions.add(f, client);
    for (const [topic, payload] of this.retained) {
      if (filters.some((f) => topic_matches(f, topic))) this.deliver(client, epoch, topic, payload);
    }
    return epoch;
  }

  is_connected(client: string, epoch: number): boolean {
    const c = this.clients.get(client);
    return c !== undefined && c.connected && c.epoch === epoch;
  }

  /** The link of `client` died. Returns the epoch to pass to `publish_will` once the broker notices. */
  disconnect(client: string): number | null {
    const c = this.clients.get(client);
    if (c === undefined || !c.connected) return null;
    c.connected = false;
    return c.epoch;
  }

  /** Publishes the will of a lost connection unless the client has reconnected since. */
  publish_will(client: string, epoch: number): void {
    const c = this.clients.get(client);
    if (c === undefined || c.connected || c.epoch !== epoch || c.will === null) return;
    this.route(client, c.will);
  }

  publish(client: string, epoch: number, message: Outbound): void {
    if (!this.is_connected(client, epoch)) return; // published into a dead link: lost
    this.route(client, message);
  }

  private route(sender: string, message: Outbound): void {
    this.published++;
    if (message.retain) {
      if (message.payload.length === 0) this.retained.delete(message.topic);
      else this.retained.set(message.topic, message.payload);
    }
    for (const id of this.subscriptions.match(message.topic)) {
      const c = this.clients.get(id) as Client;
      if (id === sender || !c.connected) continue;
      this.deliver(id, c.epoch, message.topic, message.payload);
    }
  }

  private deliver(client: string, epoch: number, topic: string, payload: Uint8Array): void {
    const f = this.faults;
    if (this.rng.chance(f.drop)) return;
    const copies = this.rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let delay = this.rng.int(f.delay_min_ms, f.delay_max_ms);
      if (this.rng.chance(f.slow)) delay += this.rng.int(0, f.slow_max_ms);
      this.delivered_bytes += payload.length;
      this.schedule(delay, { client, epoch, topic, payload });
    }
  }
}
