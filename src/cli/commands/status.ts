import { Log } from "../../log/log.ts";
import { type Command, exit_ok, required_string } from "../usage.ts";

export const status_command: Command = {
  name: "status",
  summary: "print a data directory's id, size and version vector as JSON",
  help: `interlog status --data-dir DIR

Prints {"id","name","events","bytes","segments","disk_bytes","free_bytes","vv"}.
Works next to a running replica (opens read-only).`,
  options: { "data-dir": { type: "string" } },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    const log = await Log.open({ dir, read_only: true });
    try {
      const status = {
        id: log.id,
        name: log.name,
        created: log.created,
        events: log.count,
        bytes: log.bytes,
        segments: log.segment_count,
        disk_bytes: log.disk_bytes,
        free_bytes: log.free_disk_bytes(),
        vv: log.vv(),
      };
      io.out(`${JSON.stringify(status)}\n`);
      return exit_ok;
    } finally {
      await log.close();
    }
  },
};
