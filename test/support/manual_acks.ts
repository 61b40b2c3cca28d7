import type { AckSource } from "../../src/log/retention.ts";

/**
 * Acknowledgements a test sets by hand (what sync would learn from the
 * upstreams' durable version vectors): which upstreams pull each origin, and
 * the highest seq of each origin each upstream holds. An origin not given
 * upstreams of its own is pulled by `default_upstreams`.
 */
export class ManualAcks implements AckSource {
  private readonly pulled_by = new Map<string, readonly string[]>();
  private readonly holds = new Map<string, Map<string, number>>();
  /** Every call of held_by, for tests that check what the log asked. */
  asked = 0;

  constructor(private readonly default_upstreams: readonly string[] = ["hub"]) {}

  /** The upstreams whose acknowledgement `origin`'s events need ([] = nobody pulls it). */
  pull(origin: string, upstreams: readonly string[]): this {
    this.pulled_by.set(origin, upstreams);
    return this;
  }

  /** `upstream` now holds `origin` up to `seq` (an upstream's durable vv never goes back: a lower seq is ignored). */
  ack(upstream: string, origin: string, seq: number): this {
    let by_origin = this.holds.get(upstream);
    if (by_origin === undefined) this.holds.set(upstream, (by_origin = new Map()));
    by_origin.set(origin, Math.max(by_origin.get(origin) ?? 0, seq));
    return this;
  }

  upstreams_of(origin: string): readonly string[] {
    return this.pulled_by.get(origin) ?? this.default_upstreams;
  }

  held_by(upstream: string, origin: string): number {
    this.asked++;
    return this.holds.get(upstream)?.get(origin) ?? 0;
  }

  upstreams(): readonly string[] {
    const all = new Set<string>(this.default_upstreams);
    for (const ups of this.pulled_by.values()) for (const u of ups) all.add(u);
    return [...all];
  }
}

/** An upstream that holds whatever `held(origin)` says right now (for example the log's own durable vv: everything acknowledged). */
export function acks_from(held: (origin: string) => number, upstreams: readonly string[] = ["hub"]): AckSource {
  return {
    upstreams_of: () => upstreams,
    held_by: (_upstream, origin) => held(origin),
    upstreams: () => upstreams,
  };
}
