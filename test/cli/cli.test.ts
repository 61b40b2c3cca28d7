import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { id_of_public_key } from "../../src/log/replica_key.ts";
import { interlog_command } from "../support/serve_process.ts";
import { temp_dir } from "../support/temp_dir.ts";

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(args: string[], stdin?: string | Uint8Array): Run {
  const input = stdin === undefined ? "ignore" : typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  const r = Bun.spawnSync([...interlog_command(), ...args], { stdin: input });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("interlog CLI", () => {
  test("init, append, read, status and verify work together", () => {
    const dir = path.join(temp_dir(), "data");
    const init = run(["init", "--data-dir", dir, "--name", "truck-7"]);
    expect(init.code).toBe(0);
    const { id, name } = JSON.parse(init.out);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(name).toBe("truck-7");
    expect(JSON.parse(run(["init", "--data-dir", dir]).out).id).toBe(id); // idempotent
    // The id is bound to the replica's key: the public key in replica.json, the private seed in replica.key (owner only).
    const replica = JSON.parse(fs.readFileSync(path.join(dir, "replica.json"), "utf8"));
    expect(replica).toMatchObject({ id, name: "truck-7", format: 3 });
    expect(id_of_public_key(Buffer.from(replica.public_key, "hex"))).toBe(id);
    expect(fs.statSync(path.join(dir, "replica.key")).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(dir, "replica.key"), "utf8")).toMatch(/^[0-9a-f]{64}\n$/);

    const appended = run(["append", "--data-dir", dir, "--batch", "2"], "alpha\nbeta\n\ngamma");
    expect(appended.code).toBe(0);
    expect(appended.out.trim().split("\n")).toEqual([`${id}:1`, `${id}:2`, `${id}:3`, `${id}:4`]);

    const file = path.join(temp_dir(), "blob.bin");
    fs.writeFileSync(file, new Uint8Array([0, 1, 2, 10, 255]));
    expect(run(["append", "--data-dir", dir, "--file", file, "--sync", "never"]).out.trim()).toBe(`${id}:5`);

    const read = run(["read", "--data-dir", dir, "--from", "1", "--limit", "3"]);
    expect(read.code).toBe(0);
    const events = read.out.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.map((e) => [e.pos, e.id, Buffer.from(e.payload, "base64").toString()])).toEqual([
      [1, `${id}:2`, "beta"],
      [2, `${id}:3`, ""],
      [3, `${id}:4`, "gamma"],
    ]);
    expect(Object.keys(events[0]).sort()).toEqual(["id", "origin", "payload", "pos", "seq", "time"]);
    const blob = JSON.parse(run(["read", "--data-dir", dir, "--from", "4"]).out);
    expect(Buffer.from(blob.payload, "base64")).toEqual(Buffer.from([0, 1, 2, 10, 255]));

    const status = JSON.parse(run(["status", "--data-dir", dir]).out);
    expect(status).toMatchObject({ id, name: "truck-7", public_key: replica.public_key, events: 5, segments: 1, vv: { [id]: 5 } });
    expect(status.bytes).toBeGreaterThan(0);

    const verify = run(["verify", "--data-dir", dir]);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.out).ok).toBe(true);
  });

  test("verify exits 1 and names the first bad position after a bit flip", () => {
    const dir = path.join(temp_dir(), "data");
    run(["append", "--data-dir", dir], "one\ntwo\nthree\n");
    const segment = path.join(dir, "segments", "00000000000000000000.seg");
    const bytes = fs.readFileSync(segment);
    const second = bytes.indexOf(Buffer.from("two"));
    const fd = fs.openSync(segment, "r+");
    fs.writeSync(fd, new Uint8Array([bytes[second] ^ 4]), 0, 1, second);
    fs.closeSync(fd);
    const verify = run(["verify", "--data-dir", dir]);
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.out).first_bad.pos).toBe(1);
    expect(verify.err).toContain("first bad record at position 1");
  });

  test("a data directory of InterLog 0.2 (unsigned events) is refused with what to do, and left as it was", () => {
    const dir = path.join(temp_dir(), "data");
    fs.mkdirSync(dir);
    const old_replica = `${JSON.stringify({ id: "3f09c2a41b7e55d0", name: "truck-7", created: "2025-01-01T00:00:00.000Z" }, null, 2)}\n`;
    fs.writeFileSync(path.join(dir, "replica.json"), old_replica);
    for (const [args, stdin] of [
      [["status", "--data-dir", dir], undefined],
      [["read", "--data-dir", dir], undefined],
      [["verify", "--data-dir", dir], undefined],
      [["append", "--data-dir", dir], "one\n"],
      [["init", "--data-dir", dir], undefined],
    ] as const) {
      const r = run([...args], stdin);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.err).toContain("DATA_DIR_OLD_FORMAT");
      expect(r.err).toContain("written by InterLog 0.2");
      expect(r.err).toContain("interlog init --data-dir NEW_DIR");
    }
    expect(fs.readFileSync(path.join(dir, "replica.json"), "utf8")).toBe(old_replica);
    expect(fs.existsSync(path.join(dir, "replica.key"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "segments"))).toBe(false);
  });

  test("a replica.key that is not the one replica.json names is refused, not used to sign", () => {
    const root = temp_dir();
    const [a, b] = [path.join(root, "a"), path.join(root, "b")];
    expect(run(["init", "--data-dir", a]).code).toBe(0);
    expect(run(["init", "--data-dir", b]).code).toBe(0);
    const own_key = fs.readFileSync(path.join(a, "replica.key"));
    fs.copyFileSync(path.join(b, "replica.key"), path.join(a, "replica.key"));
    const r = run(["append", "--data-dir", a], "one\n");
    expect(r.code).toBe(1);
    expect(r.err).toContain("DATA_DIR_INVALID");
    expect(r.err).toContain("does not belong to replica");
    // Nothing was written: with its own key back, the directory holds no event.
    fs.writeFileSync(path.join(a, "replica.key"), own_key, { mode: 0o600 });
    expect(JSON.parse(run(["status", "--data-dir", a]).out).events).toBe(0);
  });

  test("usage errors exit 2 with help; failed operations exit 1; --help works everywhere", () => {
    expect(run([]).code).toBe(2);
    expect(run(["frobnicate"]).code).toBe(2);
    expect(run(["append"]).err).toContain("--data-dir is required");
    expect(run(["append"]).code).toBe(2);
    expect(run(["read", "--data-dir", "x", "--limit", "-3"]).code).toBe(2);
    expect(run(["append", "--data-dir", "x", "--sync", "sometimes"]).code).toBe(2);
    expect(run(["read", "--data-dir", "x", "--bogus"]).code).toBe(2);
    const missing = run(["read", "--data-dir", path.join(temp_dir(), "none")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("DATA_DIR_INVALID");
    for (const command of ["init", "serve", "append", "read", "tail", "status", "verify", "version"]) {
      const help = run([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.out).toContain(`interlog ${command}`);
    }
    expect(run(["--help"]).out).toContain("commands:");
    expect(JSON.parse(run(["version"]).out)).toMatchObject({ version: expect.any(String), target: `${process.platform}-${process.arch}` });
  });

  test("a second appender on the same directory gets DATA_DIR_LOCKED and exit 1", async () => {
    const dir = path.join(temp_dir(), "data");
    const holder = Bun.spawn([...interlog_command(), "append", "--data-dir", dir], { stdin: "pipe", stdout: "pipe" });
    holder.stdin.write("first\n");
    await holder.stdin.flush();
    const reader = holder.stdout.getReader();
    await reader.read(); // its id: it holds the directory now
    const second = run(["append", "--data-dir", dir], "second\n");
    expect(second.code).toBe(1);
    expect(second.err).toContain("DATA_DIR_LOCKED");
    expect(second.err).toContain(`pid ${holder.pid}`);
    holder.stdin.end();
    expect(await holder.exited).toBe(0);
  });
});

describe("interlog append --batch", () => {
  test("every N lines form one atomic batch, however stdin is chunked", async () => {
    const dir = path.join(temp_dir(), "data");
    const proc = Bun.spawn([...interlog_command(), "append", "--data-dir", dir, "--batch", "3"], { stdin: "pipe", stdout: "pipe" });
    // Once the log is open (its lock exists), one line per write with pauses: the lines reach the process in separate chunks.
    for (let i = 0; i < 200 && !fs.existsSync(path.join(dir, "segments")); i++) await Bun.sleep(10);
    await Bun.sleep(50);
    for (const line of ["a", "b", "c", "d", "e", "f", "g"]) {
      proc.stdin.write(`${line}\n`);
      await proc.stdin.flush();
      await Bun.sleep(50);
    }
    await proc.stdin.end();
    expect(await proc.exited).toBe(0);
    const out = (await new Response(proc.stdout).text()).trim().split("\n");
    expect(out.length).toBe(7);
    const { Log } = await import("../../src/log/log.ts");
    const log = await Log.open({ dir, read_only: true });
    const batch_ends = log.read(0, 100).map((e) => (e.flags & 1) === 1);
    await log.close();
    // Batches of 3, 3 and the 1 line left at the end of input.
    expect(batch_ends).toEqual([false, false, true, false, false, true, true]);
  });
});
