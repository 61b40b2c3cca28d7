import fs from "node:fs";

const status_file = "/proc/self/status";

/** Resident memory of this process, in bytes, split as Linux reports it; anon = heap and buffers, file = mapped files (the log's segments). */
export interface Rss {
  rss_bytes: number;
  anon_bytes: number | null;
  file_bytes: number | null;
}

function status_kib(text: string, field: string): number | null {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return match === null ? null : Number(match[1]) * 1024;
}

export function rss_now(): Rss {
  try {
    const text = fs.readFileSync(status_file, "utf8");
    return {
      rss_bytes: status_kib(text, "VmRSS") ?? process.memoryUsage().rss,
      anon_bytes: status_kib(text, "RssAnon"),
      file_bytes: status_kib(text, "RssFile"),
    };
  } catch {
    return { rss_bytes: process.memoryUsage().rss, anon_bytes: null, file_bytes: null };
  }
}

export function mib(bytes: number | null): string {
  return bytes === null ? "?" : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
