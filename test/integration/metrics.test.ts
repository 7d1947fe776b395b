/**
 * The operator's figures (issue 18 item 3, docs/metrics.md): GET /metrics (OpenMetrics 1.0) and
 * GET /console/data behind the operator token, in workerd with the real MetricsHub object.
 * - counting is right after a known traffic mix (deltas between two reads, so other tests' traffic
 *   in this isolate does not matter);
 * - the credential: 404 without one configured, 401 for a missing, malformed or wrong token;
 * - the text parses as OpenMetrics (a strict reader written here from the format's rules);
 * - no telephone number, blob or token reaches any figure, label or series (docs/design.md
 *   invariant 6), whatever the traffic carried;
 * - bad input gets a 4xx problem, never a 5xx (docs/design.md invariant 7).
 */
import { createExecutionContext, env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { LATENCY_BUCKETS_SECONDS, quantile, routeLabel } from "../../src/metrics/sample.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { subscribe } from "../helpers/push.js";
import { BASE, fetchApp } from "../helpers/worker.js";
import { wallet } from "../integration-tokens/helpers.js";

const TOKEN = (env as unknown as { TEST_METRICS_TOKEN: string }).TEST_METRICS_TOKEN;
const OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const auth = (token = TOKEN) => ({ Authorization: `Bearer ${token}` });

async function scrape(): Promise<string> {
  const res = await fetchApp(`${BASE}/metrics`, { headers: auth() });
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe(OPENMETRICS);
  // Read as bytes: workerd warns on .text() of a type it does not know as text.
  return new TextDecoder().decode(await res.arrayBuffer());
}

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict OpenMetrics 1.0 text reader (the subset this CPS writes): metadata before samples, each
 * family declared once, sample names only the suffixes of the family's type, label syntax and
 * escapes, histogram buckets cumulative and ending at +Inf = _count, counters >= 0, `# EOF` last.
 * Throws on the first departure.
 */
function parseOpenMetrics(text: string): { families: Map<string, string>; samples: ParsedSample[] } {
  if (!text.endsWith("# EOF\n")) throw new Error("does not end with # EOF and a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.pop() !== "# EOF") throw new Error("# EOF not last");
  const families = new Map<string, string>();
  const samples: ParsedSample[] = [];
  const suffixes: Record<string, string[]> = {
    counter: ["_total", "_created"],
    gauge: [""],
    histogram: ["_bucket", "_count", "_sum", "_created"],
  };
  let current = "";
  const seen = new Set<string>();
  for (const line of lines) {
    const meta = /^# (TYPE|HELP|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === "TYPE") {
        if (families.has(name)) throw new Error(`family ${name} declared twice`);
        if (!suffixes[rest]) throw new Error(`unknown type ${rest}`);
        families.set(name, rest);
        current = name;
      } else if (name !== current) throw new Error(`${kind} for ${name} outside its family`);
      if (kind === "UNIT" && !name.endsWith(`_${rest}`))
        throw new Error(`unit ${rest} not a suffix of ${name}`);
      continue;
    }
    if (line.startsWith("#")) throw new Error(`bad comment line: ${line}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const [, name, , body, value] = m as unknown as [string, string, string, string | undefined, string];
    const type = families.get(current);
    if (!type || !suffixes[type]!.some((s) => name === current + s)) {
      throw new Error(`sample ${name} is not of family ${current}`);
    }
    const labels: Record<string, string> = {};
    if (body !== undefined) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < body.length) {
        re.lastIndex = at;
        const l = re.exec(body);
        if (!l) throw new Error(`bad labels: ${body}`);
        if (l[1]! in labels) throw new Error(`label ${l[1]} twice`);
        labels[l[1]!] = l[2]!;
        at = re.lastIndex;
      }
    }
    const key = `${name}${JSON.stringify(labels)}`;
    if (seen.has(key)) throw new Error(`sample twice: ${key}`);
    seen.add(key);
    const v = value === "+Inf" ? Number.POSITIVE_INFINITY : Number(value);
    if (type === "counter" && !(v >= 0)) throw new Error(`negative counter ${line}`);
    samples.push({ name, labels, value: v });
  }
  // Histograms: cumulative buckets, +Inf last and equal to _count.
  for (const [family, type] of families) {
    if (type !== "histogram") continue;
    const groups = new Map<string, ParsedSample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error("bucket without le");
      const k = JSON.stringify(rest);
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, buckets] of groups) {
      let prev = 0;
      let prevLe = Number.NEGATIVE_INFINITY;
      for (const b of buckets) {
        const le = b.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(b.labels.le);
        if (!(le > prevLe) || b.value < prev) throw new Error(`histogram ${family} not cumulative`);
        prev = b.value;
        prevLe = le;
      }
      if (prevLe !== Number.POSITIVE_INFINITY) throw new Error("histogram without +Inf");
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === k);
      if (count?.value !== prev) throw new Error("+Inf bucket differs from _count");
    }
  }
  return { families, samples };
}

/** The value of one sample (0 if absent: a counter not yet moved). */
function value(samples: ParsedSample[], name: string, labels: Record<string, string> = {}): number {
  const hit = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value ?? 0;
}

const read = async () => parseOpenMetrics(await scrape()).samples;

/** Waits until `pred` holds of a fresh scrape (gauges moved by an object in the background). */
async function until(pred: (s: ParsedSample[]) => boolean, timeoutMs = 10_000): Promise<ParsedSample[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await read();
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("GET /metrics counts a known traffic mix", () => {
  it("stores, retrievals, errors, requests by route pattern, latency, live blobs", async () => {
    const tn = "15557654321";
    const before = await read();

    const { text, another } = await sealedFor(tn);
    const ids: string[] = [];
    for (const body of [text, await another(), await another()]) {
      const res = await fetchApp(storeRequest(BASE, tn, body));
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    for (let i = 0; i < 2; i++) expect((await fetchApp(`${BASE}/cps/${tn}/ppts`)).status).toBe(200);
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts/${ids[0]}`)).status).toBe(200);
    expect((await fetchApp(`${BASE}/cps/blocks/1555765xxxx/ppts`)).status).toBe(200);
    expect((await fetchApp(`${BASE}/cps/12ab/ppts`)).status).toBe(400); // INVALID_TN
    expect((await fetchApp(`${BASE}/cps/99/ppts`)).status).toBe(400); // INVALID_TN
    expect((await fetchApp(`${BASE}/no/such/path/15557654321`)).status).toBe(404);
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts`, { method: "PATCH" })).status).toBe(405);

    const after = await read();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);
    const storeRoute = { route: "/cps/{tn}/ppts", method: "POST" };
    expect(delta("cps_passports_stored_total")).toBe(3);
    expect(delta("cps_http_requests_total", { ...storeRoute, status: "201" })).toBe(3);
    expect(delta("cps_http_request_duration_seconds_count", storeRoute)).toBe(3);
    expect(delta("cps_http_request_duration_seconds_bucket", { ...storeRoute, le: "+Inf" })).toBe(3);
    expect(delta("cps_passport_retrievals_total", { kind: "list" })).toBe(2);
    expect(delta("cps_passport_retrievals_total", { kind: "one" })).toBe(1);
    expect(delta("cps_passport_retrievals_total", { kind: "block" })).toBe(1);
    expect(delta("cps_http_requests_total", { route: "/cps/{tn}/ppts", method: "GET", status: "400" })).toBe(
      2,
    );
    expect(delta("cps_http_errors_total", { code: "INVALID_TN" })).toBe(2);
    expect(delta("cps_http_errors_total", { code: "NOT_FOUND" })).toBe(1);
    expect(delta("cps_http_errors_total", { code: "METHOD_NOT_ALLOWED" })).toBe(1);
    expect(delta("cps_http_requests_total", { route: "unmatched", method: "GET", status: "404" })).toBe(1);
    expect(
      delta("cps_http_requests_total", { route: "/cps/{tn}/ppts", method: "PATCH", status: "405" }),
    ).toBe(1);
    expect(delta("cps_live_passports")).toBe(3);
    // Untokened stores (local development) spend no token.
    expect(delta("cps_storage_tokens_spent_total")).toBe(0);
  });

  it("storage tokens issued (every blind signature) and spent (a store paid with one)", async () => {
    const before = await read();
    const w = wallet();
    expect(await w.refill(3)).toBe(3);
    const tn = "15557654322";
    const { text } = await sealedFor(tn);
    const res = await SELF.fetch(`${BASE}/cps/${tn}/ppts`, {
      method: "POST",
      headers: {
        "Content-Type": "application/passport",
        ...(await w.storeHeaders(tn, decodeEnvelope(text))),
      },
      body: text,
    });
    expect(res.status).toBe(201);
    const after = await read();
    const delta = (name: string) => value(after, name) - value(before, name);
    expect(delta("cps_storage_tokens_issued_total")).toBe(3);
    expect(delta("cps_storage_tokens_spent_total")).toBe(1);
  });

  it("push subscribers: a gauge that follows sockets accepted and closed", async () => {
    const base = value(await read(), "cps_push_subscribers");
    const a = await subscribe("/cps/15557654323/subscribe");
    const b = await subscribe("/cps/blocks/1555765xxxx/subscribe");
    await until((s) => value(s, "cps_push_subscribers") === base + 2);
    a.close();
    b.close();
    await until((s) => value(s, "cps_push_subscribers") === base);
  });

  it("the console's series shows the same traffic in its current interval", async () => {
    const tn = "15557654324";
    const { text } = await sealedFor(tn);
    expect((await fetchApp(storeRequest(BASE, tn, text))).status).toBe(201);
    const res = await fetchApp(`${BASE}/console/data`, { headers: auth() });
    expect(res.status).toBe(200);
    const data = (await res.json()) as {
      intervalSeconds: number;
      series: { t: number; stores: number; liveBlobs: number; requestsPerSecond: Record<string, number> }[];
      routes: { route: string; method: string; requests: number; p50: number | null }[];
      gauges: { liveBlobs: number };
    };
    expect(data.intervalSeconds).toBe(5);
    expect(data.series.length).toBe(180);
    const recent = data.series.slice(-2);
    expect(recent.reduce((n, p) => n + p.stores, 0)).toBeGreaterThanOrEqual(1);
    expect(recent.some((p) => (p.requestsPerSecond["POST /cps/{tn}/ppts"] ?? 0) > 0)).toBe(true);
    expect(data.series.at(-1)!.liveBlobs).toBe(data.gauges.liveBlobs);
    const store = data.routes.find((r) => r.route === "/cps/{tn}/ppts" && r.method === "POST");
    expect(store?.requests).toBeGreaterThanOrEqual(1);
    expect(store?.p50).toBeGreaterThanOrEqual(0);
  });

  it("METRICS=off counts nothing", async () => {
    const off = { ...env, METRICS: "off" } as Env;
    const before = await read();
    const tn = "15557654325";
    const { text } = await sealedFor(tn);
    const res = await app.fetch(storeRequest(BASE, tn, text), off, createExecutionContext());
    expect(res.status).toBe(201);
    const after = await read();
    expect(value(after, "cps_passports_stored_total")).toBe(value(before, "cps_passports_stored_total"));
  });
});

describe("the operator credential", () => {
  const unconfigured = { ...env, METRICS_TOKEN_SHA256: "" } as Env;
  const send = (path: string, init: RequestInit, bindings: Env = env) =>
    app.fetch(new Request(`${BASE}${path}`, init), bindings, createExecutionContext());

  for (const path of ["/metrics", "/console/data"]) {
    it(`${path}: 404 NOT_FOUND for every method when no operator token is configured`, async () => {
      for (const method of ["GET", "POST", "DELETE"]) {
        const res = await send(path, { method, headers: auth() }, unconfigured);
        expect(res.status).toBe(404);
        expect(((await res.json()) as { code: string }).code).toBe("NOT_FOUND");
      }
    });

    it(`${path}: 401 for a missing, malformed or wrong token, with WWW-Authenticate`, async () => {
      const cases: [Record<string, string>, string][] = [
        [{}, "AUTH_MISSING"],
        [{ Authorization: "" }, "AUTH_MISSING"],
        [{ Authorization: TOKEN }, "AUTH_MALFORMED"],
        [{ Authorization: `Basic ${btoa(`x:${TOKEN}`)}` }, "AUTH_MALFORMED"],
        [{ Authorization: `Bearer ${"a".repeat(600)}` }, "AUTH_MALFORMED"],
        [{ Authorization: "Bearer tok en" }, "AUTH_MALFORMED"],
        [auth(`${TOKEN}x`), "AUTH_INVALID"],
        [auth(TOKEN.toUpperCase()), "AUTH_INVALID"],
        [auth((env as unknown as { METRICS_TOKEN_SHA256: string }).METRICS_TOKEN_SHA256), "AUTH_INVALID"],
      ];
      for (const [headers, code] of cases) {
        const res = await send(path, { headers });
        expect(res.status, code).toBe(401);
        expect(res.headers.get("Content-Type")).toBe("application/problem+json");
        expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer /);
        expect(((await res.json()) as { code: string }).code).toBe(code);
      }
    });

    it(`${path}: 405 for another method with the token`, async () => {
      const res = await send(path, { method: "POST", headers: auth() });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("GET");
    });
  }

  it("a malformed configured hash fails the operator routes only (500 MISCONFIGURED), not the CPS", async () => {
    const bad = { ...env, METRICS_TOKEN_SHA256: "not-a-hash" } as Env;
    expect((await send("/metrics", { headers: auth() }, bad)).status).toBe(500);
    expect((await send("/health", {}, bad)).status).toBe(200);
  });

  it("accepts the hash in hex as well as base64url", async () => {
    const hex = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(TOKEN))),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    expect(
      (await send("/metrics", { headers: auth() }, { ...env, METRICS_TOKEN_SHA256: hex } as Env)).status,
    ).toBe(200);
  });
});

describe("the pieces the figures are made of", () => {
  it("route labels are patterns, never paths; quantiles interpolate inside their bucket", () => {
    expect(routeLabel("/cps/:tn/ppts")).toBe("/cps/{tn}/ppts");
    expect(routeLabel("/cps/blocks/:block/subscribe")).toBe("/cps/blocks/{block}/subscribe");
    expect(routeLabel("*")).toBe("unmatched");
    expect(routeLabel("/cps/15557654321/ppts")).toBe("unmatched");
    // 10 observations in (1 ms, 2.5 ms]: the median is halfway, p99 near the top.
    const hist = new Array(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
    hist[1] = 10;
    expect(quantile(hist, 0.5)).toBeCloseTo(0.00175, 6);
    expect(quantile(hist, 0.99)).toBeCloseTo(0.002485, 6);
    expect(quantile(new Array(hist.length).fill(0), 0.5)).toBeNull();
  });
});

describe("GET /metrics is OpenMetrics 1.0", () => {
  it("parses strictly and declares every family the docs list", async () => {
    await fetchApp(`${BASE}/health`);
    const { families } = parseOpenMetrics(await scrape());
    expect(Object.fromEntries(families)).toEqual({
      cps_http_requests: "counter",
      cps_http_request_duration_seconds: "histogram",
      cps_http_errors: "counter",
      cps_passports_stored: "counter",
      cps_passport_retrievals: "counter",
      cps_storage_tokens_issued: "counter",
      cps_storage_tokens_spent: "counter",
      cps_live_passports: "gauge",
      cps_push_subscribers: "gauge",
    });
  });
});

describe("no telephone number, blob or token in any figure (docs/design.md invariant 6)", () => {
  it("after traffic with distinctive numbers, blobs, ids and tokens", async () => {
    const tns = ["19998887766", "+4-477-3123-9876", "4.4.7.7.3.1.2.3.9.8.7.7", "86135792468013"];
    const secrets: string[] = ["9998887766", "7731239876", "4477312398", "135792468013", TOKEN];
    for (const tn of tns) {
      const { text } = await sealedFor(tn.replace(/[^0-9]/g, ""));
      secrets.push(text.slice(0, 40));
      const res = await fetchApp(storeRequest(BASE, encodeURIComponent(tn), text));
      expect(res.status).toBe(201);
      secrets.push(((await res.json()) as { id: string }).id);
      await fetchApp(`${BASE}/cps/${encodeURIComponent(tn)}/ppts`);
      await fetchApp(`${BASE}/keys/${encodeURIComponent(tn)}`);
      await fetchApp(`${BASE}/.well-known/stir-oob?tn=${encodeURIComponent(tn)}`);
    }
    // Junk that a careless label would copy: paths, methods, headers, query strings.
    await fetchApp(`${BASE}/cps/19998887766/ppts/notanid`);
    await fetchApp(`${BASE}/19998887766`);
    try {
      // workerd may refuse a method it does not know before the app sees it; either way, no label.
      await fetchApp(`${BASE}/cps/19998887766/ppts`, { method: "FOO19998887766" });
    } catch {}
    await fetchApp(`${BASE}/cps/19998887766/ppts`, {
      method: "POST",
      headers: {
        "Content-Type": "application/passport",
        "CPS-Token": "v1.k.AAAA.BBBB.CCCC",
        "CPS-Token-Signature": "DDDD",
      },
      body: "x",
    });
    await fetchApp(`${BASE}/tokens`, {
      method: "POST",
      headers: { Authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln" },
    });
    secrets.push("eyJhbGciOiJFUzI1NiJ9", "BBBB", "DDDD", "FOO", "notanid");

    const metrics = await scrape();
    const console = await (await fetchApp(`${BASE}/console/data`, { headers: auth() })).text();
    for (const out of [metrics, console]) {
      for (const s of secrets) expect(out.includes(s), s).toBe(false);
      // Every label value is one of the closed sets (route patterns, methods, statuses, codes, le, kind).
      for (const [, v] of out.matchAll(/="([^"]*)"/g))
        expect(v).toMatch(/^(\/[A-Za-z{}/._-]*|unmatched|[A-Z_]+|\d{3}|[0-9.e+-]+|\+Inf|list|one|block)$/);
    }
    // Route labels carry no digits at all.
    for (const [, route] of metrics.matchAll(/route="([^"]*)"/g)) expect(route).not.toMatch(/[0-9]/);
    const data = JSON.parse(console) as { series: { requestsPerSecond: Record<string, number> }[] };
    for (const p of data.series)
      for (const k of Object.keys(p.requestsPerSecond)) expect(k).not.toMatch(/[0-9]/);
  });
});

describe("bad input to the operator routes: 4xx problem, never a 5xx (docs/design.md invariant 7)", () => {
  it("odd headers, methods, query strings and paths", async () => {
    const requests: [string, RequestInit][] = [
      ["/metrics?format=json&x=%00", { headers: auth() }],
      ["/metrics/", { headers: auth() }],
      ["/metrics/extra", { headers: auth() }],
      ["/console/data?minutes=-1", { headers: auth() }],
      ["/console/data", { method: "PUT", headers: auth(), body: "{}" }],
      ["/metrics", { headers: { Authorization: "Bearer" } }],
      ["/metrics", { headers: { Authorization: "Bearer  " } }],
      ["/metrics", { headers: { Authorization: `Bearer ${"é".repeat(10)}` } }],
      ["/metrics", { headers: { Authorization: "bearer =====" } }],
      [
        "/console/data",
        { headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "x/y" }, method: "DELETE" },
      ],
    ];
    for (const [path, init] of requests) {
      const res = await fetchApp(`${BASE}${path}`, init);
      if (res.status === 200) continue; // a query string is ignored
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    }
  });

  it("the hub refuses labels outside the closed sets, whoever calls it", async () => {
    const { metricsHub } = await import("../../src/storage/objects.js");
    const hub = metricsHub(env);
    const now = Date.now();
    await hub.ingest([
      {
        start: now - (now % 5000),
        sample: {
          requests: {
            "GET /cps/19998887766/ppts": { status: { "200": 1 }, hist: [1], sum: 0 },
            "GET x y": {},
          },
          errors: { "19998887766": 1, INVALID_TN: -5 },
          retrievals: { "19998887766": 1 },
          stores: "1" as unknown as number,
          tokensIssued: Number.NaN,
          tokensSpent: -1,
          subscriberDelta: 1e9,
        },
      } as never,
    ]);
    const out = await scrape();
    expect(out).not.toContain("19998887766");
    expect(out).not.toContain("NaN");
    expect(out).not.toMatch(/cps_push_subscribers [1-9]\d{6,}/);
  });
});
