import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { frame_crc_compute } from "../../src/log/frame.ts";
import { Log } from "../../src/log/log.ts";
import { Origin } from "../support/origin.ts";
import { enc, temp_dir } from "../support/temp_dir.ts";

const script = path.join(import.meta.dir, "..", "..", "scripts", "check-event.ts");

function check(dir: string, id: string, out?: string): { code: number; steps: Record<string, unknown>[] } {
  const r = Bun.spawnSync([process.execPath, script, "--data-dir", dir, "--id", id, ...(out === undefined ? [] : ["--out", out])]);
  const steps = r.stdout
    .toString()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code: r.exitCode ?? -1, steps };
}

describe("checking an event's signature by hand (README, scripts/check-event.ts)", () => {
  test("an event held from another origin checks out step by step, and openssl agrees on the same signature", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir });
    const other = await Origin.open();
    log.append_batch([enc("mine 1"), enc("mine 2")]);
    log.accept_frames(other.write("theirs 1", "theirs 2", "theirs 3"));
    await log.close();
    await other.close();
    const out = temp_dir();
    const r = check(dir, `${other.id}:2`, out);
    expect(r.code).toBe(0);
    expect(r.steps.map((s) => [s.step, s.ok])).toEqual([
      ["1 find the signed frame", true],
      ["2 the id is sha256(public key)[0..8]", true],
      ["3 sha256 of the range", undefined],
      ["4 the signature", true],
    ]);
    expect(r.steps[0].range).toBe(`${other.id}:1..3`);
    const openssl = execFileSync("openssl", ["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", "pub.pem", "-in", "message.bin", "-sigfile", "sig.bin"], { cwd: out }).toString();
    expect(openssl).toContain("Signature Verified Successfully");
    // Its own events check the same way.
    expect(check(dir, `${log.id}:1`).code).toBe(0);
  });

  test("a payload byte changed on disk, its crc made good, fails at the signature", async () => {
    const dir = temp_dir();
    const log = await Log.open({ dir });
    log.append_batch([enc("amount 100"), enc("amount 200")]);
    const id = log.id;
    await log.close();
    const seg_dir = path.join(dir, "segments");
    const file = path.join(seg_dir, fs.readdirSync(seg_dir).filter((f) => f.endsWith(".seg"))[0]);
    const bytes = new Uint8Array(fs.readFileSync(file));
    const at = Buffer.from(bytes).indexOf(Buffer.from("amount 100"));
    bytes[at + 7] = "9".charCodeAt(0);
    const view = new DataView(bytes.buffer);
    view.setUint32(at - 40 + 4, frame_crc_compute(bytes, at - 40, view.getUint32(at - 40, true)), true);
    fs.writeFileSync(file, bytes);
    const r = check(dir, `${id}:1`);
    expect(r.code).toBe(1);
    expect(r.steps.at(-1)).toEqual({ step: "4 the signature", ok: false });
  });
});
