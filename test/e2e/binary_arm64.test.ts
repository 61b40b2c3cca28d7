import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, test } from "bun:test";
import { ServeProcess, write_config } from "../support/serve_process.ts";
import { arm64, binary_builds, file_temp_dirs, run } from "./binary_fixture.ts";

/**
 * The linux-arm64 binary, run on this x64 machine under qemu-user. A missing
 * qemu or arm64 C library fails the test with the packages to install: a
 * firmware target that is never run is not tested.
 */
const install_hint =
  "apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross (see .ci/run), " +
  "or dpkg --add-architecture arm64 && apt-get update && apt-get install qemu-user-static libc6:arm64 libstdc++6:arm64";

/** qemu-aarch64 and the library path (-L) where the arm64 loader and libraries are found. */
function qemu_command(): string[] {
  if (process.arch === "arm64") return [];
  const dirs = (process.env.PATH ?? "").split(":").filter((d) => d !== "");
  const qemu = ["qemu-aarch64-static", "qemu-aarch64"].flatMap((name) => dirs.map((d) => path.join(d, name))).find((f) => fs.existsSync(f));
  if (qemu === undefined) throw new Error(`qemu-user is not installed, so the arm64 binary cannot be run: ${install_hint}`);
  const loader = "lib/ld-linux-aarch64.so.1";
  const libstdcxx = ["lib/libstdc++.so.6", "lib/aarch64-linux-gnu/libstdc++.so.6", "usr/lib/aarch64-linux-gnu/libstdc++.so.6"];
  for (const root of ["/usr/aarch64-linux-gnu", "/"]) {
    if (fs.existsSync(path.join(root, loader)) && libstdcxx.some((f) => fs.existsSync(path.join(root, f)))) return [qemu, "-L", root];
  }
  throw new Error(`the arm64 C and C++ libraries (loader /${loader}, libstdc++.so.6) are missing: ${install_hint}`);
}

const binaries = binary_builds();
const temp_dir = file_temp_dirs();
let interlog: string[] = [];
beforeAll(async () => {
  const qemu = qemu_command();
  interlog = [...qemu, await binaries.get(arm64())];
}, 180_000);

const payloads_of = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .map((line) => Buffer.from((JSON.parse(line) as { payload: string }).payload, "base64").toString());

describe("the linux-arm64 binary under qemu-user", () => {
  test("version, init, append, read and verify", async () => {
    const version = await run([...interlog, "version"]);
    expect(version.stderr).toBe("");
    expect(JSON.parse(version.stdout)).toMatchObject({ target: "linux-arm64" });

    const data = path.join(temp_dir(), "data");
    const init = await run([...interlog, "init", "--data-dir", data, "--name", "arm-board"]);
    expect(init.code).toBe(0);
    const { id } = JSON.parse(init.stdout) as { id: string; name: string };
    expect(id).toMatch(/^[0-9a-f]{16}$/);

    const lines = Array.from({ length: 1000 }, (_, i) => `fix ${i}`);
    const append = await run([...interlog, "append", "--data-dir", data, "--batch", "100"], { stdin: `${lines.join("\n")}\n` });
    expect(append.code).toBe(0);
    expect(append.stdout.trim().split("\n")).toEqual(lines.map((_, i) => `${id}:${i + 1}`));

    const read = await run([...interlog, "read", "--data-dir", data]);
    expect(read.code).toBe(0);
    expect(payloads_of(read.stdout)).toEqual(lines);

    const verify = await run([...interlog, "verify", "--data-dir", data]);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, events: 1000, first_bad: null });
  });

  test("serve takes an append over HTTP and stops cleanly on SIGTERM", async () => {
    const dir = temp_dir();
    const config = write_config(dir, "interlog.yaml", `name: arm-board\ndata_dir: ./data\nadmin:\n  listen: 127.0.0.1:0\n`);
    const replica = await ServeProcess.start(config, { command: interlog });
    try {
      const res = await replica.fetch("/api/events", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "from arm64" });
      expect(res.status).toBe(201);
      expect((await (await replica.fetch("/readyz")).json()) as unknown).toEqual({ ok: true, reasons: [] });
    } finally {
      expect(await replica.stop()).toBe(0);
    }
    const read = await run([...interlog, "read", "--data-dir", path.join(dir, "data")]);
    expect(payloads_of(read.stdout)).toEqual(["from arm64"]);
  });
});
