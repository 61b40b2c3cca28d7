import { expect, test } from "bun:test";
import { for_seeds } from "../support/seeded.ts";
import { SubscriptionTrie, topic_matches } from "./topic_match.ts";

test("the simulated broker's subscription index matches topics as MQTT filters do", async () => {
  await for_seeds(50, (rng) => {
    const word = () => rng.pick(["a", "b", "c"]);
    const topic = () => Array.from({ length: rng.int(1, 4) }, word).join("/");
    const filter = () => {
      const levels = Array.from({ length: rng.int(1, 4) }, () => (rng.chance(0.3) ? "+" : word()));
      if (rng.chance(0.2)) levels.push("#");
      return levels.join("/");
    };
    const trie = new SubscriptionTrie<number>();
    const filters = Array.from({ length: 20 }, filter);
    filters.forEach((f, i) => trie.add(f, i));
    for (let k = 0; k < 50; k++) {
      const t = topic();
      const expected = filters.flatMap((f, i) => (topic_matches(f, t) ? [i] : []));
      expect([...trie.match(t)].sort((x, y) => x - y)).toEqual(expected);
    }
  });
});
