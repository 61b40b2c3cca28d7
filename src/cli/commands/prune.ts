import fs from "node:fs";
import path from "node:path";
import { type PruneReport, prune_report, prune_report_text } from "../../admin/prune_report.ts";
import { load_config } from "../../config/load.ts";
import { is_interlog_error } from "../../lib/errors.ts";
import { node_file_io } from "../../log/file_io.ts";
import { Log, type RetentionPolicy, segment_size_default_bytes } from "../../log/log.ts";
import { AdminUnreachable, admin_fetch, admin_target } from "../admin_client.ts";
import { type Command, UsageError, exit_failed, exit_ok, optional_int } from "../usage.ts";

const policies: readonly RetentionPolicy[] = ["drop-acked", "drop-oldest"];

export const prune_command: Command = {
  name: "prune",
  help: `interlog prune --data-dir DIR [--dry-run] [--policy drop-acked|drop-oldest] [--max-bytes N]
                [--url URL | --config FILE] [--token-env NAME] [--json]

Deletes the oldest segments of the log, whole, as retention would, and prints
what went (--dry-run: what would go): each segment's file, positions, events,
record bytes, and whether every upstream had acknowledged it; then what holds
pruning back ("blocked"), naming the upstream.

  drop-acked (default)  only segments every upstream holds (their durable vv)
  drop-oldest           the oldest segments until the log is within its budget
                        (--max-bytes N, or the config's retention.max_bytes;
                        through a running replica its own), acknowledged or
                        not: what no upstream held is lost unless a peer has it

Without --policy: the config's retention.policy, else drop-acked.

When no replica runs on DIR, the log is opened here ("offline"). Sync does not
run then, so no upstream's acknowledgement is known and drop-acked prunes
nothing: it says so. When a replica runs on DIR (its lock is held), the prune
goes through that replica's admin API (POST /api/prune), which knows what its
upstreams acknowledged: give --url URL or --config FILE (the bearer token comes
from $INTERLOG_ADMIN_TOKEN, --token-env NAME, or the config's admin.token_env).
Without them it refuses. --config also gives DIR (data_dir). --json prints
the report as JSON.`,
  options: {
    "data-dir": { type: "string" },
    "dry-run": { type: "boolean" },
    policy: { type: "string" },
    "max-bytes": { type: "string" },
    url: { type: "string" },
    config: { type: "string" },
    "token-env": { type: "string" },
    json: { type: "boolean" },
  },
  async run(values, _positionals, io) {
    const policy_text = values.policy;
    if (policy_text !== undefined && !policies.includes(policy_text as RetentionPolicy)) {
      throw new UsageError(`--policy must be drop-acked or drop-oldest, got ${JSON.stringify(policy_text)}`);
    }
    const policy = policy_text as RetentionPolicy | undefined;
    const dry_run = values["dry-run"] === true;
    const max_bytes = optional_int(values, "max-bytes", 1);
    const json = values.json === true;
    const has_admin = values.url !== undefined || values.config !== undefined;
    const config = typeof values.config === "string" ? load_config(values.config) : null;
    const dir = typeof values["data-dir"] === "string" && values["data-dir"] !== "" ? values["data-dir"] : config?.data_dir;
    // Offline, the budget and policy come from --max-bytes and --policy, else from the config's retention section.
    const budget = max_bytes ?? config?.retention?.max_bytes;
    if (dir === undefined && values.url === undefined) throw new UsageError("give --data-dir DIR (or --config FILE of the replica)");
    if (policy === "drop-oldest" && budget === undefined && !has_admin) {
      throw new UsageError("drop-oldest prunes down to a budget: give --max-bytes N (offline), or --url/--config to prune through the running replica with its retention.max_bytes");
    }
    const print = (report: PruneReport, how: string, extra: string[]) => {
      if (json) io.out(`${JSON.stringify({ ...report, via: how })}\n`);
      else io.out(`${how}\n${prune_report_text(report)}${extra.map((l) => `${l}\n`).join("")}`);
    };

    let in_use: string | null = null;
    if (dir !== undefined) {
      const log = await open_unless_in_use(dir, config?.log.segment_size_bytes, budget, dry_run);
      if (typeof log === "string") in_use = log;
      else {
        const log_lock = dry_run_locks.get(log) ?? null;
        try {
          const chosen = policy ?? config?.retention?.policy ?? "drop-acked";
          if (chosen === "drop-oldest" && budget === undefined) {
            throw new UsageError("drop-oldest prunes down to a budget: give --max-bytes N (no replica runs on this directory, so there is no budget to ask for)");
          }
          const result = await log.prune({ policy: chosen, dry_run });
          const report = prune_report(result, chosen, log.first_pos, { used_bytes: log.used_bytes, max_bytes: budget ?? null });
          const extra: string[] = [];
          if (chosen === "drop-acked" && report.total.segments === 0) {
            extra.push(
              "offline: sync is not running, so no upstream's acknowledgement is known here and drop-acked prunes nothing (as expected). " +
                "Prune through the running replica (interlog prune --config FILE) once its upstreams hold the data, or delete the oldest segments anyway with --policy drop-oldest --max-bytes N.",
            );
          }
          print(report, `offline prune of ${dir} (no replica runs on it)`, extra);
          return exit_ok;
        } finally {
          await log.close();
          log_lock?.release();
        }
      }
    }

    // A replica runs on DIR (or only --url was given): ask it.
    if (!has_admin) {
      io.err(
        `interlog prune: ${in_use}.\nA replica runs on ${dir}: prune through its admin API with --config FILE or --url URL (it knows what its upstreams acknowledged), or stop it first. Nothing was pruned.\n`,
      );
      return exit_failed;
    }
    if (max_bytes !== undefined) throw new UsageError("--max-bytes is for an offline prune; a running replica prunes down to its own retention.max_bytes");
    const target = admin_target(values);
    try {
      if (dir !== undefined) {
        // The replica at that address must be the one owning DIR: pruning another replica's log by mistake is not undoable.
        const own = await Log.open({ dir, read_only: true });
        const id = own.id;
        await own.close();
        const status = (await (await admin_fetch(target, "/api/status")).json()) as { id?: string };
        if (status.id !== id) {
          io.err(`interlog prune: the replica at ${target.url} is ${status.id}, but ${dir} belongs to ${id}; give the --url or --config of the replica running on ${dir}. Nothing was pruned.\n`);
          return exit_failed;
        }
      }
      const body: { dry_run: boolean; policy?: RetentionPolicy } = { dry_run };
      if (policy !== undefined) body.policy = policy;
      const res = await admin_fetch(target, "/api/prune", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const report = (await res.json()) as PruneReport;
      print(report, `prune through the running replica at ${target.url}${dir === undefined ? "" : ` (${dir} is in use)`}`, []);
      return exit_ok;
    } catch (err) {
      if (!(err instanceof AdminUnreachable)) throw err;
      io.err(`interlog prune: ${err.message}. Nothing was pruned.\n`);
      return exit_failed;
    }
  },
};

/** The directory lock a dry run holds around its read-only log (so no replica starts meanwhile). */
const dry_run_locks = new WeakMap<Log, { release(): void }>();

/**
 * The log, or the lock holder's message when a replica runs on `dir`. A dry
 * run takes the directory's lock and opens the log read-only: it writes
 * nothing (no recovery repair, no epoch bump, no spare). Otherwise the log
 * is opened for writing with retention "reject": a budget given here only
 * sizes drop-oldest's prune, and the log must not start pruning on its own.
 */
async function open_unless_in_use(dir: string, segment_size_bytes: number | undefined, max_bytes: number | undefined, dry_run: boolean): Promise<Log | string> {
  const retention = max_bytes === undefined ? null : { max_bytes, policy: "reject" as const, reserve_own_bytes: 0 };
  try {
    if (dry_run) {
      if (!fs.existsSync(path.join(dir, "replica.json"))) throw new UsageError(`${dir} holds no InterLog data directory`);
      const lock = node_file_io.lock(path.join(dir, "lock"));
      try {
        const log = await Log.open({ dir, read_only: true, segment_size_bytes: segment_size_bytes ?? segment_size_of(dir), retention });
        dry_run_locks.set(log, lock);
        return log;
      } catch (err) {
        lock.release();
        throw err;
      }
    }
    return await Log.open({ dir, create: false, segment_size_bytes: segment_size_bytes ?? segment_size_of(dir), retention });
  } catch (err) {
    if (is_interlog_error(err, "DATA_DIR_LOCKED")) return err.message;
    throw err;
  }
}

/** The size of the newest segment file (the log writes new ones at that size), or the default when none is found. */
function segment_size_of(dir: string): number {
  try {
    const segments = path.join(dir, "segments");
    const names = fs.readdirSync(segments).filter((n) => /^\d+\.seg$/.test(n)).sort();
    const last = names[names.length - 1];
    if (last !== undefined) return fs.statSync(path.join(segments, last)).size;
  } catch {
    // No segments yet: Log.open says what is wrong with the directory.
  }
  return segment_size_default_bytes;
}
