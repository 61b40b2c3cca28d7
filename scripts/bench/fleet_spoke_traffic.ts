import type { BenchContext } from "./context.ts";
import { type FleetResult, fleet_defaults, run_fleet } from "./fleet_sim.ts";
import type { BenchRecord, Benchmark } from "./types.ts";

/** A spoke's traffic per hub event may differ by at most this share between a fleet of 100 and one of 1000 spokes. */
const max_change = 0.1;
const small_fleet = 100;
const large_fleet = 1000;

const d = fleet_defaults;
const scenario =
  `simulated fleet (one process, product defaults): the hub appends ${d.hub_batch_events} x ${d.payload_bytes} B every ${d.hub_append_every_ms} ms, ` +
  `every spoke 1 x ${d.payload_bytes} B every ${d.spoke_append_every_ms} ms, for ${d.append_ms / 1000} s; spokes pull only the hub's origin, the hub pulls all`;

function fleet(ctx: BenchContext, spokes: number): Promise<FleetResult> {
  return ctx.shared(`fleet_${spokes}`, async () => {
    // A large fleet takes minutes: say where it is.
    const progress = spokes >= 10 * large_fleet ? (m: string) => ctx.progress(m) : undefined;
    const r = await run_fleet({ ...fleet_defaults, spokes, progress });
    const kinds = (by: Record<string, number>, digits: number): string =>
      Object.entries(by)
        .map(([k, v]) => `${k} ${v.toFixed(digits)}`)
        .join(", ");
    ctx.progress(
      `fleet of ${spokes} spokes: ${r.hub_events} hub events, ${r.spoke_events} spoke events, simulated ${(r.sim_ms / 1000).toFixed(1)} s in ${r.wall_s.toFixed(1)} s; ` +
        `per spoke per hub event: ${r.spoke_messages_per_hub_event.toFixed(4)} messages (${kinds(r.spoke_messages_by_kind, 4)}), ` +
        `${r.spoke_bytes_per_hub_event.toFixed(1)} B (${kinds(r.spoke_bytes_by_kind, 1)}); busiest spoke ${r.spoke_bytes_per_hub_event_max.toFixed(1)} B`,
    );
    ctx.progress(
      `  hub: vv of ${r.hub_vv_bytes} B published every ${r.hub_vv_interval_ms.toFixed(0)} ms on average (each spoke's acknowledgement); ` +
        `${r.hub_messages} messages, ${(r.hub_bytes / 2 ** 20).toFixed(1)} MiB on its link`,
    );
    return r;
  });
}

const within = (r: BenchRecord): boolean => r.ratio !== null && Math.abs(r.ratio - 1) <= max_change;
const target = { text: `ratio within 1 +- ${max_change}`, met: within };

function per_event(spokes: number, what: "messages" | "bytes"): Benchmark {
  const large = spokes === large_fleet;
  return {
    name: `fleet_${spokes}_spoke_${what === "messages" ? "msgs" : "bytes"}_per_event`,
    unit: what === "messages" ? "msgs/hub event" : "B/hub event",
    description:
      `a spoke's MQTT ${what === "messages" ? "PUBLISH packets" : "bytes (PUBLISH + PUBACK)"}, both directions, per hub event, mean over ${spokes} spokes; ${scenario}` +
      (large ? `; baseline: the same with ${small_fleet} spokes` : ""),
    ...(large ? { target } : {}),
    async run(ctx) {
      const pick = (r: FleetResult): number => (what === "messages" ? r.spoke_messages_per_hub_event : r.spoke_bytes_per_hub_event);
      const value = pick(await fleet(ctx, spokes));
      if (!large) return { value, baseline: null, ratio: null };
      const baseline = pick(await fleet(ctx, small_fleet));
      return { value, baseline, ratio: value / baseline };
    },
  };
}

export const fleet_100_spoke_msgs_per_event = per_event(small_fleet, "messages");
export const fleet_100_spoke_bytes_per_event = per_event(small_fleet, "bytes");
export const fleet_1000_spoke_msgs_per_event = per_event(large_fleet, "messages");
export const fleet_1000_spoke_bytes_per_event = per_event(large_fleet, "bytes");

/** A spoke's traffic per hub event with `spokes` spokes / with small_fleet: of messages and bytes, the ratio farther from 1. */
function traffic_ratio(name: string, spokes: number): Benchmark {
  return {
    name,
    unit: "x",
    description: `a spoke's traffic per hub event with ${spokes} spokes / with ${small_fleet}: of messages and bytes, the ratio farther from 1; ${scenario}`,
    target: { text: `within 1 +- ${max_change}`, met: (r) => Math.abs(r.value - 1) <= max_change },
    async run(ctx) {
      const small = await fleet(ctx, small_fleet);
      const large = await fleet(ctx, spokes);
      const ratios = [
        large.spoke_messages_per_hub_event / small.spoke_messages_per_hub_event,
        large.spoke_bytes_per_hub_event / small.spoke_bytes_per_hub_event,
      ];
      const value = ratios.reduce((worst, r) => (Math.abs(r - 1) > Math.abs(worst - 1) ? r : worst));
      ctx.progress(`messages ${ratios[0].toFixed(3)}x, bytes ${ratios[1].toFixed(3)}x`);
      return { value, baseline: null, ratio: null };
    },
  };
}

export const fleet_spoke_traffic_1000_vs_100_ratio = traffic_ratio("fleet_spoke_traffic_1000_vs_100_ratio", large_fleet);

/**
 * The same with 10 000 spokes: every spoke a real Log and Replicator, so
 * about 6 minutes of one core (the cost is linear in spokes: ~6 s of CPU
 * per simulated second per 1 000 spokes, most of it the replicas' own
 * message encoding, decoding and signature checks). Runs only when named
 * with --only (opt_in_benchmarks in registry.ts).
 */
export const fleet_spoke_traffic_10k_vs_100_ratio = traffic_ratio("fleet_spoke_traffic_10k_vs_100_ratio", 10_000);
