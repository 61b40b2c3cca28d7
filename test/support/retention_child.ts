/**
 * A process that appends and prunes as fast as it can, for kill -9 tests
 * (test/log/retention_month.test.ts): `bun retention_child.ts DIR SEGMENT_BYTES`.
 * Drop-acked under a budget of four segments, with an upstream that holds
 * everything durable but the last 300 events, so it prunes at every
 * rotation. After each durable batch it prints `durable SEQ first_pos POS`:
 * what it may call durable, and the first position held (moved only after
 * the pruned state is durable).
 */
import { is_interlog_error } from "../../src/lib/errors.ts";
import { Log } from "../../src/log/log.ts";
import { acks_from } from "./manual_acks.ts";
import { payload_for } from "./retention_fill.ts";

const [dir, segment_arg] = process.argv.slice(2);
const segment_size_bytes = Number(segment_arg);
const log = await Log.open({ dir, segment_size_bytes, sync: "always", retention: { max_bytes: 4 * segment_size_bytes, policy: "drop-acked", reserve_own_bytes: 0 } });
log.set_acks(acks_from((origin) => Math.max(0, log.durable_held(origin) - 300)));
const me = log.id;
for (;;) {
  const seq0 = log.held(me) + 1;
  const payloads = Array.from({ length: 1 + (seq0 % 7) }, (_, i) => payload_for(seq0 + i, 100 + ((seq0 + i) % 200)));
  try {
    await log.write(payloads);
  } catch (err) {
    if (!is_interlog_error(err, "LOG_FULL")) throw err;
    await log.maintain();
    continue;
  }
  process.stdout.write(`durable ${log.durable_held(me)} first_pos ${log.first_pos}\n`);
}
