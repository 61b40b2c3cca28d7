import { Log } from "../../log/log.ts";
import { type Command, exit_failed, exit_ok, required_string } from "../usage.ts";

export const verify_command: Command = {
  name: "verify",
  help: `interlog verify --data-dir DIR

Re-reads every segment: record checksums, seq order, that every event is
covered by its origin's signature (each signed range's proof checked against
the origin's public key, which its id is the hash of), and that the unused
space is zero. Prints a JSON report. Exit 0 when all is well, 1 with
"first_bad":{"pos",...} otherwise. Opens read-only, so it repairs nothing:
a torn tail from a crash is reported here and dropped at the next start.`,
  options: { "data-dir": { type: "string" } },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    const log = await Log.open({ dir, read_only: true });
    try {
      const report = log.verify();
      const line = `${JSON.stringify(report)}\n`;
      if (report.ok) {
        io.out(line);
        return exit_ok;
      }
      io.out(line);
      io.err(`verify: first bad record at position ${report.first_bad?.pos}: ${report.first_bad?.reason}\n`);
      return exit_failed;
    } finally {
      await log.close();
    }
  },
};
