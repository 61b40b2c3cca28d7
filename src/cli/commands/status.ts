import { Log } from "../../log/log.ts";
import { type Command, UsageError, exit_failed, exit_ok } from "../usage.ts";
import { AdminUnreachable, admin_fetch, admin_target } from "../admin_client.ts";

export const status_command: Command = {
  name: "status",
  help: `interlog status --data-dir DIR
interlog status (--url URL | --config FILE) [--token-env NAME]

With --data-dir: prints {"id","name","public_key","events","bytes","segments",
"disk_bytes","free_bytes","vv"} from the files (opens read-only, works next to a running
replica). With --url or --config: asks the running replica's admin API
(GET /api/status: also sync state and peers); the bearer token comes from
$INTERLOG_ADMIN_TOKEN (or --token-env NAME, or the config's admin.token_env).`,
  options: { "data-dir": { type: "string" }, url: { type: "string" }, config: { type: "string" }, "token-env": { type: "string" } },
  async run(values, _positionals, io) {
    if (values.url !== undefined || values.config !== undefined) {
      try {
        const res = await admin_fetch(admin_target(values), "/api/status");
        io.out(`${JSON.stringify(await res.json())}\n`);
        return exit_ok;
      } catch (err) {
        if (!(err instanceof AdminUnreachable)) throw err;
        io.err(`interlog status: ${err.message}\n`);
        return exit_failed;
      }
    }
    const dir = values["data-dir"];
    if (typeof dir !== "string" || dir === "") throw new UsageError("give --data-dir DIR, or --url/--config of a running replica");
    const log = await Log.open({ dir, read_only: true });
    try {
      const status = {
        id: log.id,
        name: log.name,
        created: log.created,
        public_key: log.public_key,
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
