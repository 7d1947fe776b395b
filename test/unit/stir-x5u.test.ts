import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { cacheLifetime, checkX5uUrl, X5uFetcher } from "../../src/stir/x5u.js";

let pki: TestPki;
let server: Server;
let base: string;
let hits = 0;

beforeAll(async () => {
  pki = await createTestPki();
  server = createServer((req, res) => {
    hits++;
    if (req.url?.startsWith("/chain.pem")) {
      res.writeHead(200, { "content-type": "application/x-pem-file", "cache-control": "max-age=300" });
      res.end(pki.valid.pem);
    } else if (req.url === "/leaf.der") {
      res.writeHead(200, { "content-type": "application/pkix-cert", "cache-control": "no-store" });
      res.end(Buffer.from(pki.valid.der[0] ?? new Uint8Array()));
    } else if (req.url === "/big") {
      res.writeHead(200);
      res.end("x".repeat(100_000));
    } else if (req.url === "/slow") {
      setTimeout(() => res.end(pki.valid.pem), 500);
    } else if (req.url === "/redirect") {
      res.writeHead(302, { location: "/chain.pem" });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("x5u fetching", () => {
  it.each([
    ["https", "https://cert.example.org/a.pem", false, true],
    ["http to a public host", "http://cert.example.org/a.pem", true, false],
    ["http to loopback, not allowed", "http://127.0.0.1/a.pem", false, false],
    ["http to loopback, allowed", "http://127.0.0.1/a.pem", true, true],
    ["ftp", "ftp://cert.example.org/a.pem", true, false],
    ["credentials in the URL", "https://u:p@cert.example.org/a.pem", false, false],
    ["not a URL", "cert.pem", false, false],
  ])("URL check: %s", (_n, url, loopback, ok) => {
    if (ok) expect(checkX5uUrl(url, loopback).href).toBe(url);
    else
      expect(() => checkX5uUrl(url, loopback)).toThrow(expect.objectContaining({ code: "X5U_FETCH_FAILED" }));
  });

  it.each([
    [{ "cache-control": "max-age=300" }, 300],
    [{ "cache-control": "public, s-maxage=10" }, 10],
    [{ "cache-control": "no-store" }, 0],
    [{ "cache-control": "no-cache, max-age=300" }, 0],
    [{ expires: new Date(1_000_000 + 120_000).toUTCString(), date: new Date(1_000_000).toUTCString() }, 120],
    [{ expires: "garbage" }, 0],
    [{}, 3600],
  ])("cache lifetime of %j is %i s", (headers, ttl) => {
    expect(cacheLifetime(new Headers(headers), 1_000_000, 3600)).toBe(ttl);
  });

  it("fetches a PEM chain over loopback http, then serves it from the cache", async () => {
    const f = new X5uFetcher({ allowLoopbackHttp: true });
    const before = hits;
    const a = await f.fetchChain(`${base}/chain.pem`);
    const b = await f.fetchChain(`${base}/chain.pem`);
    expect(a.certificates).toHaveLength(2);
    expect(b).toBe(a);
    expect(hits - before).toBe(1);
  });

  it("refetches after max-age passes, with an injected clock", async () => {
    let now = 0;
    const f = new X5uFetcher({ allowLoopbackHttp: true, now: () => now });
    const before = hits;
    await f.fetchChain(`${base}/chain.pem`);
    now = 301_000;
    await f.fetchChain(`${base}/chain.pem`);
    expect(hits - before).toBe(2);
  });

  it("does not cache no-store answers, and accepts one DER certificate", async () => {
    const f = new X5uFetcher({ allowLoopbackHttp: true });
    const before = hits;
    const chain = await f.fetchChain(`${base}/leaf.der`);
    await f.fetchChain(`${base}/leaf.der`);
    expect(chain.certificates).toHaveLength(1);
    expect(hits - before).toBe(2);
    expect(f.cacheSize).toBe(0);
  });

  it("the cache is bounded", async () => {
    const f = new X5uFetcher({ allowLoopbackHttp: true, cacheEntries: 1 });
    await f.fetchChain(`${base}/chain.pem`);
    await f.fetchChain(`${base}/chain.pem?v=2`);
    expect(f.cacheSize).toBe(1);
  });

  it("concurrent fetches of one URL share one request", async () => {
    const f = new X5uFetcher({ allowLoopbackHttp: true });
    const before = hits;
    await Promise.all([1, 2, 3].map(() => f.fetchChain(`${base}/chain.pem?c`)));
    expect(hits - before).toBe(1);
  });

  it.each([
    ["too large", "/big", "X5U_FETCH_FAILED"],
    ["timeout", "/slow", "X5U_FETCH_FAILED"],
    ["404", "/missing", "X5U_FETCH_FAILED"],
    ["redirect", "/redirect", "X5U_FETCH_FAILED"],
  ])("refuses: %s", async (_n, path, code) => {
    const f = new X5uFetcher({ allowLoopbackHttp: true, maxBytes: 16_384, timeoutMs: 100 });
    await expect(f.fetchChain(`${base}${path}`)).rejects.toMatchObject({ code });
  });

  it("a body that is not a certificate is CERT_MALFORMED, and network errors are X5U_FETCH_FAILED", async () => {
    const junk = new X5uFetcher({ fetch: async () => new Response("hello") });
    await expect(junk.fetchChain("https://cert.example.org/a.pem")).rejects.toMatchObject({
      code: "CERT_MALFORMED",
    });
    const down = new X5uFetcher({
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
    });
    await expect(down.fetchChain("https://cert.example.org/a.pem")).rejects.toMatchObject({
      code: "X5U_FETCH_FAILED",
    });
  });
});
