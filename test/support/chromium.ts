import fs from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium; override with INTERLOG_CHROMIUM. */
export const chromium_path = process.env.INTERLOG_CHROMIUM ?? "/usr/bin/chromium";

/**
 * A real headless Chromium for the page tests. A missing browser fails the
 * test that needs it (`what` names the page): a page must be checked in a
 * real one.
 */
export async function launch_chromium(what: string): Promise<Browser> {
  if (!fs.existsSync(chromium_path)) {
    throw new Error(`no Chromium at ${chromium_path}: the ${what} test needs a real browser; install it with: apt-get install -y chromium (or set INTERLOG_CHROMIUM)`);
  }
  return await chromium.launch({
    executablePath: chromium_path,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
