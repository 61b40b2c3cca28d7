import type { Log } from "../../src/log/log.ts";

/**
 * The simulator's safety invariants, one checker each, run after every step
 * (delivery, tick, log timer, append, crash, restart, ...) so a violation is
 * caught at the step that caused it rather than at the end, when a later
 * repair may have hidden it. Each keeps a little state per replica and looks
 * only at what changed since the last step (a replica whose counts did not
 * move is skipped; contents are compared once per event and incarnation), so
 * checking every step costs little more than checking once at the end.
 * Liveness (convergence) stays in the simulator.
 *
 * Checkers must not change what they watch: reading an event flushes the
 * log's staging buffer to the OS, which would let events survive a process
 * crash that otherwise lose them. So contents are read only while nothing is
 * staged (see quiet); counts and vvs, which flush nothing, at any step.
 */

/** What a checker sees of one replica after a step. */
export interface ReplicaView {
  readonly index: number;
  readonly id: string;
  /** null while the replica is crashed. */
  readonly log: Log | null;
  /** Bumped by every (re)open: a change means the replica restarted since the last step. */
  readonly incarnation: number;
  readonly pull: "*" | readonly string[];
}

/** Where the simulation is, for failure messages. */
export interface StepContext {
  readonly seed: number;
  readonly step: number;
  /** Simulated time since the start. */
  readonly sim_ms: number;
  /** The step's action, described only when a check fails. */
  readonly action: () => string;
}

export class InvariantError extends Error {}

export interface Checker {
  readonly invariant: string;
  check(replicas: readonly ReplicaView[], context: StepContext): void;
}

function fail(checker: Checker, replica: ReplicaView, context: StepContext, details: string): never {
  throw new InvariantError(
    `invariant "${checker.invariant}" broken at replica ${replica.index} (${replica.id}), incarnation ${replica.incarnation}: ${details}\n` +
      `  seed ${context.seed}, step ${context.step} (${context.action()}) at ${context.sim_ms} ms`,
  );
}

export interface Written {
  readonly payload: Uint8Array;
  readonly time_ms: number;
}

/**
 * Every event each replica appended, by origin and seq. A seq lost in a
 * crash before it was durable is written again with new content, so only the
 * latest write of a seq counts: that is the one anybody may hold.
 */
export class WriteRecord {
  private readonly by_origin = new Map<string, Written[]>();

  record(origin: string, first_seq: number, payloads: readonly Uint8Array[], time_ms: number): void {
    let list = this.by_origin.get(origin);
    if (list === undefined) this.by_origin.set(origin, (list = []));
    // Appends continue from what the log holds, so anything past first_seq was lost with its crash.
    list.length = first_seq - 1;
    for (const payload of payloads) list.push({ payload, time_ms });
  }

  get(origin: string, seq: number): Written | undefined {
    return this.by_origin.get(origin)?.[seq - 1];
  }
}

/** Everything is durable, so nothing is staged and reading events flushes nothing. */
function quiet(log: Log): boolean {
  return log.durable_count === log.count;
}

/**
 * Per replica, the incarnation and one log counter at a checker's last
 * look: within an incarnation, what a checker watches changes only when
 * that counter does, so it can skip the replica otherwise.
 */
class LastLook {
  private readonly incarnation: number[] = [];
  private readonly counter: number[] = [];

  /** True when nothing changed since the last call for r; otherwise remembers the new state. */
  unchanged(r: ReplicaView, counter: number): boolean {
    if (this.incarnation[r.index] === r.incarnation && this.counter[r.index] === counter) return true;
    this.incarnation[r.index] = r.incarnation;
    this.counter[r.index] = counter;
    return false;
  }

  /** The incarnation seen at the last look that found a change (undefined before the first). */
  incarnation_of(r: ReplicaView): number | undefined {
    return this.incarnation[r.index];
  }
}

function same_bytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/**
 * Acknowledged events are never lost: once an own event is durable under the
 * replica's sync mode (what `durable()` resolving promises), its origin holds
 * it, with the same payload and time, through every later crash and power
 * cut. Held counts are compared at every durable progress and restart;
 * contents once after each restart, at the first step when the log is quiet.
 */
export class AcknowledgedNotLost implements Checker {
  readonly invariant = "acknowledged events are never lost";
  /** Per replica: own events acknowledged so far, seq - 1 -> what was acknowledged. */
  private readonly acked: Written[][] = [];
  /** Per replica: the incarnation whose contents were compared. */
  private readonly compared: number[] = [];
  private readonly last = new LastLook();

  constructor(private readonly writes: WriteRecord) {}

  check(replicas: readonly ReplicaView[], context: StepContext): void {
    for (const r of replicas) {
      const log = r.log;
      if (log === null) continue;
      const acked = (this.acked[r.index] ??= []);
      if (this.compared[r.index] !== r.incarnation && quiet(log)) {
        this.compared[r.index] = r.incarnation;
        for (let seq = 1; seq <= acked.length; seq++) {
          const e = log.get(r.id, seq);
          const want = acked[seq - 1];
          if (e === null) fail(this, r, context, `acknowledged own event seq ${seq} is gone after a restart (holds ${log.held(r.id)})`);
          if (!same_bytes(e.payload, want.payload) || e.time_ms !== want.time_ms) {
            const was = `${want.payload.length} bytes at ${want.time_ms}`;
            fail(this, r, context, `acknowledged own event seq ${seq} changed after a restart (${e.payload.length} bytes at ${e.time_ms}, was ${was})`);
          }
        }
      }
      // Held and acknowledged own events change only with durable progress or a restart.
      if (this.last.unchanged(r, log.durable_count)) continue;
      const held = log.held(r.id);
      if (held < acked.length) fail(this, r, context, `holds own events up to seq ${held}, but seq ${acked.length} was acknowledged`);
      const durable = log.durable_held(r.id);
      for (let seq = acked.length + 1; seq <= durable; seq++) {
        const written = this.writes.get(r.id, seq);
        if (written === undefined) fail(this, r, context, `own event seq ${seq} is durable but the simulator never appended it`);
        acked.push(written);
      }
    }
  }
}

/**
 * The durable vv never shrinks, per replica and origin: not across a
 * restart, whether a process crash or a power cut, since peers were told it
 * (a replica that forgot would contradict its acks), and not while it runs.
 * Applies to the fsyncing modes the simulator uses, not to "never".
 */
export class DurableVvMonotonic implements Checker {
  readonly invariant = "the durable vv never shrinks";
  /** Per replica: origin -> highest durable seq seen. */
  private readonly floor: Map<string, number>[] = [];
  private readonly last = new LastLook();

  constructor(private readonly origins: readonly string[]) {}

  check(replicas: readonly ReplicaView[], context: StepContext): void {
    for (const r of replicas) {
      const log = r.log;
      if (log === null) continue;
      const before = this.last.incarnation_of(r);
      // The durable vv moves only with durable_count (or a restart).
      if (this.last.unchanged(r, log.durable_count)) continue;
      const floor = (this.floor[r.index] ??= new Map());
      for (const origin of this.origins) {
        const seen = floor.get(origin) ?? 0;
        const now = log.durable_held(origin);
        if (now < seen) {
          const when = before === r.incarnation ? "while running" : `across the restart after incarnation ${before}`;
          fail(this, r, context, `durable vv[${origin}] went from ${seen} to ${now} ${when}`);
        }
        if (now > seen) floor.set(origin, now);
      }
    }
  }
}

/**
 * A partial replica holds only the origins it pulls (and its own), and no
 * replica holds an origin that is not one of the simulation's writers (the
 * replicas, and the hostile client's own signed events: nothing it made up
 * for an id that is not its key's gets in). Looks only when the log grew
 * or the replica restarted.
 */
export class HoldsOnlyPulledOrigins implements Checker {
  readonly invariant = "no replica holds an origin it does not pull";
  private readonly last = new LastLook();

  constructor(private readonly origins: readonly string[]) {}

  check(replicas: readonly ReplicaView[], context: StepContext): void {
    for (const r of replicas) {
      const log = r.log;
      if (log === null || this.last.unchanged(r, log.count)) continue;
      // Each origin's seqs are contiguous from 1, so the replicas' origins account for every event unless an unknown one is held.
      let known = 0;
      for (const origin of this.origins) {
        const held = log.held(origin);
        known += held;
        if (held > 0 && origin !== r.id && r.pull !== "*" && !r.pull.includes(origin)) {
          fail(this, r, context, `holds ${held} events of ${origin} but pulls only ${JSON.stringify(r.pull)}`);
        }
      }
      if (known !== log.count) {
        const strangers = Object.keys(log.vv()).filter((origin) => !this.origins.includes(origin));
        fail(this, r, context, `holds ${log.count - known} events of ${strangers.join(", ")}, which is no replica of the simulation`);
      }
    }
  }
}

/**
 * No replica holds an event its origin did not write: every held event
 * equals the origin's latest write of that seq (payload and time), signed by
 * its origin (a forged event of an honest origin would differ from what it
 * wrote); a peer's copy of an event the validator rejects is marked rejected
 * and keeps the origin's bytes. Each
 * event is compared once, at the first quiet step after it arrives, and
 * everything again after a restart, since a power cut may tear what was not
 * yet fsynced.
 */
export class HeldAsWritten implements Checker {
  readonly invariant = "no replica holds an event its origin did not write";
  /** Per replica: origin -> seqs compared so far in the incarnation `last` saw. */
  private readonly compared: Map<string, number>[] = [];
  private readonly last = new LastLook();

  constructor(
    private readonly origins: readonly string[],
    private readonly writes: WriteRecord,
    private readonly rejects: (payload: Uint8Array) => boolean,
  ) {}

  check(replicas: readonly ReplicaView[], context: StepContext): void {
    for (const r of replicas) {
      const log = r.log;
      if (log === null || !quiet(log)) continue;
      const before = this.last.incarnation_of(r);
      if (this.last.unchanged(r, log.count)) continue;
      if (before !== r.incarnation) this.compared[r.index] = new Map();
      const compared = this.compared[r.index];
      for (const origin of this.origins) {
        const upto = compared.get(origin) ?? 0;
        const held = log.held(origin);
        if (held <= upto) continue;
        for (const e of log.events_after(origin, upto)) {
          const written = this.writes.get(origin, e.seq);
          const what = `event ${origin}:${e.seq} at pos ${e.pos}`;
          if (written === undefined) fail(this, r, context, `${what} was never written by its origin`);
          if (e.time_ms !== written.time_ms) fail(this, r, context, `${what} has time ${e.time_ms}, its origin wrote ${written.time_ms}`);
          const must_reject = origin !== r.id && this.rejects(written.payload);
          if (e.rejected !== must_reject) fail(this, r, context, `${what} has rejected=${e.rejected}, expected ${must_reject}`);
          if (!same_bytes(e.payload, written.payload)) {
            fail(this, r, context, `${what} differs from what its origin wrote (${e.payload.length} bytes, written ${written.payload.length})`);
          }
        }
        compared.set(origin, held);
      }
    }
  }
}

/** The checkers the simulator runs after every step. */
export function safety_checkers(origins: readonly string[], writes: WriteRecord, rejects: (payload: Uint8Array) => boolean): Checker[] {
  return [
    new AcknowledgedNotLost(writes),
    new DurableVvMonotonic(origins),
    new HoldsOnlyPulledOrigins(origins),
    new HeldAsWritten(origins, writes, rejects),
  ];
}
