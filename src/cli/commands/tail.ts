import { type Command, exit_failed, exit_ok, optional_int } from "../usage.ts";
import { AdminUnreachable, admin_fetch, admin_target } from "../admin_client.ts";

export const tail_command: Command = {
  name: "tail",
  help: `interlog tail (--url URL | --config FILE) [--from POS] [--token-env NAME]

Connects to a running replica's admin API (GET /api/events/stream) and prints
each durable event as a JSON line {"pos","id","origin","seq","time","payload"}
as it arrives, until interrupted. Without --from it starts at the end; a
--from below the first position held (retention pruned the events before it)
starts there, with a note on stderr.
The bearer token comes from $INTERLOG_ADMIN_TOKEN (or --token-env NAME, or the
config's admin.token_env).`,
  options: { url: { type: "string" }, config: { type: "string" }, from: { type: "string" }, "token-env": { type: "string" } },
  async run(values, _positionals, io) {
    const target = admin_target(values);
    const from = optional_int(values, "from", 0);
    try {
      const res = await admin_fetch(target, `/api/events/stream${from === undefined ? "" : `?from=${from}`}`, {
        headers: { accept: "text/event-stream" },
      });
      if (res.body === null) throw new AdminUnreachable("the stream had no body");
      const decoder = new TextDecoder();
      let pending = "";
      for await (const chunk of res.body) {
        pending += decoder.decode(chunk, { stream: true });
        let end = pending.indexOf("\n\n");
        while (end >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          // The replica says so in a comment when retention pruned positions below --from: a note, stdout stays JSON lines.
          const pruned = /^: (events before position \d+ were pruned by retention); tail from position (\d+)$/m.exec(block);
          if (pruned !== null) io.err(`interlog tail: ${pruned[1]}; following from ${pruned[2]}\n`);
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trimStart())
            .join("\n");
          if (data !== "") io.out(`${data}\n`);
          end = pending.indexOf("\n\n");
        }
      }
      return exit_ok;
    } catch (err) {
      if (!(err instanceof AdminUnreachable)) throw err;
      io.err(`interlog tail: ${err.message}\n`);
      return exit_failed;
    }
  },
};
