import fs from "node:fs";
import { Log, type SyncMode, sync_modes } from "../../log/log.ts";
import { format_event_id } from "../../log/ids.ts";
import { type Command, UsageError, exit_ok, optional_int, required_string } from "../usage.ts";

const newline = 10;

export const append_command: Command = {
  name: "append",
  help: `interlog append --data-dir DIR [--sync always|interval|never] [--batch N] [--file F]

Reads payloads from stdin, one per line (the line's bytes without the newline),
and prints each event's id ORIGIN:SEQ on its own line once it is durable under
the sync mode (default always: fsynced). --batch N appends every N lines as one
atomic batch. --file F appends the whole file as one payload.`,
  options: {
    "data-dir": { type: "string" },
    sync: { type: "string" },
    batch: { type: "string" },
    file: { type: "string" },
  },
  async run(values, _positionals, io) {
    const dir = required_string(values, "data-dir");
    const sync = (values.sync ?? "always") as SyncMode;
    if (!sync_modes.includes(sync)) throw new UsageError(`--sync must be one of ${sync_modes.join(", ")}`);
    const batch = optional_int(values, "batch", 1) ?? 1;
    const file = typeof values.file === "string" ? values.file : undefined;
    const payload_of_file = file === undefined ? null : read_payload_file(file);
    const log = await Log.open({ dir, sync });
    try {
      if (payload_of_file !== null) {
        const [id] = await log.write(payload_of_file);
        io.out(`${id}\n`);
        return exit_ok;
      }
      let pending: Uint8Array[] = [];
      let printed_seq = log.held(log.id);
      const append_pending = () => {
        if (pending.length === 1) log.append(pending[0]);
        else if (pending.length > 1) log.append_batch(pending);
        pending = [];
      };
      // A batch is N lines however stdin happens to be chunked; only the end of input closes a short one.
      const report_durable = async () => {
        await log.durable();
        const last = log.held(log.id);
        const lines: string[] = [];
        for (let seq = printed_seq + 1; seq <= last; seq++) lines.push(format_event_id(log.id, seq));
        printed_seq = last;
        if (lines.length > 0) io.out(`${lines.join("\n")}\n`);
      };
      let carry: Uint8Array = new Uint8Array(0);
      for await (const chunk of Bun.stdin.stream()) {
        const bytes = carry.length === 0 ? chunk : concat(carry, chunk);
        let start = 0;
        for (let i = bytes.indexOf(newline); i >= 0; i = bytes.indexOf(newline, start)) {
          // Copy: the stream may reuse its chunk, and the log copies anyway.
          pending.push(bytes.slice(start, i));
          start = i + 1;
          if (pending.length >= batch) append_pending();
        }
        carry = bytes.slice(start);
        await report_durable();
      }
      if (carry.length > 0) pending.push(carry);
      append_pending();
      await report_durable();
      return exit_ok;
    } finally {
      await log.close();
    }
  },
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function read_payload_file(file: string): Uint8Array {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (err) {
    throw new UsageError(`cannot read --file ${file}: ${(err as Error).message}`);
  }
}
