/**
 * The operator console (/console; docs/metrics.md) in real Chromium against `wrangler dev`: it asks
 * for the operator token, refuses a wrong one, and its charts move when traffic is sent (stores,
 * retrievals, errors, a push subscriber); no console errors or failed requests, the axe check
 * passes at desktop and phone width, every control is reachable by keyboard with visible focus.
 */
import { createHash } from "node:crypto";
import { WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalServer } from "../../src/dev/local-server.mjs";
import {
  axeViolations,
  type Browser,
  fitsViewport,
  launchBrowser,
  openPage,
  type Page,
  PHONE,
  screenshot,
  tabStops,
} from "../helpers/browser.js";
import { sealedFor } from "../helpers/cps.js";

const TOKEN = createHash("sha256").update(`console-test-${process.pid}-${Date.now()}`).digest("base64url");
const TOKEN_SHA256 = createHash("sha256").update(TOKEN).digest("base64url");

let server: Awaited<ReturnType<typeof startLocalServer>>;
let browser: Browser;

beforeAll(async () => {
  server = await startLocalServer({
    vars: { METRICS_TOKEN_SHA256: TOKEN_SHA256, ALLOW_UNTOKENED_STORES: "true" },
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(page: Page, token = TOKEN): Promise<void> {
  await page.getByLabel("Operator token").fill(token);
  await page.getByRole("button", { name: "Show figures" }).click();
}

/** A chart's `data-sum` (everything it draws, added up). */
async function chartSum(page: Page, id: string): Promise<number> {
  return Number(await page.getAttribute(`#chart-${id}`, "data-sum"));
}

/** Waits until `pred` holds of the page (the console polls every 5 s). */
async function until(page: Page, pred: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error("the console did not move");
    await page.waitForTimeout(250);
  }
}

async function traffic(): Promise<void> {
  const tn = "15557650001";
  for (let i = 0; i < 4; i++) {
    const { text } = await sealedFor(tn);
    const res = await fetch(`${server.url}/cps/${tn}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport" },
      body: text,
    });
    expect(res.status).toBe(201);
  }
  for (let i = 0; i < 3; i++) expect((await fetch(`${server.url}/cps/${tn}/ppts`)).status).toBe(200);
  expect((await fetch(`${server.url}/cps/12ab/ppts`)).status).toBe(400);
}

// Chromium, axe and a 5-s poll on a shared two-core machine: more than the project's 60 s default.
describe("/console", { timeout: 150_000 }, () => {
  it("refuses a wrong token with a message, and shows nothing", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/console`, {
      allowFailedRequest: ["/console/data"],
    });
    await signIn(page, "not-the-token");
    await expect.poll(() => page.textContent("#login-error")).toMatch(/refused/);
    expect(await page.isHidden("#figures")).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(await axeViolations(page)).toEqual([]);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("charts move when traffic is sent; no console errors; axe passes; keyboard reaches everything", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/console`);
    expect(await axeViolations(page)).toEqual([]);
    await signIn(page);
    await page.waitForSelector("#figures:not([hidden])");
    await until(page, async () => (await page.getAttribute("#chart-stores", "data-sum")) !== null);
    const before = {
      stores: await chartSum(page, "stores"),
      requests: await chartSum(page, "requests"),
      errors: await chartSum(page, "errors"),
      live: await chartSum(page, "live"),
    };
    await traffic();
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}/cps/15557650002/subscribe`);
    await new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve);
      socket.addEventListener("error", reject);
    });
    try {
      await until(page, async () => (await chartSum(page, "stores")) >= before.stores + 7);
      await until(page, async () => (await page.textContent("#gauge-subscribers")) === "1");
      expect(await chartSum(page, "requests")).toBeGreaterThan(before.requests);
      expect(await chartSum(page, "errors")).toBeGreaterThan(before.errors);
      expect(await chartSum(page, "live")).toBeGreaterThan(before.live);
      expect(Number(await page.textContent("#gauge-live"))).toBeGreaterThanOrEqual(4);
      // The text equivalent says the same: a summary and the route table.
      expect(await page.textContent("#sum-stores")).toMatch(/stores: now/);
      expect(await page.textContent("#routes")).toContain("/cps/{tn}/ppts");
      // Aggregates only: no number of the traffic anywhere on the page (docs/design.md invariant 6).
      const html = await page.content();
      expect(html).not.toContain("15557650001");
      expect(html).not.toContain("7650001");
    } finally {
      socket.close();
    }
    await page.getByText("Last minute as a table").first().click();
    expect(await axeViolations(page)).toEqual([]);
    // Sequential focus starts where the last click was: start from the top of the page.
    await page.click("h1");
    const stops = await tabStops(page);
    expect(
      stops.every((s) => s.visibleFocus),
      JSON.stringify(stops),
    ).toBe(true);
    expect(stops.map((s) => s.label).join("|")).toMatch(/Pause updates.*Forget token/);
    await screenshot(page, "console-desktop");
    // Forgetting the token returns to the form and clears it from the tab.
    await page.getByRole("button", { name: "Forget token" }).click();
    expect(await page.isVisible("#login-form")).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("works at phone width: nothing wider than the screen, axe passes", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/console`, { device: PHONE });
    await signIn(page);
    await page.waitForSelector("#figures:not([hidden])");
    await until(page, async () => (await page.getAttribute("#chart-requests", "data-sum")) !== null);
    expect(await fitsViewport(page)).toBe(true);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, "console-phone");
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("the page and its data route carry the no-store and CSP headers", async () => {
    const page = await fetch(`${server.url}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Security-Policy")).toContain("script-src 'self'");
    const data = await fetch(`${server.url}/console/data`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(data.status).toBe(200);
    expect(data.headers.get("Cache-Control")).toBe("no-store");
  });
});
