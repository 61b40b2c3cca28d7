import { describe, expect, test } from "bun:test";
import type { VvMessage } from "../../src/sync/messages.ts";
import { TestNet, dec, enc } from "./net.ts";

/**
 * A replica's vv claims its own events only as far as it has pushed them
 * live: a peer that saw the claim before the push asked for events already
 * on their way and got them twice (about 1 % of a live sync's events).
 */
describe("the own entry of the vv follows the live push", () => {
  test("with a backlog of many push bursts, no vv claims an own event not yet pushed; the peer asks for nothing, gets nothing twice, and the last vv claims everything", async () => {
    const net = new TestNet();
    const a = await net.add({ push_burst_bytes: 16 * 1024 });
    const b = await net.add();
    net.connect(a);
    net.connect(b);
    await net.run();
    // One durable batch of about 40 bursts: pushed a burst per on_local and tick, while vvs go out every 200 ms.
    a.log.append_batch(Array.from({ length: 2000 }, (_, i) => enc(`a-${i + 1}`.padEnd(256, "."))));
    await a.log.durable();
    await net.run();
    expect(b.log.held(a.id)).toBe(2000);
    expect([...b.log.events_after(a.id, 1990)].map((e) => dec(e.payload).replace(/\.+$/, ""))).toEqual(Array.from({ length: 10 }, (_, i) => `a-${1991 + i}`));
    let pushed = 0;
    let last_claim = 0;
    let vvs_during_backlog = 0;
    for (const s of a.sent) {
      if (s.message.kind === "events") {
        const region = s.message.events;
        // The run header's first_seq (u64 at 8) plus its count (u32 at 16) - 1: each push here is one run of a's events.
        const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
        pushed = view.getUint32(8, true) + view.getUint32(16, true) - 1;
      } else if (s.message.kind === "vv") {
        last_claim = (s.message as VvMessage).vv.get(a.id) ?? 0;
        expect(last_claim).toBeLessThanOrEqual(pushed);
        if (pushed > 0 && pushed < 2000) vvs_during_backlog++;
      } else if (s.message.kind === "entry" && s.message.origin === a.id) {
        expect(s.message.seq).toBeLessThanOrEqual(pushed);
      }
    }
    expect(vvs_during_backlog).toBeGreaterThan(0); // the claim was published while the push was behind
    expect(last_claim).toBe(2000);
    expect(b.rep.counters.wants_sent).toBe(0);
    expect(b.rep.counters.events_duplicate).toBe(0);
  });
});
