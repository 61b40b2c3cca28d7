import { InterlogError } from "../lib/errors.ts";
import { is_origin } from "../log/ids.ts";

/**
 * Topic names under the prefix P (design.md section 3). A replica publishes
 * only under `P/<its id>/`; a broker that binds the id to the login (ACL
 * `pattern write P/%u/#`, username = replica id, see config/mosquitto/)
 * stops one replica from publishing for another.
 */
export type TopicKind = "vv" | "entry" | "events" | "want" | "to" | "status";

export interface ParsedTopic {
  /** The replica that published (the id after the prefix). */
  from: string;
  kind: TopicKind;
  /** For want/to: the replica addressed; for entry: the origin the entry is about. */
  peer: string | null;
}

export const prefix_default = "interlog";

/** The MQTT single-level wildcard: in place of a replica id, a subscription filter matching every replica. */
export const any_replica = "+";

/** Every topic carries the prefix, and each message keeps room for its topic (envelope_reserve_bytes). */
export const prefix_max_chars = 64;

export function check_prefix(prefix: string): void {
  if (prefix.length > prefix_max_chars) {
    throw new InterlogError("BAD_ARGUMENT", `topic prefix "${prefix.slice(0, 20)}..." has ${prefix.length} characters; use at most ${prefix_max_chars}`);
  }
  if (prefix === "" || /[#+\u0000]/.test(prefix) || prefix.startsWith("/") || prefix.endsWith("/")) {
    throw new InterlogError(
      "BAD_ARGUMENT",
      `topic prefix "${prefix}" is invalid; use a non-empty MQTT topic without wildcards (+, #) or leading/trailing "/", e.g. "interlog" or "fleet/eu"`,
    );
  }
}

/**
 * Builds every topic and subscription filter sync uses (no other file
 * writes one by hand). Where a method takes a publisher id, `any_replica`
 * makes it a filter for all publishers.
 */
export class Topics {
  readonly prefix: string;
  private readonly prefix_slash: string;

  constructor(prefix: string = prefix_default) {
    check_prefix(prefix);
    this.prefix = prefix;
    this.prefix_slash = `${prefix}/`;
  }

  vv(id: string): string {
    return `${this.prefix}/${id}/vv`;
  }
  /** One origin's entry of id's vv (retained): what a replica that pulls only a few origins follows instead of the whole vv. */
  entry(id: string, origin: string): string {
    return `${this.prefix}/${id}/vv/${origin}`;
  }
  events(id: string): string {
    return `${this.prefix}/${id}/events`;
  }
  status(id: string): string {
    return `${this.prefix}/${id}/status`;
  }
  want(id: string, peer: string): string {
    return `${this.prefix}/${id}/want/${peer}`;
  }
  to(id: string, peer: string): string {
    return `${this.prefix}/${id}/to/${peer}`;
  }

  /**
   * Topic filters replica `id` subscribes to (with no-local where the
   * broker supports it). A replica that pulls everything follows whole vvs;
   * one that pulls a list follows only the vv entries it needs (its own
   * acknowledgement and the origins it pulls), so its traffic does not grow
   * with the number of origins a hub holds. Null sets mean everyone.
   */
  subscriptions(id: string, pull_set: ReadonlySet<string> | null, watch_set: ReadonlySet<string> | null): string[] {
    const subs = [this.want(any_replica, id), this.to(any_replica, id)];
    const watched = watch_set === null ? [any_replica] : [...new Set([...watch_set, ...(pull_set ?? [])])];
    for (const w of watched) {
      subs.push(this.status(w));
      if (pull_set === null) subs.push(this.vv(w));
      else for (const origin of [id, ...pull_set]) subs.push(this.entry(w, origin));
    }
    if (pull_set === null) subs.push(this.events(any_replica));
    else for (const origin of pull_set) subs.push(this.events(origin));
    return subs;
  }

  /** Splits a received topic; null when it is not one of ours or names no valid replica id. */
  parse(topic: string): ParsedTopic | null {
    if (!topic.startsWith(this.prefix_slash)) return null;
    const parts = topic.slice(this.prefix_slash.length).split("/");
    const from = parts[0];
    if (!is_origin(from)) return null;
    if (parts.length === 2) {
      const kind = parts[1];
      if (kind === "vv" || kind === "events" || kind === "status") return { from, kind, peer: null };
      return null;
    }
    if (parts.length === 3 && (parts[1] === "want" || parts[1] === "to") && is_origin(parts[2])) {
      return { from, kind: parts[1], peer: parts[2] };
    }
    if (parts.length === 3 && parts[1] === "vv" && is_origin(parts[2])) return { from, kind: "entry", peer: parts[2] };
    return null;
  }
}
