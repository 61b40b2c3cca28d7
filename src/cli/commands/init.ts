import { Log } from "../../log/log.ts";
import { type Command, exit_ok, required_string } from "../usage.ts";

export const init_command: Command = {
  name: "init",
  help: `interlog init --data-dir DIR [--name NAME]

Creates DIR (and its first segment) if needed and prints {"id","name"}.
On an existing data directory it prints the id it already has.`,
  options: { "data-dir": { type: "string" }, name: { type: "string" } },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    const log = await Log.open({ dir, name: typeof values.name === "string" ? values.name : "" });
    io.out(`${JSON.stringify({ id: log.id, name: log.name })}\n`);
    await log.close();
    return exit_ok;
  },
};
