/**
 * `npm run browser`: builds the browser replica (issue 15) into dist/browser:
 * app.js (the replica, src/browser/main.ts), ui.js (the page's logic),
 * sw.js (its service worker), index.html, and source maps. `serve` with
 * admin.app: true serves that directory at /app/.
 *
 *   bun scripts/browser.ts [--out-dir DIR]
 */
import fs from "node:fs";
import path from "node:path";
import type { BuildMetafile, BuildOutput, BunPlugin } from "bun";
import { browser_aliases } from "../src/browser/platform/aliases.ts";
import { format_bytes } from "../src/lib/units.ts";
import { repo_root } from "./firmware/compile.ts";
import { parse_script_args } from "./script_args.ts";

export const browser_out_dir_default = path.join(repo_root, "dist", "browser");
const page_dir = path.join(repo_root, "src", "browser", "page");
const app_entry_default = path.join(repo_root, "src", "browser", "main.ts");
/** The file mqtt's package.json names for browsers that import it (exports["."].browser.import); its Node build needs net and tls. */
const mqtt_browser_build = path.join(repo_root, "node_modules", "mqtt", "dist", "mqtt.esm.js");

export interface BrowserBuildOptions {
  /** The replica's entry; default src/browser/main.ts. The page's tests build around a stand-in. */
  app_entry?: string;
}

export interface BrowserBuild {
  /** Every file written (absolute paths), source maps included. */
  files: string[];
  /** Hash of the page's files; sw.js keeps them in a cache named by it. */
  build_id: string;
  /** Node modules app.js imports that Bun replaced with an empty stub: calls into them throw in the page. */
  warnings: string[];
}

/**
 * Resolves imports of the modules in `aliases` (paths relative to `root`,
 * see src/browser/platform/aliases.ts) to their browser twins. Only relative
 * `.ts` imports are looked at: that is how the project imports its own
 * modules. A twin's own import of the module it replaces is left alone.
 */
export function alias_plugin(root: string, aliases: Readonly<Record<string, string>>): BunPlugin {
  const table = new Map(Object.entries(aliases).map(([from, to]) => [path.resolve(root, from), path.resolve(root, to)]));
  return {
    name: "interlog-browser-aliases",
    setup(build) {
      build.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => {
        const from = path.resolve(path.dirname(args.importer), args.path);
        const to = table.get(from);
        if (to === undefined || to === args.importer) return undefined;
        if (!fs.existsSync(to)) throw new Error(`${path.relative(root, to)}, the browser twin of ${path.relative(root, from)}, is missing`);
        return { path: to };
      });
    },
  };
}

export async function build_browser(out_dir: string, options: BrowserBuildOptions = {}): Promise<BrowserBuild> {
  const app_entry = path.resolve(options.app_entry ?? app_entry_default);
  if (!fs.existsSync(app_entry)) {
    throw new Error(`${path.relative(repo_root, app_entry)} is missing: it is the browser replica (window.interlog) the page drives; nothing was built`);
  }
  fs.mkdirSync(out_dir, { recursive: true });
  const files: string[] = [];

  const app = await bundle(app_entry, out_dir, "app", "esm", {});
  let warnings: string[];
  try {
    warnings = check_app_inputs(app.metafile);
  } catch (err) {
    // Not left for serve to hand out with the page of an earlier build.
    for (const file of app.files) fs.rmSync(file, { force: true });
    throw err;
  }
  files.push(...app.files);
  files.push(...(await bundle(path.join(page_dir, "ui.ts"), out_dir, "ui", "esm", {})).files);
  const index_html = path.join(out_dir, "index.html");
  fs.copyFileSync(path.join(page_dir, "index.html"), index_html);
  files.push(index_html);

  const hasher = new Bun.CryptoHasher("sha256");
  for (const name of ["index.html", "app.js", "ui.js"]) hasher.update(fs.readFileSync(path.join(out_dir, name)));
  const build_id = hasher.digest("hex").slice(0, 16);
  // A classic script (no import or export), which every browser with service workers runs.
  const sw = await bundle(path.join(page_dir, "sw.ts"), out_dir, "sw", "iife", { INTERLOG_BUILD_ID: JSON.stringify(build_id) });
  files.push(...sw.files);
  return { files, build_id, warnings };
}

async function bundle(
  entry: string,
  out_dir: string,
  name: string,
  format: "esm" | "iife",
  define: Record<string, string>,
): Promise<{ files: string[]; metafile: BuildMetafile }> {
  const result = await Bun.build({
    entrypoints: [entry],
    outdir: out_dir,
    naming: { entry: `${name}.[ext]` },
    target: "browser",
    format,
    minify: true,
    sourcemap: "linked",
    define,
    plugins: [alias_plugin(repo_root, browser_aliases)],
    metafile: true,
    throw: false,
  });
  if (!result.success || result.metafile === undefined) {
    const problems = result.logs.filter((log) => log.level === "error").map(describe_log);
    throw new Error(`building ${name}.js from ${path.relative(repo_root, entry)} failed:\n  ${(problems.length > 0 ? problems : ["(Bun gave no reason)"]).join("\n  ")}`);
  }
  return { files: result.outputs.map((output) => path.resolve(output.path)), metafile: result.metafile };
}

function describe_log(log: BuildOutput["logs"][number]): string {
  const at = log.position === null ? "" : `${path.relative(repo_root, log.position.file)}:${log.position.line}:${log.position.column}: `;
  return `${at}${log.message}`;
}

/**
 * What went into app.js, checked: an import the alias plugin did not see
 * (written without .ts, say) would bundle the Node module, which fails only
 * when the page runs it. Node modules Bun has no browser version of but can
 * stub (node:fs: an empty object) are returned as warnings; those it cannot
 * (bun:ffi) failed the build already.
 */
function check_app_inputs(metafile: BuildMetafile): string[] {
  const replaced = new Set(Object.keys(browser_aliases).map((from) => path.resolve(repo_root, from)));
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const [input, info] of Object.entries(metafile.inputs)) {
    const file = path.resolve(input);
    if (replaced.has(file)) problems.push(`${path.relative(repo_root, file)} is in the bundle: an import of it was not resolved to its browser twin`);
    if (file.includes(`${path.sep}node_modules${path.sep}mqtt${path.sep}`) && file !== mqtt_browser_build) {
      problems.push(`mqtt resolved to ${path.relative(repo_root, file)}, not its browser build ${path.relative(repo_root, mqtt_browser_build)}`);
    }
    for (const imported of info.imports) {
      if (imported.external === true && /^(node|bun):/.test(imported.path)) {
        warnings.push(`${path.relative(repo_root, file)} imports ${imported.path}: the browser gets an empty stub, calls into it throw`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`app.js would not run in a browser:\n  ${problems.join("\n  ")}`);
  return warnings;
}

const usage = `usage: bun scripts/browser.ts [--out-dir DIR]   (default ${path.relative(process.cwd(), browser_out_dir_default) || "."})`;

async function main(argv: string[]): Promise<number> {
  const values = parse_script_args<{ "out-dir"?: string }>(argv, { "out-dir": { type: "string" } }, usage);
  if (typeof values === "number") return values;
  const out_dir = path.resolve(values["out-dir"] ?? browser_out_dir_default);
  const { files, build_id, warnings } = await build_browser(out_dir);
  for (const warning of warnings) process.stderr.write(`browser: warning: ${warning}\n`);
  for (const file of files) process.stdout.write(`${path.relative(process.cwd(), file).padEnd(32)} ${format_bytes(fs.statSync(file).size).padStart(10)}\n`);
  process.stdout.write(`build ${build_id}: serve it with admin.app: true (at /app/)\n`);
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`browser: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
