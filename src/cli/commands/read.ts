import { Log } from "../../log/log.ts";
import { type Command, exit_ok, optional_int, required_string } from "../usage.ts";
import { event_json } from "../event_json.ts";

export const read_command: Command = {
  name: "read",
  help: `interlog read --data-dir DIR [--from POS] [--limit N]

Prints one JSON object per event: {"pos","id","origin","seq","time","payload"}
with payload in base64 (and "rejected":true for quarantined synced events).
A --from below the first position held (retention pruned the events before
it) starts there, with a note on stderr. Works next to a running replica
(opens read-only).`,
  options: { "data-dir": { type: "string" }, from: { type: "string" }, limit: { type: "string" } },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    const from = optional_int(values, "from", 0) ?? 0;
    const limit = optional_int(values, "limit", 0) ?? Number.POSITIVE_INFINITY;
    const log = await Log.open({ dir, read_only: true });
    try {
      // stdout stays JSON lines; the gap goes to stderr.
      if (from < log.first_pos) io.err(`interlog read: events before position ${log.first_pos} were pruned by retention; reading from ${log.first_pos}\n`);
      let lines: string[] = [];
      let n = 0;
      for (const event of log.iterate(from)) {
        if (n >= limit) break;
        lines.push(JSON.stringify(event_json(event)));
        n++;
        if (lines.length >= 1000) {
          io.out(`${lines.join("\n")}\n`);
          lines = [];
        }
      }
      if (lines.length > 0) io.out(`${lines.join("\n")}\n`);
      return exit_ok;
    } finally {
      await log.close();
    }
  },
};
