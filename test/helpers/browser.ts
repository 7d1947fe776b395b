/**
 * Real headless Chromium for the page tests (test/e2e/web-*.test.ts; docs/web.md "Tests"): Debian's
 * `chromium` package driven by playwright-core, which uses an existing browser binary and downloads
 * none, plus an axe-core accessibility check run inside the page.
 *
 *   const browser = await launchBrowser();
 *   const { page, problems } = await openPage(browser, `${server.url}/demo`);
 *   expect(await axeViolations(page)).toEqual([]);
 *   expect(problems).toEqual([]);            // console errors, uncaught exceptions, failed requests
 *   await screenshot(page, "demo");          // test-output/screenshots/demo.png
 *
 * CHROMIUM=<path> picks another binary. Node-only (the e2e project); excluded from the workerd
 * program (tsconfig.integration.json).
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { REPO_ROOT } from "../../src/dev/local-server.mjs";

export type { Browser, Page } from "playwright-core";

const CANDIDATES = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** The Chromium binary to drive, or undefined when none is installed (`.ci/run` installs one). */
export function chromiumPath(): string | undefined {
  const fromEnv = process.env.CHROMIUM;
  if (fromEnv) return fromEnv;
  return CANDIDATES.find((p) => existsSync(p));
}

/** Headless Chromium. Throws with the install command when there is no binary. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) {
    throw new Error("No Chromium found (tried $CHROMIUM and /usr/bin/chromium): `apt-get install chromium`");
  }
  return chromium.launch({
    executablePath,
    headless: true,
    // Tests run as root in CI containers, where Chromium's sandbox cannot start; /dev/shm is small there.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
}

/** A phone: 375 x 667 CSS pixels (iPhone SE), touch, mobile layout. */
export const PHONE = { viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true } as const;
export const DESKTOP = { viewport: { width: 1280, height: 900 } } as const;

export interface OpenedPage {
  page: Page;
  /**
   * Everything that went wrong in the page since it opened: console errors (CSP violations among
   * them), uncaught exceptions and failed requests, each as one line. A page test expects it empty.
   */
  problems: string[];
}

/**
 * Opens `url` in a fresh context (no shared storage between tests) and waits for the load event.
 * `allowFailedRequest` lists URL paths a test expects to fail (e.g. a route absent in production).
 */
export async function openPage(
  browser: Browser,
  url: string,
  options: { device?: typeof PHONE | typeof DESKTOP; allowFailedRequest?: readonly string[] } = {},
): Promise<OpenedPage> {
  const context = await browser.newContext({ ...(options.device ?? DESKTOP), reducedMotion: "reduce" });
  const page = await context.newPage();
  const problems: string[] = [];
  const allowed = (u: string) => options.allowFailedRequest?.some((p) => new URL(u).pathname === p) ?? false;
  // Chromium logs every 4xx/5xx answer as "Failed to load resource", also for requests the page does
  // not make itself (the favicon), which raise no response event: each such line is a problem unless
  // an allowed failure was just answered.
  let allowedFailures = 0;
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (/Failed to load resource/.test(msg.text()) && allowedFailures > 0) {
      allowedFailures--;
      return;
    }
    problems.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`exception: ${err.message}`));
  page.on("requestfailed", (req) => {
    if (!allowed(req.url())) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ""}`);
  });
  page.on("response", (res) => {
    if (res.status() < 400) return;
    if (allowed(res.url())) allowedFailures++;
    else problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  await page.goto(url, { waitUntil: "load" });
  return { page, problems };
}

/** One axe-core result, short enough to read in a failed assertion. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

const require = createRequire(import.meta.url);
let axeSource: string | undefined;

/**
 * Runs axe-core in the page against WCAG 2.1 A and AA (labels, names, contrast, landmarks, ...) and
 * returns the violations. The script goes in through the DevTools protocol, not a <script> tag, so
 * the page's Content-Security-Policy stays as served.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= (require("axe-core") as { source: string }).source;
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: typeof import("axe-core") }).axe;
    const result = await axe.run({
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? null,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
}

export const SCREENSHOT_DIR = join(REPO_ROOT, "test-output/screenshots");

/**
 * A screenshot to test-output/screenshots/<name>.png (git-ignored), the whole page unless
 * `fullPage: false` (the viewport only, e.g. for docs/img/); returns its path.
 */
export async function screenshot(
  page: Page,
  name: string,
  options: { fullPage?: boolean } = {},
): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? true });
  return path;
}

/** True when the page is no wider than its viewport (nothing forces sideways scrolling at phone width). */
export async function fitsViewport(page: Page): Promise<boolean> {
  // A string: this program has no DOM types, the page has the DOM.
  return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1") as Promise<boolean>;
}

/** What has keyboard focus: a label for it, and whether it shows focus (an outline or a box shadow). */
const FOCUSED = `(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const visibleFocus =
    (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== "none";
  const name = el.getAttribute("aria-label") || (el.textContent || "").trim().slice(0, 40) || el.id;
  return { label: el.tagName.toLowerCase() + ":" + name, visibleFocus };
})()`;

/** The Tab order from the top of the page: each stop's label and whether its focus is visible. */
export async function tabStops(page: Page, max = 200): Promise<{ label: string; visibleFocus: boolean }[]> {
  const stops: { label: string; visibleFocus: boolean }[] = [];
  await page.evaluate("document.activeElement && document.activeElement.blur()");
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    const stop = (await page.evaluate(FOCUSED)) as { label: string; visibleFocus: boolean } | null;
    if (stop === null) break;
    if (stops.length > 0 && stops[0]?.label === stop.label) break; // wrapped around
    stops.push(stop);
  }
  return stops;
}
