/**
 * The OHTTP relay Worker (src/relay/, RFC 9458 §2) under a real `wrangler dev`, forwarding to a fake
 * gateway: a Node HTTP server that records exactly what reaches it (method, path, every header, the
 * body) and answers like a gateway. A test double on purpose: the point is what a peer of the relay
 * receives over the wire, which only a server of our own can show byte for byte; the relay in front
 * of the real CPS gateway is the client helper's end-to-end test (test/e2e/ohttp.test.ts).
 *
 * What it shows: the relay forwards only to configured gateways (the origin never comes from the
 * request), strips every header that could identify the client, passes back only the media type,
 * enforces the media type, size and rate limits, caches the key configuration, answers 502 when the
 * gateway is down and 503 MISCONFIGURED with a bad config, and logs no address, path or body.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  freePort,
  REPO_ROOT,
  WRANGLER_BIN,
  wranglerDevArgs,
  wranglerEnv,
} from "../../src/dev/local-server.mjs";
import { type LocalRelay, startLocalRelay } from "../../src/dev/relay-server.mjs";
import {
  decapsulateRequest,
  decodeRequest,
  decodeResponse,
  encapsulateRequest,
  encodeRequest,
  generateGatewayKeyEntry,
  liveKeys,
  parseGatewayKeys,
  parseKeyConfigs,
  selectKeyConfig,
} from "../../src/ohttp/index.js";
import { parseGateways, parseRelayConfig } from "../../src/relay/config.js";
import { sealedFor } from "../helpers/cps.js";

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: Buffer;
}

/** The fake gateway: records every request; answers POSTs with a fixed sealed-looking body. */
interface FakeGateway {
  server: Server;
  origin: string;
  seen: Seen[];
}

const RESPONSE_BODY = Buffer.alloc(16_432, 0xab); // what a padded message/ohttp-res could look like
const KEYS_BODY = Buffer.from("00 2d 01 00 20".replaceAll(" ", ""), "hex"); // bytes only; the relay does not parse them

async function fakeGateway(): Promise<FakeGateway> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
      });
      // Headers a gateway might send that the relay must not pass on to the client.
      const common = { "Set-Cookie": "gw=1", "X-Gateway-Node": "node-7", Server: "fake-gateway" };
      if (req.method === "GET") {
        res.writeHead(200, {
          ...common,
          "Content-Type": "application/ohttp-keys",
          "Cache-Control": "public, max-age=60",
        });
        res.end(KEYS_BODY);
      } else {
        res.writeHead(200, { ...common, "Content-Type": "message/ohttp-res" });
        res.end(RESPONSE_BODY);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}`, seen };
}

/** What the client sends besides the body: everything a relay must not pass on (RFC 9458 §2, §10). */
const CLIENT_IP = "203.0.113.77";
const IDENTIFYING: Record<string, string> = {
  "CF-Connecting-IP": CLIENT_IP, // honoured by miniflare locally; Cloudflare's edge sets it itself
  "X-Forwarded-For": CLIENT_IP,
  "X-Real-IP": CLIENT_IP,
  Forwarded: `for=${CLIENT_IP};proto=https`,
  Via: "1.1 client-proxy",
  Cookie: "session=client-secret-cookie",
  Authorization: "Bearer client-secret-token",
  "User-Agent": "client-agent/9.9",
  "Accept-Language": "tlh",
  Origin: "https://client.example",
  Referer: "https://client.example/page",
  "X-Client-Marker": "client-marker-value",
};
const CLIENT_VALUES = [CLIENT_IP, "client-", "tlh", "9.9", "client.example"];

/** This relay's token for gateway "cps" (OHTTP_GATEWAY_TOKENS): hex, so no client value is in it. */
const RELAY_TOKEN = Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("hex");

let gw: FakeGateway;
let relay: LocalRelay;
let downPort: number;

beforeAll(async () => {
  gw = await fakeGateway();
  downPort = await freePort(); // nothing listens there
  relay = await startLocalRelay({
    // "plain": the same fake gateway, but with no token configured for it.
    gateways: { cps: gw.origin, plain: gw.origin, down: `http://127.0.0.1:${downPort}` },
    tokens: { cps: RELAY_TOKEN },
  });
});

afterAll(async () => {
  await relay?.stop();
  await new Promise((r) => gw?.server.close(r));
});

function post(path: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  return fetch(`${relay.url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "message/ohttp-req", ...headers },
    body,
  });
}

describe("relay: forwarding (RFC 9458 §2)", () => {
  it("forwards the body to {origin}/.well-known/ohttp-gateway with only its media type and the relay's token", async () => {
    const before = gw.seen.length;
    const body = crypto.getRandomValues(new Uint8Array(8_247));
    const res = await post("/gateways/cps", body, IDENTIFYING);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(RESPONSE_BODY)).toBe(true);

    expect(gw.seen.length).toBe(before + 1);
    const got = gw.seen.at(-1) as Seen;
    expect(got.method).toBe("POST");
    expect(got.url).toBe("/.well-known/ohttp-gateway");
    expect(Buffer.from(body).equals(got.body)).toBe(true);
    expect(got.headers["content-type"]).toBe("message/ohttp-req");
    // The relay's own token for this gateway (OHTTP_GATEWAY_TOKENS), exactly as configured, once.
    expect(got.headers["ohttp-relay-token"]).toBe(RELAY_TOKEN);
    expect(got.rawHeaders.filter((h) => h.toLowerCase() === "ohttp-relay-token")).toHaveLength(1);
    // Every header name that arrived: of ours, exactly Content-Type and OHTTP-Relay-Token; besides
    // them only what HTTP itself needs (Host, the length), the runtime's transport headers, and
    // CF-Worker, which the Workers runtime adds to every subrequest and which names the relay's own
    // zone (here "localhost"), not the client. None of the client's.
    const names = Object.keys(got.headers).sort();
    const transport = ["host", "content-length", "accept-encoding", "connection", "cf-worker"];
    expect(names.filter((n) => !transport.includes(n))).toEqual(["content-type", "ohttp-relay-token"]);
    expect(got.headers.host).toBe(new URL(gw.origin).host);
    const raw = got.rawHeaders.join("\n");
    for (const value of CLIENT_VALUES) expect(raw).not.toContain(value);
  });

  it("sends no token to a gateway that has none configured (only that gateway's token, to it alone)", async () => {
    const before = gw.seen.length;
    const res = await post("/gateways/plain", new Uint8Array(64), {
      ...IDENTIFYING,
      "OHTTP-Relay-Token": "client-supplied-token-0123456789abcdef",
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
    expect(gw.seen.length).toBe(before + 1);
    const got = gw.seen.at(-1) as Seen;
    // Neither the cps gateway's token nor one the client tried to pass on.
    expect(got.headers["ohttp-relay-token"]).toBeUndefined();
    expect(got.rawHeaders.join("\n")).not.toContain(RELAY_TOKEN);
    expect(got.rawHeaders.join("\n")).not.toContain("client-supplied");
  });

  it("answers the gateway's status, body and Content-Type, and none of its other headers", async () => {
    const res = await post("/gateways/cps", new Uint8Array(100), IDENTIFYING);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("message/ohttp-res");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const names = [...res.headers.keys()].sort();
    expect(names.filter((n) => !["content-type", "cache-control", "content-length"].includes(n))).toEqual([]);
    await res.body?.cancel();
  });

  it("forwards only to configured gateways: an unknown name is 404 and nothing leaves the relay", async () => {
    const before = gw.seen.length;
    const attempts = [
      "/gateways/nope",
      `/gateways/${encodeURIComponent(gw.origin)}`,
      `/gateways/${encodeURIComponent(new URL(gw.origin).host)}`,
      "/gateways/CPS",
      "/gateways/cps%2F..%2Fx",
      "/gateways/cps/",
      "/gateways/cps/extra",
      "/gateways/",
      "/gateways",
      "/.well-known/ohttp-gateway",
      "/",
    ];
    for (const path of attempts) {
      // The Host header names the fake gateway: the relay must not take an origin from it either.
      const res = await post(path, new Uint8Array(64), { Host: new URL(gw.origin).host });
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(((await res.json()) as { code: string }).code).toBe("NOT_FOUND");
    }
    expect(gw.seen.length).toBe(before);
  });

  it("refuses another media type (415), an empty body (400) and wrong methods (405), forwarding nothing", async () => {
    const before = gw.seen.length;
    const cases: [Promise<Response>, number, string][] = [
      [
        post("/gateways/cps", "x", { "Content-Type": "application/octet-stream" }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      ],
      [post("/gateways/cps", "x", { "Content-Type": "message/ohttp-res" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
      [post("/gateways/cps", new Uint8Array(0)), 400, "INVALID_BODY"],
      [fetch(`${relay.url}/gateways/cps`), 405, "METHOD_NOT_ALLOWED"],
      [fetch(`${relay.url}/gateways/cps`, { method: "PUT", body: "x" }), 405, "METHOD_NOT_ALLOWED"],
      [post("/gateways/cps/keys", "x"), 405, "METHOD_NOT_ALLOWED"],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
    expect(gw.seen.length).toBe(before);
  });

  it("refuses a body over the gateway's limit (413), declared or streamed, forwarding nothing", async () => {
    const before = gw.seen.length;
    const big = new Uint8Array(70_000);
    const declared = await post("/gateways/cps", big);
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { code: string }).code).toBe("BODY_TOO_LARGE");
    // Chunked, with no Content-Length: counted while streaming.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(8_000));
        c.close();
      },
    });
    const streamed = await fetch(`${relay.url}/gateways/cps`, {
      method: "POST",
      headers: { "Content-Type": "message/ohttp-req" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    await streamed.body?.cancel();
    expect(gw.seen.length).toBe(before);
    // Control: just under the limit goes through.
    const ok = await post("/gateways/cps", new Uint8Array(60_000));
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
  });

  it("answers 502 GATEWAY_UNREACHABLE when the gateway does not answer: a problem, no stack trace", async () => {
    const res = await post("/gateways/down", new Uint8Array(64));
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ code: "GATEWAY_UNREACHABLE", status: 502 });
    expect(text).not.toMatch(/at |Error|127\.0\.0\.1|ECONNREFUSED/);
    const keys = await fetch(relay.keysUrl("down"));
    expect(keys.status).toBe(502);
    await keys.body?.cancel();
  });
});

describe("relay: what it sees of a real encapsulated request (src/ohttp)", () => {
  const TN = "12025550123";
  const DIGITS = ["2025550123", "202-555-0123", "5550123"];

  it("forwards a store and a retrieval as sealed bytes of one length: no path, number or blob in the clear", async () => {
    const keys = liveKeys(await parseGatewayKeys(JSON.stringify([generateGatewayKeyEntry(7)])), Date.now());
    const config = keys[0]!.config;
    const blob = (await sealedFor(TN)).text;
    const inner = [
      encodeRequest({
        method: "POST",
        scheme: "https",
        authority: "cps.example.net",
        path: `/cps/${TN}/ppts`,
        headers: [["content-type", "application/passport"]],
        body: new TextEncoder().encode(blob),
      }),
      encodeRequest({
        method: "GET",
        scheme: "https",
        authority: "cps.example.net",
        path: `/cps/${TN}/ppts`,
        headers: [],
        body: new Uint8Array(0),
      }),
    ];
    const before = gw.seen.length;
    for (const bytes of inner) {
      const { encapsulatedRequest } = await encapsulateRequest(config, bytes);
      const res = await post("/gateways/cps", encapsulatedRequest, IDENTIFYING);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    const forwarded = gw.seen.slice(before).map((s) => s.body);
    expect(forwarded).toHaveLength(2);
    // Padding (docs/ohttp.md): a store and a retrieval look alike to the relay.
    expect(forwarded[0]!.length).toBe(forwarded[1]!.length);
    const blobBytes = Buffer.from(blob, "base64url");
    const secrets = [...DIGITS, TN, "/cps/", "ppts", "cps.example.net", blob.slice(0, 24)].map((t) =>
      Buffer.from(t),
    );
    secrets.push(blobBytes.subarray(0, 16), blobBytes.subarray(-16));
    for (const body of forwarded) {
      for (const secret of secrets) expect(body.indexOf(secret), secret.toString("hex")).toBe(-1);
    }
    // Control: the forwarded bytes are the request intact, so the key holder (the gateway) opens them
    // to the very path the relay could not read.
    const opened = await decapsulateRequest(keys, new Uint8Array(forwarded[0]!));
    expect(decodeRequest(opened.request).path).toBe(`/cps/${TN}/ppts`);
    // Nor does the relay's own log hold any of it.
    const out = relay.output();
    for (const t of [...DIGITS, "ppts", blob.slice(0, 24)]) expect(out).not.toContain(t);
  });
});

describe("relay: key configuration (RFC 9458 §3.2)", () => {
  it("relays the gateway's key configuration and caches it for its max-age", async () => {
    const before = gw.seen.filter((s) => s.method === "GET").length;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(relay.keysUrl("cps"), { headers: IDENTIFYING });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/ohttp-keys");
      expect(res.headers.get("cache-control")).toBe("public, max-age=60");
      expect(Buffer.from(await res.arrayBuffer()).equals(KEYS_BODY)).toBe(true);
    }
    const gets = gw.seen.filter((s) => s.method === "GET");
    // One upstream fetch for three client fetches (the cache write is asynchronous: allow a second).
    expect(gets.length - before).toBeGreaterThanOrEqual(1);
    expect(gets.length - before).toBeLessThanOrEqual(2);
    const got = gets.at(-1) as Seen;
    expect(got.url).toBe("/.well-known/ohttp-gateway");
    expect(got.headers.accept).toBe("application/ohttp-keys");
    // The key configuration is open at the gateway: the relay's token is not sent with it.
    expect(got.headers["ohttp-relay-token"]).toBeUndefined();
    const raw = got.rawHeaders.join("\n");
    for (const value of CLIENT_VALUES) expect(raw).not.toContain(value);
  });
});

describe("relay: rate limit per client", () => {
  it("answers 429 RELAY_RATE_LIMITED with Retry-After to a burst over 100 per 10 s, and only to that client", async () => {
    // 210 requests: windows are aligned to the clock, so even a burst straddling two windows puts
    // more than 100 in one of them. Unknown-gateway requests, so the fake gateway sees none.
    const burst = { "CF-Connecting-IP": "198.51.100.23", "Content-Type": "message/ohttp-req" };
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 21; i++) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`${relay.url}/gateways/nope`, { method: "POST", headers: burst, body: "x" }),
        ),
      );
      for (const res of batch) {
        statuses.push(res.status);
        if (res.status === 429 && !limited) limited = res;
        else await res.body?.cancel();
      }
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 429 && s !== 404)).toEqual([]);
    expect(limited?.headers.get("retry-after")).toBe("10");
    expect(((await (limited as Response).json()) as { code: string }).code).toBe("RELAY_RATE_LIMITED");
    // Another client address is not limited by that burst.
    const other = await fetch(`${relay.url}/gateways/nope`, {
      method: "POST",
      headers: { ...burst, "CF-Connecting-IP": "198.51.100.24" },
      body: "x",
    });
    expect(other.status).toBe(404);
    await other.body?.cancel();
  });
});

describe("relay: logs", () => {
  it("log counts and codes only: no client address, no body, no path beyond a configured name", async () => {
    await new Promise((r) => setTimeout(r, 300));
    const out = relay.output();
    const lines = out.split("\n").filter((l) => l.startsWith("{"));
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      const event = JSON.parse(line) as Record<string, unknown>;
      expect(
        Object.keys(event).every((k) => ["event", "route", "status", "gateway", "cache"].includes(k)),
        line,
      ).toBe(true);
      if ("gateway" in event) expect(["cps", "plain", "down"]).toContain(event.gateway);
    }
    for (const value of [CLIENT_IP, "198.51.100", "client-secret", "ababab", RELAY_TOKEN])
      expect(out).not.toContain(value);
  });
});

describe("relay: configuration", () => {
  it("parses OHTTP_GATEWAYS: https origins (http only on loopback), sane names, nothing else", () => {
    expect(parseGateways('{"cps":"https://cps.example.net"}')).toMatchObject({ ok: true });
    expect(parseGateways('{"cps":"http://127.0.0.1:8787","b-2":"https://[2001:db8::1]:8443"}')).toMatchObject(
      { ok: true },
    );
    for (const bad of [
      undefined,
      "",
      "not json",
      "[]",
      '["https://cps.example.net"]',
      "{}",
      '{"cps":"http://cps.example.net"}',
      '{"cps":"https://cps.example.net/path"}',
      '{"cps":"https://cps.example.net/?q=1"}',
      '{"cps":"https://user:pw@cps.example.net"}',
      '{"cps":"ftp://cps.example.net"}',
      '{"cps":42}',
      '{"CPS":"https://cps.example.net"}',
      '{"a/b":"https://cps.example.net"}',
      '{"":"https://cps.example.net"}',
    ]) {
      expect(parseGateways(bad), String(bad)).toMatchObject({ ok: false });
    }
  });

  it("parses OHTTP_GATEWAY_TOKENS: names of configured gateways, tokens of 32+ visible ASCII characters", () => {
    const gws = '{"cps":"https://cps.example.net","b":"https://b.example.net"}';
    const t = "t".repeat(32);
    for (const good of [undefined, "", `{"cps":"${t}"}`, `{"cps":"${t}","b":"${"x".repeat(40)}"}`, "{}"]) {
      expect(parseRelayConfig(gws, good), String(good)).toMatchObject({ ok: true });
    }
    const ok = parseRelayConfig(gws, `{"cps":"${t}"}`);
    expect(ok.ok && [...ok.tokens]).toEqual([["cps", t]]);
    for (const bad of [
      "not json",
      `["${t}"]`,
      `"${t}"`,
      `{"nope":"${t}"}`,
      `{"CPS":"${t}"}`,
      `{"cps":"${"t".repeat(31)}"}`,
      `{"cps":"${"t".repeat(513)}"}`,
      `{"cps":"${"t".repeat(31)} "}`,
      `{"cps":"${"t".repeat(32)}\\r\\nX-Injected: 1"}`,
      `{"cps":"${"t".repeat(32)}é"}`,
      `{"cps":"${"t".repeat(32)}\\""}`,
      '{"cps":12345678901234567890123456789012345}',
      '{"cps":null}',
    ]) {
      const parsed = parseRelayConfig(gws, bad);
      expect(parsed, bad).toMatchObject({ ok: false });
      // The reason is logged: it never quotes the secret.
      expect(parsed.ok ? "" : parsed.reason).not.toContain("tttt");
    }
    // A bad OHTTP_GATEWAYS is reported first, whatever the tokens.
    expect(parseRelayConfig("", `{"cps":"${t}"}`)).toMatchObject({ ok: false });
  });

  it.each([
    ["OHTTP_GATEWAYS empty (the production default in relay/wrangler.toml)", {}],
    ["OHTTP_GATEWAYS malformed", { OHTTP_GATEWAYS: '{"cps":"https://cps.example.net/not-an-origin"}' }],
    [
      "OHTTP_GATEWAY_TOKENS malformed (a token too short)",
      {
        OHTTP_GATEWAYS: '{"cps":"https://cps.example.net"}',
        OHTTP_GATEWAY_TOKENS: '{"cps":"not-an-origin"}',
      },
    ],
  ])(
    "%s: 503 MISCONFIGURED on every request, nothing forwarded",
    async (_name, vars: Record<string, string>) => {
      const { url, stop } = await startRaw(vars);
      try {
        for (const [path, init] of [
          ["/health", {}],
          ["/gateways/cps", { method: "POST", headers: { "Content-Type": "message/ohttp-req" }, body: "x" }],
          ["/gateways/cps/keys", {}],
          ["/nothing", {}],
        ] as [string, RequestInit][]) {
          const res = await fetch(url + path, init);
          expect(res.status, path).toBe(503);
          const text = await res.text();
          expect(JSON.parse(text)).toMatchObject({ code: "MISCONFIGURED", status: 503 });
          expect(text).not.toContain("not-an-origin");
        }
      } finally {
        await stop();
      }
    },
  );
});

describe("`npm start -- --relay`: the relay beside the CPS, by one command", () => {
  // Two builds and two runtimes start here: on a loaded CI machine up to the 120 s start deadline
  // below (as the npm start tests allow), past the e2e project's 60 s.
  it("starts both; a request sealed to the CPS's key through the relay reaches the CPS and comes back", async () => {
    const state = await mkdtemp(join(tmpdir(), "relay-start-"));
    const [port, relayPort] = [await freePort(), await freePort()];
    let out = "";
    const child = spawn(
      process.execPath,
      [join(REPO_ROOT, "src/dev/start.mjs"), "--relay", "--persist-to", state],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, PORT: String(port), RELAY_PORT: String(relayPort) },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.on("data", (d) => {
      out += d;
    });
    child.stderr?.on("data", (d) => {
      out += d;
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    try {
      const relayUrl = `http://127.0.0.1:${relayPort}`;
      const deadline = Date.now() + 120_000;
      while (!out.includes("OHTTP relay ready")) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not started:\n${out}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const keys = await fetch(`${relayUrl}/gateways/cps/keys`);
      expect(keys.status).toBe(200);
      expect(keys.headers.get("content-type")).toBe("application/ohttp-keys");
      const config = selectKeyConfig(parseKeyConfigs(new Uint8Array(await keys.arrayBuffer())));
      const inner = encodeRequest({
        method: "GET",
        scheme: "http",
        authority: `127.0.0.1:${port}`,
        path: "/health",
        headers: [],
        body: new Uint8Array(0),
      });
      const { encapsulatedRequest, context } = await encapsulateRequest(config, inner);
      // The CPS of `npm start -- --relay` lists this run's relay only: the same bytes sent straight
      // to the gateway, without the relay's token, are refused (403 OHTTP_RELAY_UNKNOWN).
      const direct = await post2(`http://127.0.0.1:${port}/.well-known/ohttp-gateway`, encapsulatedRequest);
      expect(direct.status).toBe(403);
      expect(((await direct.json()) as { code: string }).code).toBe("OHTTP_RELAY_UNKNOWN");
      const res = await post2(`${relayUrl}/gateways/cps`, encapsulatedRequest);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("message/ohttp-res");
      const answer = decodeResponse(
        await context.decapsulateResponse(new Uint8Array(await res.arrayBuffer())),
      );
      expect(answer.status).toBe(200);
      expect(JSON.parse(new TextDecoder().decode(answer.body))).toMatchObject({ status: "ok" });
    } finally {
      try {
        process.kill(-(child.pid as number), "SIGTERM");
      } catch {
        // gone
      }
      await exited;
      await rm(state, { recursive: true, force: true });
    }
    // Stopping `npm start` stops the relay with it.
    await new Promise((r) => setTimeout(r, 1_000));
    await expect(
      fetch(`http://127.0.0.1:${relayPort}/health`, { signal: AbortSignal.timeout(2_000) }),
    ).rejects.toThrow();
  }, 180_000);
});

function post2(url: string, body: Uint8Array) {
  return fetch(url, { method: "POST", headers: { "Content-Type": "message/ohttp-req" }, body });
}

describe("relay: what `wrangler deploy` would ship (relay/wrangler.toml)", () => {
  it.each([
    ["the top level", ""],
    ["[env.production]", "production"],
  ])(
    "%s: the relay's code only, its rate limit bound, no gateway until the operator names one",
    async (_name, envName) => {
      const outdir = await mkdtemp(join(tmpdir(), "relay-dry-run-"));
      try {
        const output = await new Promise<string>((done, fail) =>
          execFile(
            process.execPath,
            [
              WRANGLER_BIN,
              "deploy",
              "--dry-run",
              "--config",
              "relay/wrangler.toml",
              "--outdir",
              outdir,
              `--env=${envName}`,
            ],
            { cwd: REPO_ROOT, env: { ...wranglerEnv(), NO_COLOR: "1" }, timeout: 120_000 },
            (err, stdout, stderr) =>
              err ? fail(new Error(`${err.message}\n${stdout}\n${stderr}`)) : done(stdout + stderr),
          ),
        );
        expect(output).toMatch(/env\.RELAY_RATE_LIMITER \(100 requests\/10s\)/);
        expect(output).toMatch(/env\.OHTTP_GATEWAYS \(""\)/);
        const map = JSON.parse(await readFile(join(outdir, "index.js.map"), "utf8")) as { sources: string[] };
        const ours = map.sources
          .map((s) => relative(REPO_ROOT, resolve(outdir, s)).replaceAll("\\", "/"))
          .filter((s) => s.startsWith("src/"));
        expect(ours).toContain("src/relay/relay.ts");
        // docs/design.md layers: the relay Worker holds nothing of the CPS (no routes, storage, config).
        expect(ours.filter((s) => !/^src\/(relay|ohttp|stir|errors\.ts|log\.ts)/.test(s))).toEqual([]);
      } finally {
        await rm(outdir, { recursive: true, force: true });
      }
    },
  );
});

/**
 * A relay under `wrangler dev` without waiting for a 200 /health (a misconfigured relay never gives
 * one): polls until any HTTP answer. The value goes on the command line (`--var`): not a secret.
 */
async function startRaw(vars: Record<string, string>): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const state = await mkdtemp(join(tmpdir(), "relay-state-"));
  const child: ChildProcess = spawn(
    process.execPath,
    wranglerDevArgs({
      host: "127.0.0.1",
      port,
      persistTo: state,
      vars,
      config: "relay/wrangler.toml",
      extraArgs: ["--show-interactive-dev-session=false"],
    }),
    { cwd: REPO_ROOT, env: wranglerEnv(), detached: true, stdio: "ignore" },
  );
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // gone
    }
    await rm(state, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      return { url, stop };
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) {
        await stop();
        throw new Error("the relay did not start");
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
