/**
 * The CPS as an Oblivious HTTP gateway (RFC 9458, RFC 9540 §4; src/routes/ohttp.ts, docs/ohttp.md),
 * in workerd against the real app and Durable Objects, with requests built by the ohttp-core client
 * functions. Keys (vitest.config.ts): ids 1 and 2 live (a rotation's overlap), 3 expired, 4 future.
 */
import { createExecutionContext, env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { app } from "../../src/app.js";
import { CpsError } from "../../src/errors.js";
import { decodedPath, GATEWAY_PATH, innerRequest } from "../../src/http/ohttp-gateway.js";
import {
  type BhttpRequest,
  decodeResponse,
  encapsulateRequest,
  encodeRequest,
  type KeyConfig,
  MAX_ENCAPSULATED_REQUEST_LENGTH,
  OHTTP_KEY_PROBLEM_TYPE,
  parseGatewayKeys,
  parseKeyConfigs,
  requestFromFetch,
  responseToFetch,
} from "../../src/ohttp/index.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { type ListBody, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, fetchApp, liveCountOf } from "../helpers/worker.js";

const GATEWAY = `${BASE}${GATEWAY_PATH}`;
/** The token of the one relay on OHTTP_RELAYS (vitest.config.ts, TEST ONLY, made per run). */
const RELAY_TOKEN = (env as unknown as { TEST_OHTTP_RELAY_TOKEN: string }).TEST_OHTTP_RELAY_TOKEN;
const FROM_RELAY = { "OHTTP-Relay-Token": RELAY_TOKEN };
const HOST = new URL(BASE).host;

let n = 0;
const freshTn = () => `1555019${String(1000 + n++).padStart(4, "0")}`;

/** Every configured key's configuration, live or not (the test knows the secret; clients do not). */
async function allConfigs(): Promise<Map<number, KeyConfig>> {
  const keys = await parseGatewayKeys(env.OHTTP_KEYS ?? "");
  return new Map(keys.map((k) => [k.keyId, k.config]));
}

async function servedConfigs(): Promise<KeyConfig[]> {
  const res = await fetchApp(GATEWAY, { headers: { Accept: "application/ohttp-keys" } });
  expect(res.status).toBe(200);
  return parseKeyConfigs(new Uint8Array(await res.arrayBuffer()));
}

/** POSTs `body` to the gateway as the test relay (its token), unless `headers` say otherwise. */
function postOuter(body: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return fetchApp(GATEWAY, {
    method: "POST",
    headers: { "Content-Type": "message/ohttp-req", ...FROM_RELAY, ...headers },
    body,
  });
}

/** POSTs `body` straight to the app under `bindings` (no relay token unless `headers` carry one). */
function postOuterWith(bindings: Env, body: Uint8Array, headers: Record<string, string> = {}) {
  const req = new Request(GATEWAY, {
    method: "POST",
    headers: { "Content-Type": "message/ohttp-req", ...headers },
    body,
  });
  return app.fetch(req, bindings, createExecutionContext());
}

const sha256url = async (text: string) =>
  encodeBase64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));

interface Exchange {
  outer: Response;
  outerRequestLength: number;
  outerResponseLength: number;
  inner: Response;
}

/** Seals `msg` to `config`, posts it, opens the answer (which must be 200 message/ohttp-res). */
async function throughGateway(
  msg: BhttpRequest | Request,
  config?: KeyConfig,
  outerHeaders: Record<string, string> = {},
): Promise<Exchange> {
  const cfg = config ?? (await servedConfigs())[0];
  if (!cfg) throw new Error("no key configuration served");
  const bhttp = msg instanceof Request ? await requestFromFetch(msg) : msg;
  const { encapsulatedRequest, context } = await encapsulateRequest(cfg, encodeRequest(bhttp));
  const outer = await postOuter(encapsulatedRequest, outerHeaders);
  expect(outer.status).toBe(200);
  expect(outer.headers.get("Content-Type")).toBe("message/ohttp-res");
  const sealed = new Uint8Array(await outer.arrayBuffer());
  const inner = responseToFetch(decodeResponse(await context.decapsulateResponse(sealed)));
  return {
    outer,
    outerRequestLength: encapsulatedRequest.byteLength,
    outerResponseLength: sealed.byteLength,
    inner,
  };
}

/** A raw inner message (fields as given), for what a Request cannot express. */
function rawInner(overrides: Partial<BhttpRequest>): BhttpRequest {
  return {
    method: "GET",
    scheme: "http",
    authority: HOST,
    path: `/cps/${freshTn()}/ppts`,
    headers: [],
    body: new Uint8Array(),
    ...overrides,
  };
}

async function problemOf(res: Response): Promise<{ code: string; type: string; status: number }> {
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  return res.json();
}

const liveCount = (tn: string) => liveCountOf(tn);

describe("GET /.well-known/ohttp-gateway: the key configuration (RFC 9458 §3.2, RFC 9540 §4)", () => {
  it("lists exactly the keys live now, as application/ohttp-keys, cacheable for an hour", async () => {
    const res = await fetchApp(GATEWAY);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/ohttp-keys");
    expect(res.headers.get("Cache-Control")).toBe("public, max-age=3600");
    const configs = parseKeyConfigs(new Uint8Array(await res.arrayBuffer()));
    expect(configs.map((c) => c.keyId).sort()).toEqual([1, 2]);
    for (const c of configs) {
      expect(c.kemId).toBe(0x0020);
      expect(c.symmetric).toContainEqual({ kdfId: 0x0001, aeadId: 0x0001 });
    }
    const all = await allConfigs();
    for (const c of configs) expect(c).toEqual(all.get(c.keyId));
  });

  it("is off without OHTTP_KEYS (404 NOT_FOUND), 503 with a malformed one while the rest still serves", async () => {
    const off = { ...env, OHTTP_KEYS: "" } as Env;
    for (const req of [
      new Request(GATEWAY),
      new Request(GATEWAY, { method: "POST", headers: { "Content-Type": "message/ohttp-req" }, body: "x" }),
    ]) {
      const res = await app.fetch(req, off, createExecutionContext());
      expect(res.status).toBe(404);
      expect((await problemOf(res)).code).toBe("NOT_FOUND");
    }
    const bad = { ...env, OHTTP_KEYS: '[{"id": 300, "privateKey": "AAAA"}]' } as Env;
    const res = await app.fetch(new Request(GATEWAY), bad, createExecutionContext());
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).not.toContain("AAAA");
    expect(JSON.parse(text).code).toBe("MISCONFIGURED");
    const health = await app.fetch(new Request(`${BASE}/health`), bad, createExecutionContext());
    expect(health.status).toBe(200);
  });

  it("a malformed OHTTP_KEYS is logged once, without the secret, not once per request", async () => {
    const bad = { ...env, OHTTP_KEYS: '[{"id": 7, "privateKey": "c2VjcmV0LXZhbHVl"}]' } as Env;
    const log = vi.spyOn(console, "log");
    try {
      for (let i = 0; i < 3; i++) {
        const res = await app.fetch(new Request(GATEWAY), bad, createExecutionContext());
        expect(res.status).toBe(503);
      }
      const lines = log.mock.calls.map((call) => String(call[0]));
      expect(lines.filter((l) => l.includes("MISCONFIGURED"))).toHaveLength(1);
      expect(lines.join("\n")).not.toContain("c2VjcmV0LXZhbHVl");
    } finally {
      log.mockRestore();
    }
  });
});

describe("POST /.well-known/ohttp-gateway: the same API inside (RFC 9458 §4, §5)", () => {
  it("a store and a list give the answers they give directly: ids, decoys, blobs", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const stored = await throughGateway(storeRequest(BASE, tn, text));
    expect(stored.inner.status).toBe(201);
    const { id } = await stored.inner.json<{ id: string }>();
    expect(await liveCount(tn)).toBe(1);

    const listed = await throughGateway(new Request(`${BASE}/cps/${tn}/ppts`));
    expect(listed.inner.status).toBe(200);
    const viaGateway = await listed.inner.json<ListBody>();
    const direct = await (await fetchApp(`${BASE}/cps/${tn}/ppts`)).json<ListBody>();
    expect(viaGateway.passports.map((p) => p.id)).toContain(id);
    expect(viaGateway.passports.length, "decoys are in the answer").toBeGreaterThan(1);
    const sorted = (l: ListBody) => [...l.passports].sort((a, b) => a.id.localeCompare(b.id));
    expect(sorted(viaGateway)).toEqual(sorted(direct));
  });

  it("padding: a store, a full list and an empty list look alike to the relay (one length each way)", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const store = await throughGateway(storeRequest(BASE, tn, text));
    const full = await throughGateway(new Request(`${BASE}/cps/${tn}/ppts`));
    const empty = await throughGateway(new Request(`${BASE}/cps/${freshTn()}/ppts`));
    const missing = await throughGateway(new Request(`${BASE}/cps/${tn}/ppts/${"0".repeat(32)}`));
    expect(store.inner.status).toBe(201);
    expect(missing.inner.status).toBe(404);
    const requests = new Set([store, full, empty, missing].map((x) => x.outerRequestLength));
    const responses = new Set([store, full, empty, missing].map((x) => x.outerResponseLength));
    expect(requests.size).toBe(1);
    expect(responses.size).toBe(1);
  });

  it("an inner 4xx comes back sealed inside a 200 (RFC 9458 §5.2)", async () => {
    const tn = freshTn();
    const res = await throughGateway(storeRequest(BASE, tn, "not a blob"));
    const direct = await fetchApp(storeRequest(BASE, tn, "not a blob"));
    expect(res.outer.status).toBe(200);
    expect(res.inner.status).toBe(400);
    expect(await problemOf(res.inner)).toEqual(await problemOf(direct));
    expect(await liveCount(tn)).toBe(0);
  });

  it("no outer header reaches the inner request: an outer CPS-Token would fail the store, and does not", async () => {
    const tn = freshTn();
    const { text, another } = await sealedFor(tn);
    const leaky = {
      "CPS-Token": "v1.x.x.x.x",
      "X-Forwarded-For": "192.0.2.7",
      "CF-Connecting-IP": "192.0.2.7",
    };
    // The header does change the answer when it is on the request itself (this test can fail).
    const direct = storeRequest(BASE, tn, await another());
    for (const [k, v] of Object.entries(leaky)) direct.headers.set(k, v);
    const refused = await fetchApp(direct);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(await liveCount(tn)).toBe(0);
    // Outside the encapsulation it is ignored, and the client's address is in no log line either.
    const log = vi.spyOn(console, "log");
    try {
      const res = await throughGateway(storeRequest(BASE, tn, text), undefined, leaky);
      expect(res.inner.status).toBe(201);
      expect(await liveCount(tn)).toBe(1);
      expect(JSON.stringify(log.mock.calls)).not.toContain("192.0.2.7");
    } finally {
      log.mockRestore();
    }
  });

  it("the inner Request carries the inner fields only, the URL from CPS_ORIGIN and the inner path", async () => {
    const req = innerRequest(
      rawInner({
        method: "POST",
        path: "/cps/12025550123/ppts?x=1",
        headers: [
          ["content-type", "application/passport"],
          ["host", HOST],
          ["x-inner", "1"],
        ],
        body: new TextEncoder().encode("abc"),
      }),
      BASE,
    );
    expect(req.url).toBe(`${BASE}/cps/12025550123/ppts?x=1`);
    expect(req.method).toBe("POST");
    expect([...req.headers].sort()).toEqual([
      ["content-type", "application/passport"],
      ["x-inner", "1"],
    ]);
    expect(new TextDecoder().decode(await req.arrayBuffer())).toBe("abc");
  });
});

describe("innerRequest: never another origin, never the gateway (property)", () => {
  const pieces = fc.constantFrom(
    "/",
    "//",
    "\\",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "@",
    ":",
    "?",
    "#",
    "evil.example",
    "127.0.0.1:9999",
    ".well-known",
    "ohttp-gateway",
    "OHTTP-GATEWAY",
    "cps",
    "http://",
    "https://",
  );
  const target = fc.oneof(
    fc.array(pieces, { maxLength: 8 }).map((p) => p.join("")),
    fc.string({ maxLength: 40 }),
  );

  it("either refuses with a CpsError or builds a Request on CPS_ORIGIN outside the gateway path", () => {
    fc.assert(
      fc.property(target, fc.constantFrom("", HOST, "evil.example", `${HOST}.evil`), (path, authority) => {
        let req: Request;
        try {
          req = innerRequest(rawInner({ path, authority }), BASE);
        } catch (err) {
          expect(err).toBeInstanceOf(CpsError);
          return;
        }
        const url = new URL(req.url);
        expect(url.origin).toBe(new URL(BASE).origin);
        expect(decodedPath(url.pathname).toLowerCase().startsWith(GATEWAY_PATH)).toBe(false);
        expect(url.pathname.toLowerCase().startsWith(GATEWAY_PATH)).toBe(false);
        expect(authority === "" || authority === HOST).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("bad input at the gateway: the RFC 9458 answers, and nothing stored", () => {
  /** A sealed store for a fresh number and the number, to check nothing was stored. */
  async function sealedStore(config: KeyConfig) {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const bhttp = encodeRequest(await requestFromFetch(storeRequest(BASE, tn, text)));
    const { encapsulatedRequest } = await encapsulateRequest(config, bhttp);
    return { tn, encapsulatedRequest };
  }

  async function expectKeyProblem(res: Response) {
    expect(res.status).toBe(400);
    const body = await problemOf(res);
    expect(body.type).toBe(OHTTP_KEY_PROBLEM_TYPE);
    expect(body.code).toBe("OHTTP_KEY");
  }

  it("an unknown key id: 400 ohttp-key problem (RFC 9458 §5.3)", async () => {
    const live = (await servedConfigs())[0] as KeyConfig;
    const { tn, encapsulatedRequest } = await sealedStore({ ...live, keyId: 9 });
    await expectKeyProblem(await postOuter(encapsulatedRequest));
    expect(await liveCount(tn)).toBe(0);
  });

  it("an expired key and a key not yet valid: 400 ohttp-key problem", async () => {
    const all = await allConfigs();
    for (const id of [3, 4]) {
      const { tn, encapsulatedRequest } = await sealedStore(all.get(id) as KeyConfig);
      await expectKeyProblem(await postOuter(encapsulatedRequest));
      expect(await liveCount(tn)).toBe(0);
    }
  });

  it("key rotation: both live keys are accepted", async () => {
    const all = await allConfigs();
    for (const id of [1, 2]) {
      const tn = freshTn();
      const { text } = await sealedFor(tn);
      const res = await throughGateway(storeRequest(BASE, tn, text), all.get(id));
      expect(res.inner.status, `key ${id}`).toBe(201);
      expect(await liveCount(tn)).toBe(1);
    }
  });

  it("a tampered request (one ciphertext bit): 400 ohttp-key problem", async () => {
    const { tn, encapsulatedRequest } = await sealedStore((await servedConfigs())[0] as KeyConfig);
    const tampered = encapsulatedRequest.slice();
    const at = tampered.length - 20;
    tampered[at] = (tampered[at] as number) ^ 1;
    await expectKeyProblem(await postOuter(tampered));
    expect(await liveCount(tn)).toBe(0);
  });

  it("truncated: shorter than its header is 400 OHTTP_MALFORMED; a cut ciphertext does not open (400)", async () => {
    const { tn, encapsulatedRequest } = await sealedStore((await servedConfigs())[0] as KeyConfig);
    const short = await postOuter(encapsulatedRequest.slice(0, 20));
    expect(short.status).toBe(400);
    expect((await problemOf(short)).code).toBe("OHTTP_MALFORMED");
    await expectKeyProblem(await postOuter(encapsulatedRequest.slice(0, -1)));
    const empty = await postOuter(new Uint8Array());
    expect(empty.status).toBe(400);
    expect(await liveCount(tn)).toBe(0);
  });

  it("oversized: 413 before anything is opened", async () => {
    const res = await postOuter(new Uint8Array(MAX_ENCAPSULATED_REQUEST_LENGTH + 1));
    expect(res.status).toBe(413);
    expect((await problemOf(res)).code).toBe("BODY_TOO_LARGE");
  });

  it("a wrong content type: 415", async () => {
    const { tn, encapsulatedRequest } = await sealedStore((await servedConfigs())[0] as KeyConfig);
    for (const type of ["application/octet-stream", "message/ohttp-res", "message/bhttp"]) {
      const res = await postOuter(encapsulatedRequest, { "Content-Type": type });
      expect(res.status, type).toBe(415);
      expect((await problemOf(res)).code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    expect(await liveCount(tn)).toBe(0);
  });

  it("an inner request for another host: 421 NOT_SERVED inside, nothing stored (not an open proxy)", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const body = new TextEncoder().encode(text);
    const store = {
      method: "POST",
      path: `/cps/${tn}/ppts`,
      headers: [["content-type", "application/passport"]],
    };
    for (const target of [
      { authority: "evil.example" },
      { authority: "127.0.0.1:9999" },
      { scheme: "https" },
      { authority: "", headers: [...store.headers, ["host", "evil.example"]] },
      { path: `https://evil.example/cps/${tn}/ppts` },
      { path: `//evil.example/cps/${tn}/ppts` },
    ] as Partial<BhttpRequest>[]) {
      const res = await throughGateway(rawInner({ ...(store as Partial<BhttpRequest>), body, ...target }));
      expect(res.inner.status, JSON.stringify(target)).toBe(421);
      expect((await problemOf(res.inner)).code).toBe("NOT_SERVED");
    }
    expect(await liveCount(tn)).toBe(0);
  });

  it("an inner request to the gateway itself: 403 OHTTP_REFUSED inside, whatever its spelling", async () => {
    const tn = freshTn();
    const { encapsulatedRequest: nested } = await sealedStore((await servedConfigs())[0] as KeyConfig);
    for (const path of [
      GATEWAY_PATH,
      "/%2Ewell-known/ohttp-gateway",
      "/.WELL-KNOWN/ohttp-gateway/",
      "/x/../.well-known/ohttp-gateway",
      "/%2Ewell-known%2Fohttp-gateway",
      "/.well-known/ohttp-gateway?%zz",
    ]) {
      const res = await throughGateway(
        rawInner({
          method: "POST",
          path,
          headers: [["content-type", "message/ohttp-req"]],
          body: nested,
        }),
      );
      expect(res.inner.status, path).toBe(403);
      expect((await problemOf(res.inner)).code).toBe("OHTTP_REFUSED");
    }
    // GET of the key configuration inside is refused too (nothing to gain, one rule).
    const keys = await throughGateway(rawInner({ path: GATEWAY_PATH }));
    expect(keys.inner.status).toBe(403);
    expect(await liveCount(tn)).toBe(0);
  });

  it("an inner WebSocket upgrade: 403 OHTTP_REFUSED inside", async () => {
    for (const headers of [
      [
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-version", "13"],
        ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
      ],
      [["connection", "keep-alive, Upgrade"]],
    ] as [string, string][][]) {
      const res = await throughGateway(rawInner({ path: "/cps/blocks/1202555xxxx", headers }));
      expect(res.inner.status).toBe(403);
      expect((await problemOf(res.inner)).code).toBe("OHTTP_REFUSED");
    }
  });

  it("an inner message that is not Binary HTTP: 400 OHTTP_MALFORMED inside", async () => {
    const config = (await servedConfigs())[0] as KeyConfig;
    const { encapsulatedRequest, context } = await encapsulateRequest(config, new Uint8Array([7, 7, 7, 7]));
    const outer = await postOuter(encapsulatedRequest);
    expect(outer.status).toBe(200);
    const inner = responseToFetch(
      decodeResponse(await context.decapsulateResponse(new Uint8Array(await outer.arrayBuffer()))),
    );
    expect(inner.status).toBe(400);
    expect((await problemOf(inner)).code).toBe("OHTTP_MALFORMED");
  });
});

describe('only relays on OHTTP_RELAYS may send (docs/ohttp.md "Which relays may send")', () => {
  /** A sealed store for a fresh number, as a relay would forward it. */
  async function sealedStore() {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const bhttp = encodeRequest(await requestFromFetch(storeRequest(BASE, tn, text)));
    const config = (await servedConfigs())[0] as KeyConfig;
    const { encapsulatedRequest } = await encapsulateRequest(config, bhttp);
    return { tn, encapsulatedRequest };
  }

  async function expectUnknownRelay(res: Response) {
    expect(res.status).toBe(403);
    const body = await problemOf(res);
    expect(body.code).toBe("OHTTP_RELAY_UNKNOWN");
    expect(body.status).toBe(403);
  }

  it("no token, a wrong token, another relay's token, the hash itself: 403 before decapsulation, nothing stored", async () => {
    const wrongToken = RELAY_TOKEN.slice(0, -1) + (RELAY_TOKEN.endsWith("x") ? "y" : "x");
    const senders: [string, Record<string, string>][] = [
      ["no header", {}],
      ["empty token", { "OHTTP-Relay-Token": "" }],
      ["wrong token (last character changed)", { "OHTTP-Relay-Token": wrongToken }],
      ["a relay not on the list", { "OHTTP-Relay-Token": "another-relay-token-0123456789abcdef" }],
      ["the listed hash as the token", { "OHTTP-Relay-Token": await sha256url(RELAY_TOKEN) }],
      ["the token twice", { "OHTTP-Relay-Token": `${RELAY_TOKEN}, ${RELAY_TOKEN}` }],
    ];
    for (const [what, headers] of senders) {
      const { tn, encapsulatedRequest } = await sealedStore();
      const res = await fetchApp(GATEWAY, {
        method: "POST",
        headers: { "Content-Type": "message/ohttp-req", ...headers },
        body: encapsulatedRequest,
      });
      expect(res.status, what).toBe(403);
      await expectUnknownRelay(res);
      expect(await liveCount(tn), what).toBe(0);
    }
  });

  it("nothing else is done first: garbage, a wrong type and an oversized body from an unknown sender are all 403", async () => {
    const bad = { "OHTTP-Relay-Token": "not-on-the-list-0123456789abcdefghij" };
    await expectUnknownRelay(await postOuter(new Uint8Array([0, 1, 2]), bad));
    await expectUnknownRelay(await postOuter(new Uint8Array(MAX_ENCAPSULATED_REQUEST_LENGTH + 1), bad));
    await expectUnknownRelay(await postOuter(new Uint8Array(40), { ...bad, "Content-Type": "text/plain" }));
  });

  it("the listed relay's token is accepted; GET of the key configuration stays open to anyone", async () => {
    const { tn, encapsulatedRequest } = await sealedStore();
    const res = await postOuter(encapsulatedRequest);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("message/ohttp-res");
    expect(await liveCount(tn)).toBe(1);
    const keys = await fetchApp(GATEWAY);
    expect(keys.status).toBe(200);
  });

  it("a relay among several: any listed token is accepted, the order does not matter", async () => {
    const listed = JSON.parse(env.OHTTP_RELAYS ?? "[]") as { name: string; tokenSha256: string }[];
    const other = {
      name: "relay-b.example",
      tokenSha256: await sha256url("relay-b-token-0123456789abcdefghijkl"),
    };
    const several = { ...env, OHTTP_RELAYS: JSON.stringify([other, ...listed]) } as Env;
    for (const token of [RELAY_TOKEN, "relay-b-token-0123456789abcdefghijkl"]) {
      const { tn, encapsulatedRequest } = await sealedStore();
      const res = await postOuterWith(several, encapsulatedRequest, { "OHTTP-Relay-Token": token });
      expect(res.status).toBe(200);
      expect(await liveCount(tn)).toBe(1);
    }
    const { encapsulatedRequest } = await sealedStore();
    await expectUnknownRelay(
      await postOuterWith(several, encapsulatedRequest, {
        "OHTTP-Relay-Token": "relay-c-token-0123456789abcdefghijkl",
      }),
    );
  });

  it("without OHTTP_RELAYS the gateway is open: any sender, with or without a token", async () => {
    for (const unset of [
      { ...env, OHTTP_RELAYS: undefined },
      { ...env, OHTTP_RELAYS: "" },
    ] as Env[]) {
      for (const headers of [{}, { "OHTTP-Relay-Token": "anything-at-all" }] as Record<string, string>[]) {
        const { tn, encapsulatedRequest } = await sealedStore();
        const res = await postOuterWith(unset, encapsulatedRequest, headers);
        expect(res.status).toBe(200);
        expect(await liveCount(tn)).toBe(1);
      }
    }
  });

  it("a malformed OHTTP_RELAYS: 503 MISCONFIGURED on the gateway routes only, logged once without the secret", async () => {
    const secret = await sha256url(RELAY_TOKEN);
    const malformed = [
      "not json",
      "[]",
      "{}",
      JSON.stringify([{ name: "a", tokenSha256: "c2hvcnQ" }]),
      JSON.stringify([{ name: "a b", tokenSha256: secret }]),
      JSON.stringify([{ name: "", tokenSha256: secret }]),
      JSON.stringify([{ name: "x".repeat(65), tokenSha256: secret }]),
      JSON.stringify([
        { name: "a", tokenSha256: secret },
        { name: "a", tokenSha256: secret },
      ]),
      JSON.stringify([{ name: "a", tokenSha256: `${secret}=` }]),
      JSON.stringify([{ name: "a", token: RELAY_TOKEN }]),
      JSON.stringify([{ name: "a", tokenSha256: secret, token: RELAY_TOKEN }]),
    ];
    const log = vi.spyOn(console, "log");
    try {
      for (const raw of malformed) {
        const bad = { ...env, OHTTP_RELAYS: raw } as Env;
        for (let i = 0; i < 2; i++) {
          const { tn, encapsulatedRequest } = await sealedStore();
          const post = await postOuterWith(bad, encapsulatedRequest, FROM_RELAY);
          expect(post.status, raw).toBe(503);
          expect((await problemOf(post)).code).toBe("MISCONFIGURED");
          expect(await liveCount(tn)).toBe(0);
          const get = await app.fetch(new Request(GATEWAY), bad, createExecutionContext());
          expect(get.status, raw).toBe(503);
        }
        const health = await app.fetch(new Request(`${BASE}/health`), bad, createExecutionContext());
        expect(health.status).toBe(200);
      }
      const lines = log.mock.calls.map((call) => String(call[0]));
      expect(lines.filter((l) => l.includes("OHTTP_RELAYS"))).toHaveLength(malformed.length);
      expect(lines.join("\n")).not.toContain(secret);
      expect(lines.join("\n")).not.toContain(RELAY_TOKEN);
    } finally {
      log.mockRestore();
    }
  });
});
