import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VerificationService } from "../../src/client/vs.js";
import { parseHostList } from "../../src/config.js";
import { cacheLifetime } from "../../src/stir/cache-lifetime.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { createPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import type { CanonicalTn } from "../../src/stir/tn.js";
import { checkX5uUrl, X5uFetcher } from "../../src/stir/x5u.js";

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

describe("adversary #10: x5u URL policy and upstream details", () => {
  const counting = (make: () => Response | Promise<Response> = () => new Response(pki.valid.pem)) => {
    const calls: string[] = [];
    const fetcher = async (input: RequestInfo | URL) => {
      calls.push(String(input));
      return make();
    };
    return { calls, fetch: fetcher as typeof fetch };
  };

  it.each([
    ["IPv4 loopback over https", "https://127.0.0.1/a.pem"],
    ["localhost", "https://localhost/a.pem"],
    ["localhost with a trailing dot", "https://localhost./a.pem"],
    ["a name under .localhost", "https://cert.localhost/a.pem"],
    ["IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/a.pem"],
    ["IPv6 loopback", "https://[::1]/a.pem"],
    ["IPv6 unique-local", "https://[fd00::1]/a.pem"],
    ["IPv6 link-local", "https://[fe80::1]/a.pem"],
    ["decimal IPv4", "https://2130706433/a.pem"],
    ["hex IPv4", "https://0x7f000001/a.pem"],
    ["octal IPv4", "https://0177.0.0.1/a.pem"],
    ["short dotted IPv4", "https://127.1/a.pem"],
    ["private 10/8", "https://10.0.0.1/a.pem"],
    ["private 172.16/12", "https://172.16.0.1/a.pem"],
    ["private 192.168/16", "https://192.168.1.1/a.pem"],
    ["link-local (cloud metadata)", "https://169.254.169.254/latest/meta-data"],
    ["unspecified", "https://0.0.0.0/a.pem"],
    ["a public IPv4 literal", "https://8.8.8.8/a.pem"],
    ["a port other than 443", "https://cert.example.org:8443/a.pem"],
    ["userinfo", "https://user@cert.example.org/a.pem"],
    ["a single-label name", "https://intranet/a.pem"],
    ["an mDNS .local name", "https://printer.local/a.pem"],
    ["an .internal name", "https://ca.internal/a.pem"],
    ["a .home.arpa name", "https://nas.home.arpa/a.pem"],
    ["plain http to a public host", "http://cert.example.org/a.pem"],
  ])("refuses %s, and never fetches it", async (_n, url) => {
    const { calls, fetch } = counting();
    const f = new X5uFetcher({ fetch });
    const err = await f.fetchChain(url).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "X5U_FETCH_FAILED", message: "The certificate URL is not allowed" });
    expect(calls).toEqual([]);
  });

  it("accepts a public name on 443 (explicit :443 too)", async () => {
    const { calls, fetch } = counting();
    const f = new X5uFetcher({ fetch });
    await f.fetchChain("https://cert.example.org/a.pem");
    await f.fetchChain("https://cert.example.org:443/b.pem");
    expect(calls).toEqual(["https://cert.example.org/a.pem", "https://cert.example.org/b.pem"]);
  });

  it("the dev switch admits loopback only (any port, http or https), nothing private", async () => {
    for (const url of [
      "http://127.0.0.1:8787/a.pem",
      "https://localhost:8443/a.pem",
      "http://[::1]:9/a.pem",
    ]) {
      expect(checkX5uUrl(url, true).href).toBe(url);
    }
    for (const url of ["https://10.0.0.1/a.pem", "https://192.168.1.1/a.pem", "https://[fd00::1]/a.pem"]) {
      expect(() => checkX5uUrl(url, true)).toThrow(expect.objectContaining({ code: "X5U_FETCH_FAILED" }));
    }
  });

  it("an operator allow-list admits only the hosts it names (exact, or *. for names below)", async () => {
    const policy = { allowedHosts: ["certs.example.net", "*.sti-cr.example"] };
    const ok = [
      "https://certs.example.net/a.pem",
      "https://CERTS.example.net./a.pem",
      "https://a.b.sti-cr.example/x",
    ];
    for (const url of ok) expect(() => checkX5uUrl(url, policy)).not.toThrow();
    const no = [
      "https://evil.example/a.pem",
      "https://sti-cr.example/x",
      "https://certs.example.net.evil.example/a",
    ];
    for (const url of no) {
      expect(() => checkX5uUrl(url, policy)).toThrow(expect.objectContaining({ code: "X5U_FETCH_FAILED" }));
    }
    const { calls, fetch } = counting();
    const f = new X5uFetcher({ fetch, allowedHosts: policy.allowedHosts });
    await expect(f.fetchChain("https://evil.example/a.pem")).rejects.toMatchObject({
      code: "X5U_FETCH_FAILED",
    });
    expect(calls).toEqual([]);
  });

  it("client-facing errors carry no upstream status, host or message; the log hook gets a code", async () => {
    const reasons: unknown[] = [];
    const cases: [() => Response | Promise<Response>, string][] = [
      [() => new Response("upstream secret 404 body", { status: 404 }), "status"],
      [() => new Response("teapot", { status: 418 }), "status"],
      [() => new Response(null, { status: 302, headers: { location: "https://10.0.0.1/" } }), "status"],
      [
        () => {
          throw new TypeError("connect ECONNREFUSED 10.1.2.3:443 cert.example.org");
        },
        "network",
      ],
      [() => new Response("x".repeat(100_000)), "too-large"],
    ];
    for (const [make, reason] of cases) {
      const f = new X5uFetcher({
        fetch: counting(make).fetch,
        onFailure: (r, status) => reasons.push(status === undefined ? r : [r, status]),
      });
      const err = (await f.fetchChain("https://cert.example.org/a.pem").catch((e: unknown) => e)) as Error;
      expect(err).toMatchObject({
        code: "X5U_FETCH_FAILED",
        message: "The certificate could not be fetched",
      });
      expect(err.message).not.toMatch(/404|418|302|ECONNREFUSED|10\.1|example\.org|secret/);
      expect(String(reasons.at(-1))).toContain(reason);
    }
    expect(reasons).toContainEqual(["status", 404]);
  });
});

describe("X5U_ALLOWED_HOSTS parsing (src/config.ts)", () => {
  it("reads comma-separated names, lower-cased, trailing dots dropped; empty is no list", () => {
    expect(parseHostList("")).toEqual([]);
    expect(parseHostList(" Certs.Example.NET., *.sti-cr.example ,")).toEqual([
      "certs.example.net",
      "*.sti-cr.example",
    ]);
  });
  it.each(["https://certs.example.net", "certs.example.net/x", "*", "*.net", "localhost", "a b.example"])(
    "refuses %j",
    (raw) => {
      expect(() => parseHostList(raw)).toThrow();
    },
  );
});

describe("adversary #10: the client VS holds PASSporT x5u URLs to the same policy", () => {
  const ALICE_TN = "11115551111";
  const BOB_TN = "22225552222";

  async function judge(x5u: string, iat: number, x5uPolicy?: { allowLoopback?: boolean }) {
    const fetched: string[] = [];
    const fetchLike = (async (input: RequestInfo | URL) => {
      fetched.push(String(input));
      return new Response(pki.valid.pem);
    }) as typeof fetch;
    const jws = await createPassport(
      {
        x5u,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [BOB_TN] },
          iat,
          orig: { tn: ALICE_TN },
          origid: "a9e5c7e0-0000-4000-8000-000000000010",
        },
      },
      pki.valid.privateKey,
    );
    const { keyPair } = await generateRecipientKeyPair();
    const vs = new VerificationService({
      keys: [{ kid: "bob", privateKey: keyPair }],
      trustAnchors: [pki.root.certificate],
      cps: "https://cps.example.org",
      fetch: fetchLike,
      ...(x5uPolicy ? { x5uPolicy } : {}),
    });
    const opened = {
      to: BOB_TN as CanonicalTn,
      examined: 1,
      opened: 1,
      passports: new Map([[jws, { blobIds: ["b1"], kids: ["bob"] }]]),
      timings: { retrieve: 0, open: 0 },
    };
    const result = await vs.judge(opened, ALICE_TN);
    return { failure: result.candidates[0]?.failure, fetched };
  }
  const now = () => Math.floor(Date.now() / 1000);

  it("refuses a loopback x5u at step 4 without fetching it", async () => {
    for (const x5u of [
      "https://127.0.0.1/a.pem",
      "https://[::ffff:127.0.0.1]/a.pem",
      "https://localhost/a.pem",
    ]) {
      const { failure, fetched } = await judge(x5u, now());
      expect(failure).toMatchObject({ step: 4, code: "X5U_FETCH_FAILED" });
      expect(fetched).toEqual([]);
    }
  });

  it("a stale PASSporT fails at step 5 before its x5u is fetched", async () => {
    const { failure, fetched } = await judge("https://cert.example.org/a.pem", now() - 600);
    expect(failure).toMatchObject({ step: 5, code: "PASSPORT_STALE" });
    expect(fetched).toEqual([]);
  });

  it("x5uPolicy.allowLoopback admits loopback for local demos", async () => {
    const { fetched } = await judge("http://127.0.0.1:8787/a.pem", now(), { allowLoopback: true });
    expect(fetched).toEqual(["http://127.0.0.1:8787/a.pem"]);
  });
});
