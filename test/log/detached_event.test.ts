import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { Log } from "../../src/log/log.ts";
import { temp_dir } from "../support/temp_dir.ts";

describe("a detached event", () => {
  test("keeps its bytes when the segment file under it is rewritten (a recycled file), while a view shows the new bytes", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir, segment_size_bytes: 64 * 1024 });
    await log.write(new TextEncoder().encode("the original payload"));
    const view = log.read(0, 1)[0];
    const copy = view.detached();
    expect([copy.id, copy.pos, copy.time_ms, copy.crc, copy.signed]).toEqual([view.id, view.pos, view.time_ms, view.crc, view.signed]);
    // What a recycled file's next use does to the bytes a reader still holds: they change under the mapping.
    const file = path.join(dir, "segments", fs.readdirSync(path.join(dir, "segments")).find((n) => n.endsWith(".seg")) as string);
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, new TextEncoder().encode("SOMETHING ELSE ENTIR"), 0, 20, 40);
    fs.closeSync(fd);
    expect(new TextDecoder().decode(view.payload)).toBe("SOMETHING ELSE ENTIR");
    expect(new TextDecoder().decode(copy.payload)).toBe("the original payload");
    await log.close();
  });
});
