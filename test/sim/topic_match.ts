/** MQTT topic filter matching (`+` one level, `#` the rest). */
export function topic_matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

interface TrieNode<T> {
  children: Map<string, TrieNode<T>>;
  here: Set<T>;
  rest: Set<T>;
}

function trie_node<T>(): TrieNode<T> {
  return { children: new Map(), here: new Set(), rest: new Set() };
}

/**
 * Subscriptions indexed by topic level, so routing a message costs the
 * depth of the topic, not the number of clients (a simulated fleet has
 * thousands).
 */
export class SubscriptionTrie<T> {
  private readonly root = trie_node<T>();

  add(filter: string, who: T): void {
    let node = this.root;
    for (const level of filter.split("/")) {
      if (level === "#") {
        node.rest.add(who);
        return;
      }
      let next = node.children.get(level);
      if (next === undefined) {
        next = trie_node();
        node.children.set(level, next);
      }
      node = next;
    }
    node.here.add(who);
  }

  remove(filter: string, who: T): void {
    let node: TrieNode<T> | undefined = this.root;
    for (const level of filter.split("/")) {
      if (level === "#") {
        node.rest.delete(who);
        return;
      }
      node = node.children.get(level);
      if (node === undefined) return;
    }
    node.here.delete(who);
  }

  /** Everyone with a filter matching `topic`, once each. */
  match(topic: string): Set<T> {
    const out = new Set<T>();
    const levels = topic.split("/");
    const walk = (node: TrieNode<T>, i: number) => {
      for (const w of node.rest) out.add(w);
      if (i === levels.length) {
        for (const w of node.here) out.add(w);
        return;
      }
      const exact = node.children.get(levels[i]);
      if (exact !== undefined) walk(exact, i + 1);
      const plus = node.children.get("+");
      if (plus !== undefined) walk(plus, i + 1);
    };
    walk(this.root, 0);
    return out;
  }
}
