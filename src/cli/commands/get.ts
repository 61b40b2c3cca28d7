import { pruned_message } from "../../admin/event_text.ts";
import { format_event_id, parse_event_id } from "../../log/ids.ts";
import { Log } from "../../log/log.ts";
import { event_json } from "../event_json.ts";
import { type Command, UsageError, exit_failed, exit_ok, required_string } from "../usage.ts";

export const get_command: Command = {
  name: "get",
  help: `interlog get --data-dir DIR --id ORIGIN:SEQ

Prints the event ORIGIN:SEQ as one JSON object {"pos","id","origin","seq",
"time","payload"} (payload in base64). Exit 1 with a message when this log
does not hold it, or held it and retention pruned it. Works next to a running
replica (opens read-only).`,
  options: { "data-dir": { type: "string" }, id: { type: "string" } },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    let id: { origin: string; seq: number };
    try {
      id = parse_event_id(required_string(values, "id"));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError((err as Error).message);
    }
    const { origin, seq } = id;
    const name = format_event_id(origin, seq);
    const log = await Log.open({ dir, read_only: true });
    try {
      if (log.is_pruned(origin, seq)) {
        io.err(`interlog get: ${pruned_message(name, origin, log.pruned_through(origin), log.first_pos)}\n`);
        return exit_failed;
      }
      const event = log.get(origin, seq);
      if (event === null) {
        const held = log.held(origin);
        io.err(`interlog get: ${held === 0 ? `this log holds no event of origin ${origin}` : `this log holds no event ${name}: it holds origin ${origin} up to seq ${held}`}\n`);
        return exit_failed;
      }
      io.out(`${JSON.stringify(event_json(event))}\n`);
      return exit_ok;
    } finally {
      await log.close();
    }
  },
};
