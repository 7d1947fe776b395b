/**
 * /docs/api in real headless Chromium against `wrangler dev` (docs/web.md): the reference is rendered
 * in the page from the server's own /openapi.json (every operation of it, nothing fetched elsewhere),
 * the filter works from the keyboard, axe finds nothing, no console error, and it fits a phone.
 * Also the static-asset wiring (wrangler.toml `[assets]`): the pages are served with their security
 * headers, while the JSON API and its 404 problem for unknown paths are unchanged.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startLocalServer } from "../../src/dev/local-server.mjs";
import {
  axeViolations,
  type Browser,
  fitsViewport,
  launchBrowser,
  openPage,
  PHONE,
  screenshot,
} from "../helpers/browser.js";

// A real browser and axe on a loaded two-core machine: well beyond the e2e project's 60 s default.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let server: Awaited<ReturnType<typeof startLocalServer>>;
let browser: Browser;

beforeAll(async () => {
  [server, browser] = await Promise.all([startLocalServer({}), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

async function openApiOperations(): Promise<string[]> {
  const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => m in item).map((m) => `${m.toUpperCase()} ${path}`),
  );
}

describe("static assets beside the JSON API", () => {
  it("serves the pages with their Content-Security-Policy; API routes and 404 problems are unchanged", async () => {
    for (const path of ["/demo", "/docs/api", "/console"]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toMatch(/text\/html/);
      expect(res.headers.get("content-security-policy"), path).toMatch(/script-src 'self'/);
      expect(await res.text(), path).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)[a-z]/i); // no CDN
    }
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const openapi = await fetch(`${server.url}/openapi.json`);
    expect(openapi.headers.get("content-type")).toMatch(/application\/json/);
    const keys = await fetch(`${server.url}/keys/12025550100`);
    expect(keys.status).toBe(200);
    expect(keys.headers.get("content-type")).toMatch(/jwk-set\+json/);
    for (const path of ["/nope", "/docs", "/docs/api/extra", "/assets/missing.js", "/demo/nothing"]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type"), path).toMatch(/application\/problem\+json/);
    }
  });
});

describe("/docs/api", () => {
  it("renders every operation of /openapi.json, offline, axe clean, no console error", async () => {
    const expected = await openApiOperations();
    expect(expected.length).toBeGreaterThan(15);
    const requested: string[] = [];
    const { page, problems } = await openPage(browser, `${server.url}/docs/api`);
    page.on("request", (req) => requested.push(req.url()));
    await page.waitForSelector('body[data-ready="true"]');
    const shown = await page
      .locator("section.operation h3")
      .allTextContents()
      .then((texts) => texts.map((t) => t.replace(/\s+/g, " ").trim()));
    expect(shown.sort()).toEqual([...expected].sort());
    // Details come through: a parameter, a request body schema, a $ref response, the auth scheme.
    const store = page.locator("section.operation", { hasText: "POST /cps/{tn}/ppts" });
    expect(await store.textContent()).toMatch(/CPS-Token/);
    const put = page.locator("section.operation", { hasText: "PUT /keys/{tn}" });
    expect(await put.textContent()).toMatch(/stirCredential/);
    expect(await put.textContent()).toMatch(/Problem/);
    // Nothing but this origin was asked for.
    expect(requested.filter((u) => !u.startsWith(server.url))).toEqual([]);
    expect(await axeViolations(page)).toEqual([]);
    // The viewport only: the whole reference is a very tall page.
    await screenshot(page, "docs-api", { fullPage: false });
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("the filter narrows the operations from the keyboard; it fits a phone", async () => {
    const { page, problems } = await openPage(browser, `${server.url}/docs/api`, { device: PHONE });
    await page.waitForSelector('body[data-ready="true"]');
    await page.locator("#filter").focus();
    await page.keyboard.type("/subscribe");
    const visible = await page
      .locator("section.operation:visible h3")
      .allTextContents()
      .then((texts) => texts.map((t) => t.replace(/\s+/g, " ").trim()));
    expect(visible.length).toBeGreaterThan(0);
    for (const v of visible) expect(v).toMatch(/\/subscribe$/);
    expect(await page.locator("#filter-count").textContent()).toMatch(new RegExp(`^${visible.length} of `));
    expect(await fitsViewport(page)).toBe(true);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, "docs-api-phone");
    expect(problems).toEqual([]);
    await page.context().close();
  });
});
