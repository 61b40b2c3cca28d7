import type { PruneResult, RetentionPolicy } from "../log/log.ts";

/**
 * What a prune did or would do, as POST /api/prune answers it and
 * `interlog prune` prints it (offline or through the running replica).
 * Imports only types: the CLI loads it without the HTTP server.
 */

export interface PrunedSegmentJson {
  /** The segment file's name in segments/. */
  file: string;
  first_pos: number;
  /** One past its last position. */
  end_pos: number;
  events: number;
  record_bytes: number;
  /** Every upstream held all of it. */
  acked: boolean;
}

export interface PruneReport {
  dry_run: boolean;
  policy: RetentionPolicy;
  segments: PrunedSegmentJson[];
  total: { segments: number; events: number; record_bytes: number; acked_events: number; acked_bytes: number; unacked_events: number; unacked_bytes: number };
  /** Why the plan stopped at a segment no upstream acknowledged (drop-acked), naming the upstream; null when nothing held it back. */
  blocked: string | null;
  /** The first position held afterwards (for a dry run: now). */
  first_pos: number;
  /** When nothing goes: why, in words. */
  note: string | null;
}

export function prune_report(result: PruneResult, policy: RetentionPolicy, first_pos: number, budget: { used_bytes: number; max_bytes: number | null }): PruneReport {
  const segments = result.segments.map((s) => ({
    file: s.file.replace(/^.*[\\/]/, ""),
    first_pos: s.first_pos,
    end_pos: s.end_pos,
    events: s.events,
    record_bytes: s.record_bytes,
    acked: s.acked,
  }));
  const total = { segments: segments.length, events: 0, record_bytes: 0, acked_events: 0, acked_bytes: 0, unacked_events: 0, unacked_bytes: 0 };
  for (const s of segments) {
    total.events += s.events;
    total.record_bytes += s.record_bytes;
    if (s.acked) {
      total.acked_events += s.events;
      total.acked_bytes += s.record_bytes;
    } else {
      total.unacked_events += s.events;
      total.unacked_bytes += s.record_bytes;
    }
  }
  let note: string | null = null;
  if (segments.length === 0) {
    const nothing = result.dry_run ? "nothing would be pruned" : "nothing was pruned";
    if (policy === "reject") note = `${nothing}: the policy is reject`;
    else if (result.blocked !== null) note = `${nothing}: ${result.blocked}`;
    else if (policy === "drop-oldest" && budget.max_bytes !== null) note = `${nothing}: the segment files take ${budget.used_bytes} bytes, within the ${budget.max_bytes}-byte budget with room for one more segment`;
    else note = `${nothing}: only the segment being written (or segments not yet durable) is held`;
  }
  return { dry_run: result.dry_run, policy, segments, total, blocked: result.blocked, first_pos, note };
}

/** The report as lines for a technician (the prune command's stdout). */
export function prune_report_text(report: PruneReport): string {
  const lines: string[] = [];
  const verb = report.dry_run ? "would prune" : "pruned";
  lines.push(`${report.dry_run ? "dry run, " : ""}policy ${report.policy}: ${verb} ${report.total.segments} segment(s), ${report.total.events} event(s), ${report.total.record_bytes} record bytes`);
  for (const s of report.segments) {
    lines.push(`  ${s.file}  positions ${s.first_pos}..${s.end_pos - 1}  ${s.events} events  ${s.record_bytes} bytes  ${s.acked ? "acked" : "NOT acked"}`);
  }
  if (report.total.segments > 0) {
    lines.push(`  acknowledged: ${report.total.acked_events} events, ${report.total.acked_bytes} bytes; not acknowledged: ${report.total.unacked_events} events, ${report.total.unacked_bytes} bytes`);
  }
  if (report.total.unacked_events > 0) lines.push(`  ${report.total.unacked_events} event(s) no upstream acknowledged ${report.dry_run ? "would be" : "were"} deleted (drop-oldest): lost unless a peer holds them`);
  const last = report.segments[report.segments.length - 1];
  if (report.dry_run && last !== undefined) lines.push(`first position held: ${report.first_pos} now, ${last.end_pos} after the prune`);
  else lines.push(`first position held: ${report.first_pos}`);
  lines.push(`blocked: ${report.blocked ?? "no"}`);
  // A blocked plan's note only repeats the blocked line.
  if (report.note !== null && report.blocked === null) lines.push(report.note);
  return `${lines.join("\n")}\n`;
}
