import type { Outbound } from "../../src/sync/replicator.ts";

/** What one client's link carried, both directions. */
export interface LinkTraffic {
  /** PUBLISH packets sent and received. */
  messages: number;
  /** MQTT 5 bytes of those PUBLISH packets and of their PUBACKs (QoS 1). */
  bytes: number;
  /** PUBLISH packets by message kind (the topic's third level: vv, events, want, to, status). */
  messages_by_kind: Record<string, number>;
  bytes_by_kind: Record<string, number>;
}

function new_traffic(): LinkTraffic {
  return { messages: 0, bytes: 0, messages_by_kind: {}, bytes_by_kind: {} };
}

function varint_bytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

const utf8 = new TextEncoder();

/** Size of an MQTT 5 PUBLISH at QoS 1 without properties: fixed header, topic, packet id, properties length 0, payload. */
export function publish_packet_bytes(topic: string, payload_bytes: number): number {
  const remaining = 2 + utf8.encode(topic).length + 2 + 1 + payload_bytes;
  return 1 + varint_bytes(remaining) + remaining;
}

/** MQTT 5 PUBACK with reason "success" and no properties. */
export const puback_bytes = 4;

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Clients whose filter ends here. */
  clients: Set<string>;
}

const new_node = (): TrieNode => ({ children: new Map(), clients: new Set() });

/**
 * The simulated broker of the fleet benchmark: QoS 1 without loss, retained
 * messages, no-local subscriptions, and a fixed delivery latency. Topic
 * filters live in a trie (as in mosquitto), so routing one message costs the
 * topic's depth, not the fleet's size, and a thousand spokes simulate in
 * seconds. Counts every client's traffic.
 */
export class FleetBroker {
  private readonly root = new_node();
  private readonly retained = new Map<string, Uint8Array>();
  /** Retained topics by level, so a new subscription finds its retained messages without scanning them all. */
  private readonly retained_root = new_node();
  private readonly traffic = new Map<string, LinkTraffic>();

  constructor(private readonly deliver_later: (client: string, topic: string, payload: Uint8Array) => void) {}

  connect(client: string, filters: readonly string[]): void {
    for (const filter of filters) {
      let node = this.root;
      for (const level of filter.split("/")) {
        let child = node.children.get(level);
        if (child === undefined) {
          child = new_node();
          node.children.set(level, child);
        }
        node = child;
      }
      node.clients.add(client);
    }
    const matched = new Set<string>();
    for (const filter of filters) this.retained_matching(this.retained_root, filter.split("/"), 0, matched);
    for (const topic of matched) this.deliver(client, topic, this.retained.get(topic) as Uint8Array);
  }

  publish(sender: string, m: Outbound): void {
    this.count(sender, m.topic, m.payload.length);
    // A broker keeps its own copy and acknowledges at once (QoS 1 without loss): the sender's pooled
    // buffer goes back to its pool, as the MQTT transport does on PUBACK. Without this every batch
    // would cost a fresh 128 KiB buffer, which dominated the simulation's cost at a thousand spokes.
    let payload = m.payload;
    if (m.release !== undefined) {
      payload = m.payload.slice();
      m.release();
    }
    if (m.retain) {
      if (payload.length === 0) this.retained.delete(m.topic);
      else {
        if (!this.retained.has(m.topic)) this.add_retained_topic(m.topic);
        this.retained.set(m.topic, payload);
      }
    }
    for (const client of this.subscribers(m.topic)) if (client !== sender) this.deliver(client, m.topic, payload);
  }

  traffic_of(client: string): LinkTraffic {
    return this.traffic.get(client) ?? new_traffic();
  }

  reset_traffic(): void {
    this.traffic.clear();
  }

  private deliver(client: string, topic: string, payload: Uint8Array): void {
    this.count(client, topic, payload.length);
    this.deliver_later(client, topic, payload);
  }

  /** One PUBLISH on `client`'s link (either way) and the PUBACK that answers it. */
  private count(client: string, topic: string, payload_bytes: number): void {
    let t = this.traffic.get(client);
    if (t === undefined) {
      t = new_traffic();
      this.traffic.set(client, t);
    }
    const kind = topic.split("/")[2] ?? "?";
    const bytes = publish_packet_bytes(topic, payload_bytes) + puback_bytes;
    t.messages++;
    t.bytes += bytes;
    t.messages_by_kind[kind] = (t.messages_by_kind[kind] ?? 0) + 1;
    t.bytes_by_kind[kind] = (t.bytes_by_kind[kind] ?? 0) + bytes;
  }

  private add_retained_topic(topic: string): void {
    let node = this.retained_root;
    for (const level of topic.split("/")) {
      let child = node.children.get(level);
      if (child === undefined) {
        child = new_node();
        node.children.set(level, child);
      }
      node = child;
    }
    node.clients.add(topic); // here: the topic that ends at this node
  }

  /** Retained topics (still retained) matching filter levels [depth..]. */
  private retained_matching(node: TrieNode, filter: string[], depth: number, out: Set<string>): void {
    if (depth === filter.length) {
      for (const topic of node.clients) if (this.retained.has(topic)) out.add(topic);
      return;
    }
    const level = filter[depth];
    if (level === "#") {
      for (const topic of node.clients) if (this.retained.has(topic)) out.add(topic);
      for (const child of node.children.values()) this.retained_matching(child, filter, depth, out);
    } else if (level === "+") {
      for (const child of node.children.values()) this.retained_matching(child, filter, depth + 1, out);
    } else {
      const child = node.children.get(level);
      if (child !== undefined) this.retained_matching(child, filter, depth + 1, out);
    }
  }

  private subscribers(topic: string): Set<string> {
    const out = new Set<string>();
    const levels = topic.split("/");
    const walk = (node: TrieNode, depth: number): void => {
      const hash = node.children.get("#");
      if (hash !== undefined) for (const c of hash.clients) out.add(c);
      if (depth === levels.length) {
        for (const c of node.clients) out.add(c);
        return;
      }
      const exact = node.children.get(levels[depth]);
      if (exact !== undefined) walk(exact, depth + 1);
      const plus = node.children.get("+");
      if (plus !== undefined) walk(plus, depth + 1);
    };
    walk(this.root, 0);
    return out;
  }
}
