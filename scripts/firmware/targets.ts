import fs from "node:fs";

/**
 * The machines a firmware bundle is built for. Each compiled binary is the
 * Bun runtime of that target with our bundle appended; the runtime comes from
 * the npm package Bun itself publishes for it.
 */
export interface FirmwareTarget {
  /** Our name, used in bundle file names and printed by `interlog version`. */
  name: string;
  /** `bun build --target` value. */
  bun_target: string;
  /** npm package holding `bin/bun` for this target. */
  runtime_package: string;
  /** ELF e_machine of the runtime, checked before it is used. */
  elf_machine: number;
  /** The ELF program interpreter the binary needs on the device. */
  interpreter: string;
  libc: "glibc" | "musl";
  /** glibc and musl builds of one architecture: only glibc ones are required; musl ones are built when npm has them. */
  required: boolean;
}

const elf_machine_x86_64 = 0x3e;
const elf_machine_aarch64 = 0xb7;

export const firmware_targets: readonly FirmwareTarget[] = [
  {
    name: "linux-x64",
    bun_target: "bun-linux-x64",
    runtime_package: "@oven/bun-linux-x64",
    elf_machine: elf_machine_x86_64,
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    libc: "glibc",
    required: true,
  },
  {
    name: "linux-arm64",
    bun_target: "bun-linux-arm64",
    runtime_package: "@oven/bun-linux-aarch64",
    elf_machine: elf_machine_aarch64,
    interpreter: "/lib/ld-linux-aarch64.so.1",
    libc: "glibc",
    required: true,
  },
  {
    name: "linux-x64-musl",
    bun_target: "bun-linux-x64-musl",
    runtime_package: "@oven/bun-linux-x64-musl",
    elf_machine: elf_machine_x86_64,
    interpreter: "/lib/ld-musl-x86_64.so.1",
    libc: "musl",
    required: false,
  },
  {
    name: "linux-arm64-musl",
    bun_target: "bun-linux-arm64-musl",
    runtime_package: "@oven/bun-linux-aarch64-musl",
    elf_machine: elf_machine_aarch64,
    interpreter: "/lib/ld-musl-aarch64.so.1",
    libc: "musl",
    required: false,
  },
];

export function find_target(name: string): FirmwareTarget {
  const target = firmware_targets.find((t) => t.name === name);
  if (target === undefined) throw new Error(`unknown target "${name}"; targets: ${firmware_targets.map((t) => t.name).join(", ")}`);
  return target;
}

/** The target of the Bun running this script: its architecture, and musl when its runtime asks for the musl loader. */
export function host_target(): FirmwareTarget {
  if (process.platform !== "linux") throw new Error(`firmware targets are Linux only; this is ${process.platform}`);
  const arch = process.arch === "x64" ? "x64" : process.arch === "arm64" ? "arm64" : null;
  if (arch === null) throw new Error(`no firmware target for the ${process.arch} architecture`);
  return find_target(runs_on_musl() ? `linux-${arch}-musl` : `linux-${arch}`);
}

function runs_on_musl(): boolean {
  // The program interpreter path sits in the first page of the executable.
  const head = Buffer.alloc(4096);
  const fd = fs.openSync(process.execPath, "r");
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.includes("/lib/ld-musl-");
}

/** The e_machine field of an ELF file, or null when it is not a 64-bit little-endian ELF. */
export function elf_machine_of(file: string): number | null {
  const head = Buffer.alloc(20);
  const fd = fs.openSync(file, "r");
  try {
    if (fs.readSync(fd, head, 0, head.length, 0) < head.length) return null;
  } finally {
    fs.closeSync(fd);
  }
  const is_elf64_le = head[0] === 0x7f && head.toString("latin1", 1, 4) === "ELF" && head[4] === 2 && head[5] === 1;
  return is_elf64_le ? head.readUInt16LE(18) : null;
}
