/**
 * /demo in real headless Chromium against `wrangler dev` (docs/web.md): one click ends VERIFIED;
 * each failure button ends with its own verdict and the §8.2 step that refused it (RFC 8816 §8.2
 * steps 1, 3, 4, 5); no console error; axe finds nothing (WCAG 2.1 AA); it works at phone width and
 * by keyboard. The server gets TEST-ONLY demo credentials the way `npm start` makes them
 * (src/dev/demo-credentials.mjs). A second server, with no demo credentials as in production, shows
 * that the page then explains how to run it locally and that its route answers 404.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeDemoCredentials } from "../../src/dev/demo-credentials.mjs";
import { startLocalServer } from "../../src/dev/local-server.mjs";
import {
  axeViolations,
  type Browser,
  fitsViewport,
  launchBrowser,
  openPage,
  PHONE,
  screenshot,
  tabStops,
} from "../helpers/browser.js";

type Server = Awaited<ReturnType<typeof startLocalServer>>;

// A real browser and axe on a loaded two-core machine: well beyond the e2e project's 60 s default.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let server: Server;
let browser: Browser;

beforeAll(async () => {
  const demo = await makeDemoCredentials();
  [server, browser] = await Promise.all([
    startLocalServer({
      vars: {
        DEMO_CREDENTIALS: demo.json,
        TRUST_ANCHORS_PEM: demo.rootPem,
        // As `npm start`: the demo stores without storage tokens on a local CPS.
        ALLOW_UNTOKENED_STORES: "true",
      },
    }),
    launchBrowser(),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const SCENARIOS = [
  // [button, verdict, failed step, code]
  ["spoofed", "failed", "4", "CERT_NOT_AUTHORISED"],
  ["stale", "failed", "5", "PASSPORT_STALE"],
  ["other-number", "failed", "3", "DEST_MISMATCH"],
  ["none", "no-passport", "1", ""],
] as const;

async function runAndWait(page: import("playwright-core").Page, scenario: string) {
  await page.locator(`button[data-scenario="${scenario}"]`).click();
  await page.waitForSelector(
    `#verdict[data-state="done"][data-scenario="${scenario}"], #verdict[data-state="error"]`,
    {
      timeout: 30_000,
    },
  );
  return page.locator("#verdict");
}

describe("/demo on a local CPS (TEST-ONLY demo credentials)", () => {
  it("one click: Alice calls Bob and the call ends VERIFIED, every step timed, no console error, axe clean", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/demo`);
    await page.waitForSelector('body[data-ready="true"]');
    const verdict = await runAndWait(page, "genuine");
    expect(await verdict.getAttribute("data-state"), (await verdict.textContent()) ?? "").toBe("done");
    expect(await verdict.getAttribute("data-verdict")).toBe("verified");
    await expect.poll(() => verdict.textContent()).toMatch(/VERIFIED/);
    // Every step of §8.1 and §8.2 is on the diagram with a measured time.
    const ids = await page
      .locator("#steps li")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-step")));
    expect(ids).toEqual([
      "bob-keygen",
      "bob-register",
      "as-authorize",
      "as-discover",
      "as-sign",
      "as-seal",
      "as-store",
      "signal",
      "vs-retrieve",
      "vs-open",
      "vs-verify",
    ]);
    expect(await page.locator("#steps li .time").count()).toBe(10);
    expect(await page.locator('#steps li[data-status="fail"]').count()).toBe(0);
    // The three views: the PASSporT Alice signed, the CPS's entries all one length, what Bob opened.
    expect(await page.locator("#view-alice").textContent()).toMatch(/"orig"[\s\S]*11115551111/);
    expect(await page.locator("#view-alice").textContent()).toMatch(/1,430 base64url characters/);
    const cps = (await page.locator("#view-cps").textContent()) ?? "";
    expect(cps).toMatch(/all 1,430 characters long/);
    expect(await page.locator("#view-cps tbody tr").count()).toBeGreaterThanOrEqual(2); // the copy + >= 1 dummy
    expect(await page.locator("#view-cps tbody tr.mine").count()).toBe(1);
    expect(await page.locator("#view-bob").textContent()).toMatch(/passed steps 2-6/);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, "demo");
    await screenshot(page, "demo-top", { fullPage: false });
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it.each(SCENARIOS)("the %s button ends %s at step %s (%s)", async (scenario, expected, step, code) => {
    const { page, problems } = await openPage(browser, `${server.url}/demo`);
    await page.waitForSelector('body[data-ready="true"]');
    const verdict = await runAndWait(page, scenario);
    expect(await verdict.getAttribute("data-state"), (await verdict.textContent()) ?? "").toBe("done");
    expect(await verdict.getAttribute("data-verdict")).toBe(expected);
    expect(await verdict.getAttribute("data-failed-step")).toBe(step);
    expect(await verdict.getAttribute("data-code")).toBe(code);
    // The diagram marks the step that refused it.
    expect(await page.locator('#steps li[data-status="fail"]').count()).toBe(1);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, `demo-${scenario}`);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("works at phone width and by keyboard alone", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/demo`, { device: PHONE });
    await page.waitForSelector('body[data-ready="true"]');
    // Keyboard: Tab reaches the call button, every stop shows focus, Enter places the call.
    const stops = await tabStops(page);
    expect(stops.map((s) => s.label)).toContain("button:Alice calls Bob");
    expect(stops.filter((s) => !s.visibleFocus)).toEqual([]);
    await page.locator("#run-call").focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector('#verdict[data-state="done"]', { timeout: 30_000 });
    expect(await page.locator("#verdict").getAttribute("data-verdict")).toBe("verified");
    expect(await fitsViewport(page)).toBe(true);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, "demo-phone");
    expect(problems).toEqual([]);
    await page.context().close();
  });
});

describe("/demo without demo credentials (the production configuration)", () => {
  let prod: Server;
  beforeAll(async () => {
    // No DEMO_CREDENTIALS, as on a deployed CPS.
    prod = await startLocalServer({});
  });
  afterAll(async () => {
    await prod?.stop();
  });

  it("GET /demo/credentials and the certificate route answer 404 problems", async () => {
    for (const path of ["/demo/credentials", "/demo/certs/alice.pem"]) {
      const res = await fetch(`${prod.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
      expect(((await res.json()) as { code: string }).code).toBe("NOT_FOUND");
    }
  });

  it("the page explains how to run it locally and offers no call", async () => {
    const { page, problems } = await openPage(browser, `${prod.url}/demo`, {
      allowFailedRequest: ["/demo/credentials"],
    });
    await page.waitForSelector('#verdict[data-state="unavailable"]');
    expect(await page.locator("#unavailable").isVisible()).toBe(true);
    expect(await page.locator("#unavailable").textContent()).toMatch(/npm start/);
    expect(await page.locator("#controls").isVisible()).toBe(false);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, "demo-production");
    expect(problems).toEqual([]);
    await page.context().close();
  });
});
