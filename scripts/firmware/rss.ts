import fs from "node:fs";

/**
 * Where a process's resident memory is, from /proc/PID/smaps (Linux), in
 * MiB: the executable's own pages by kind, and anonymous memory (the
 * JavaScriptCore heap, malloc, stacks). A compiled Bun binary maps itself:
 * its machine code (r-x), its read-only data (r--: Bun's built-in modules'
 * source among it) and its data segment (rw-: the embedded bundle, source
 * and bytecode), each resident only where touched. Those file pages are
 * clean and shared, so the kernel can drop them under pressure; anonymous
 * memory it can only swap.
 */
export interface RssBreakdown {
  rss_mib: number;
  anon_mib: number;
  file_mib: number;
  binary_code_mib: number;
  binary_rodata_mib: number;
  /** The binary's writable segment: the embedded bundle (bytecode and source) and the runtime's data. */
  binary_data_mib: number;
  /** Proportional set size: shared pages split between the processes mapping them. */
  pss_mib: number;
}

const mib = (kib: number) => Number((kib / 1024).toFixed(1));

export function rss_breakdown(pid: number, binary: string): RssBreakdown {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  const kib = { code: 0, rodata: 0, data: 0, pss: 0 };
  let mapping: { perms: string; file: string } | null = null;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      mapping = { perms: header[1], file: header[2] };
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss !== null) kib.pss += Number(pss[1]);
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null || mapping === null || mapping.file !== binary) continue;
    const kind = mapping.perms.includes("x") ? "code" : mapping.perms.includes("w") ? "data" : "rodata";
    kib[kind] += Number(rss[1]);
  }
  return {
    rss_mib: mib(field("VmRSS")),
    anon_mib: mib(field("RssAnon")),
    file_mib: mib(field("RssFile")),
    binary_code_mib: mib(kib.code),
    binary_rodata_mib: mib(kib.rodata),
    binary_data_mib: mib(kib.data),
    pss_mib: mib(kib.pss),
  };
}

/** One line for a report: "RSS 60.2 MiB = anon 15.6 + binary code 33.2, rodata 5.8, data 3.5 + other files 2.1 (PSS 58.0)". */
export function describe_rss(b: RssBreakdown): string {
  const other = Number((b.file_mib - b.binary_code_mib - b.binary_rodata_mib - b.binary_data_mib).toFixed(1));
  return `anon ${b.anon_mib} + binary code ${b.binary_code_mib}, rodata ${b.binary_rodata_mib}, data ${b.binary_data_mib} + other files ${other} MiB (PSS ${b.pss_mib})`;
}
