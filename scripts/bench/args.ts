/** Command line of `bun run bench`. */
export interface BenchArgs {
  json: boolean;
  filter: string;
  /** Exact names given with --only (the opt-in benchmarks run only so); empty: every default benchmark that matches --filter. */
  only: string[];
  /** Directory to run in (a temp dir is made inside it); null = the OS temp dir. */
  dir: string | null;
  list: boolean;
  help: boolean;
}

export const bench_usage = `usage: bun run bench [--json] [--filter PREFIX] [--only NAME[,NAME...]] [--dir D] [--list]

Measures the storage engine against baselines taken in the same run on the same disk.
  --json           print only a JSON array of {"name","value","unit","baseline","ratio"} on stdout
  --filter PREFIX  run only the benchmarks whose names start with PREFIX
  --only NAMES     run exactly these benchmarks (comma-separated, repeatable), including the
                   opt-in ones that a plain run skips (aws_iot_catchup_week: about 5 minutes)
  --dir D          run on the disk holding D (a temporary directory is made inside it and removed)
  --list           print the benchmark names and exit
Progress goes to stderr.`;

export class UsageError extends Error {}

export function parse_bench_args(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = { json: false, filter: "", only: [], dir: null, list: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === "--json") args.json = true;
    else if (arg === "--filter") args.filter = value();
    else if (arg.startsWith("--filter=")) args.filter = arg.slice("--filter=".length);
    else if (arg === "--only") args.only.push(...value().split(",").filter((n) => n !== ""));
    else if (arg.startsWith("--only=")) args.only.push(...arg.slice("--only=".length).split(",").filter((n) => n !== ""));
    else if (arg === "--dir") args.dir = value();
    else if (arg.startsWith("--dir=")) args.dir = arg.slice("--dir=".length);
    else if (arg === "--list") args.list = true;
    else if (arg === "--help" || arg === "-h") args.help = true;
    else throw new UsageError(`unknown argument ${arg}`);
  }
  return args;
}
