/**
 * The client library through an Oblivious HTTP relay (RFC 9458, docs/ohttp.md): every request of the
 * AS, the VS, discovery and the key lookup leaves as a padded `message/ohttp-req` POST to the relay,
 * and the CPS's answers (errors and Retry-After included) come back unchanged. A scripted relay and
 * gateway (src/ohttp's own gateway functions) stand in front of the in-memory CPS (client-fake-cps.ts);
 * the real relay and gateway Workers are exercised in test/e2e/ohttp.test.ts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadGlobals, UsageError } from "../../src/cli/common.js";
import { splitCommand } from "../../src/cli/main.js";
import { AuthenticationService } from "../../src/client/as.js";
import { CpsClient, CpsUnavailableError } from "../../src/client/cps-client.js";
import { Discovery } from "../../src/client/discovery.js";
import { StirClientError } from "../../src/client/errors.js";
import { OhttpRelay } from "../../src/client/relay.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { watch } from "../../src/client/watch.js";
import { CpsError } from "../../src/errors.js";
import {
  decapsulateRequest,
  decodeRequest,
  encodeKeyConfigs,
  encodeResponse,
  type GatewayKey,
  generateGatewayKeyEntry,
  isOhttpError,
  OHTTP_KEY_PROBLEM_TYPE,
  parseGatewayKeys,
  responseFromFetch,
} from "../../src/ohttp/index.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type FakeCps, fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = "+2 222 555 2222";
const BOB_TN = canonicalTn(BOB);
const RELAY = "https://relay.test/gateways/cps";

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: canonicalTn(ALICE) }] });
});

interface Outer {
  method: string;
  url: string;
  bodyLength: number;
}

/**
 * A relay at relay.test in front of a gateway in front of `cps`. `outer` records what the relay
 * sees; the CPS sees only what the gateway decapsulated. `keys` may be swapped (rotation).
 */
async function relayed(cps: FakeCps, options: { maxAge?: number } = {}) {
  const state: { keys: GatewayKey[]; tamper: boolean; hang: boolean; outer: Outer[]; answers: number[] } = {
    keys: await parseGatewayKeys(JSON.stringify([generateGatewayKeyEntry(1)])),
    tamper: false,
    hang: false,
    outer: [],
    answers: [],
  };
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const req = new Request(input, init);
    const body = new Uint8Array(await req.arrayBuffer());
    state.outer.push({ method: req.method, url: req.url, bodyLength: body.length });
    if (state.hang) {
      return new Promise((_, reject) =>
        req.signal.addEventListener("abort", () => reject(req.signal.reason), { once: true }),
      );
    }
    if (req.method === "GET" && req.url === `${RELAY}/keys`) {
      return new Response(encodeKeyConfigs(state.keys.map((k) => k.config)), {
        headers: {
          "content-type": "application/ohttp-keys",
          "cache-control": `public, max-age=${options.maxAge ?? 3600}`,
        },
      });
    }
    if (req.method !== "POST" || req.url !== RELAY) return new Response("no", { status: 404 });
    if (req.headers.get("content-type") !== "message/ohttp-req") return new Response(null, { status: 415 });
    try {
      const { request, context } = await decapsulateRequest(state.keys, body);
      const inner = decodeRequest(request);
      const answer = await cps.fetch(`${inner.scheme}://${inner.authority}${inner.path}`, {
        method: inner.method,
        headers: inner.headers,
        ...(inner.body.length > 0 ? { body: inner.body } : {}),
      });
      const sealed = await context.encapsulateResponse(encodeResponse(await responseFromFetch(answer)));
      if (state.tamper) sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 1;
      state.answers.push(sealed.length);
      return new Response(sealed, { headers: { "content-type": "message/ohttp-res" } });
    } catch (err) {
      // As the CPS's gateway answers (docs/wire-format.md §3.7): 400 with the RFC 9458 §5.3 type.
      if (isOhttpError(err)) {
        const type = err.keyConfigProblem ? OHTTP_KEY_PROBLEM_TYPE : "about:blank";
        return Response.json(
          { type, status: 400 },
          { status: 400, headers: { "content-type": "application/problem+json" } },
        );
      }
      throw err;
    }
  };
  return { state, fetch };
}

/** Fails the test on any request that does not go to the relay. */
function onlyRelay(relayFetch: (i: string | URL | Request, init?: RequestInit) => Promise<Response>) {
  return async (input: string | URL | Request, init?: RequestInit) => {
    const url = new Request(input, init).url;
    if (!url.startsWith("https://relay.test/")) throw new Error(`direct request to ${url}`);
    return relayFetch(input, init);
  };
}

describe("a call placed and verified through the relay (RFC 8816 §13, RFC 9458)", () => {
  it("discovery, key lookup, store and retrieval all go through the relay, each the same length", async () => {
    // Bob's key is served with its record, signed by a credential covering Bob (RFC 8816 §11).
    const bobCred = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB_TN }], subject: "bob" });
    const cps = fakeCps({ signer: bobCred });
    const { state, fetch } = await relayed(cps);
    const { keyPair, publicKey } = await generateRecipientKeyPair();
    await cps.registerKey(BOB, "bob-phone", publicKey);
    const relay = new OhttpRelay({ url: RELAY, fetch: onlyRelay(fetch) });
    const discovery = new Discovery({ bootstrap: cps.base, relay, requireRelay: true });
    const as = new AuthenticationService({
      credential: { privateKey: pki.valid.privateKey, x5u: "https://certs.test/a.pem", chain: pki.valid.pem },
      discovery,
      relay,
      requireRelay: true,
      trustAnchors: [pki.root.certificate],
    });
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored).toHaveLength(1);

    const key: CalleeKey = { kid: "bob-phone", privateKey: keyPair };
    const vs = new VerificationService({
      keys: [key],
      trustAnchors: [pki.root.certificate],
      resolveCertificate: async () => parseCertificateChain(pki.valid.pem),
      discovery,
      relay,
      requireRelay: true,
    });
    const result = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("verified");

    // The CPS saw every inner request, the relay only POSTs (and one key configuration fetch).
    expect(cps.log).toEqual([
      "GET /.well-known/stir-oob",
      `GET /keys?prefix=${BOB_TN.slice(0, -2)}xx`,
      `POST /cps/${BOB_TN}/ppts`,
      `GET /cps/${BOB_TN}/ppts`,
    ]);
    expect(state.outer.map((o) => `${o.method} ${o.url}`)).toEqual([
      `GET ${RELAY}/keys`,
      ...Array(4).fill(`POST ${RELAY}`),
    ]);
    // Item 4: a lookup, a store and a retrieval are one length on the wire, and so are the answers.
    const posts = state.outer.filter((o) => o.method === "POST").map((o) => o.bodyLength);
    expect(new Set(posts).size).toBe(1);
    expect(new Set(state.answers).size).toBe(1);
  });

  it("token fetches go through the relay too (TokenWallet sends through CpsClient)", async () => {
    const cps = fakeCps();
    const { state, fetch } = await relayed(cps);
    const wallet = new TokenWallet({
      cpsUrl: cps.base,
      relay: new OhttpRelay({ url: RELAY, fetch: onlyRelay(fetch) }),
      authorization: async () => "Bearer x",
    });
    // The fake CPS has no token issuer: the 404 problem comes back through the relay unchanged.
    await expect(wallet.fetchKeys()).rejects.toMatchObject({ code: "NOT_FOUND", status: 404 });
    expect(cps.log).toEqual(["GET /tokens/keys"]);
    expect(state.outer.at(-1)?.method).toBe("POST");
  });
});

describe("answers through the relay map as direct ones do", () => {
  it("a problem answer keeps its code, status and Retry-After", async () => {
    const busy = {
      fetch: async () =>
        new Response(JSON.stringify({ code: "RATE_LIMITED", title: "Slow down" }), {
          status: 429,
          headers: { "content-type": "application/problem+json", "retry-after": "7" },
        }),
    } as unknown as FakeCps;
    const { fetch } = await relayed(busy);
    const client = new CpsClient({ baseUrl: "https://cps.test", relay: { url: RELAY }, fetch });
    const err = await client.list(BOB_TN).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CpsError);
    expect(err).toMatchObject({ code: "RATE_LIMITED", status: 429, retryAfter: 7, message: "Slow down" });
  });

  it("a 5xx store is retried through the relay, and a 4xx is final", async () => {
    const cps = fakeCps();
    const { fetch } = await relayed(cps);
    const client = new CpsClient({ baseUrl: cps.base, relay: { url: RELAY }, fetch, retryDelayMs: 1 });
    cps.failStores(1, 503, "UNAVAILABLE");
    const blob = "A".repeat(100);
    // 503 then the bad blob: retried once, then the final 400 BLOB_SIZE comes back as a CpsError.
    const err = await client.store(BOB_TN, blob).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CpsError);
    expect(err).toMatchObject({ code: "BLOB_SIZE", status: 400 });
    expect(cps.log).toEqual([`POST /cps/${BOB_TN}/ppts`, `POST /cps/${BOB_TN}/ppts`]);
  });

  it("the key configuration is fetched once, and again after the gateway rotates its key", async () => {
    const cps = fakeCps();
    const { state, fetch } = await relayed(cps);
    const client = new CpsClient({ baseUrl: cps.base, relay: { url: RELAY }, fetch });
    await client.list(BOB_TN);
    await client.list(BOB_TN);
    expect(state.outer.filter((o) => o.method === "GET")).toHaveLength(1);
    // Rotation: the cached key id is gone at the gateway; one 422, one fresh fetch, then success.
    state.keys = await parseGatewayKeys(JSON.stringify([generateGatewayKeyEntry(2)]));
    expect(await client.list(BOB_TN)).toHaveLength(2);
    expect(state.outer.map((o) => o.method)).toEqual(["GET", "POST", "POST", "POST", "GET", "POST"]);
  });

  it("a relay's own refusal (429) is a lost answer: no key refetch, no second try", async () => {
    const cps = fakeCps();
    const { state, fetch } = await relayed(cps);
    const limited = async (input: string | URL | Request, init?: RequestInit) => {
      if (new Request(input, init).method === "POST") {
        state.outer.push({ method: "POST", url: RELAY, bodyLength: 0 });
        return Response.json(
          { code: "RELAY_RATE_LIMITED" },
          { status: 429, headers: { "retry-after": "10" } },
        );
      }
      return fetch(input, init);
    };
    const client = new CpsClient({ baseUrl: cps.base, relay: { url: RELAY }, fetch: limited });
    await expect(client.list(BOB_TN)).rejects.toBeInstanceOf(CpsUnavailableError);
    expect(state.outer.map((o) => o.method)).toEqual(["GET", "POST"]);
    expect(cps.log).toEqual([]);
  });

  it("a tampered answer is a lost answer (CpsUnavailableError), never a made-up response", async () => {
    const cps = fakeCps();
    const { state, fetch } = await relayed(cps);
    const client = new CpsClient({ baseUrl: cps.base, relay: { url: RELAY }, fetch });
    state.tamper = true;
    const err = await client.list(BOB_TN).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CpsUnavailableError);
    expect((err as Error).message).toContain("through the relay");
  });

  it("a relay that does not answer times out like a CPS that does not", async () => {
    const cps = fakeCps();
    const { state, fetch } = await relayed(cps);
    const client = new CpsClient({ baseUrl: cps.base, relay: { url: RELAY }, fetch, timeoutMs: 50 });
    await client.list(BOB_TN); // key configuration cached
    state.hang = true;
    const t = Date.now();
    await expect(client.list(BOB_TN)).rejects.toBeInstanceOf(CpsUnavailableError);
    expect(Date.now() - t).toBeLessThan(2_000);
  });
});

describe("requireRelay", () => {
  it("refuses to send anything without a relay (RELAY_REQUIRED), for every part", async () => {
    const sent: string[] = [];
    const fetch = async (input: string | URL | Request) => {
      sent.push(String(input));
      return new Response("{}");
    };
    const client = new CpsClient({ baseUrl: "https://cps.test", fetch, requireRelay: true });
    await expect(client.list(BOB_TN)).rejects.toMatchObject({ code: "RELAY_REQUIRED" });
    const discovery = new Discovery({ bootstrap: "https://cps.test", fetch, requireRelay: true });
    await expect(discovery.locate(BOB_TN)).rejects.toBeInstanceOf(StirClientError);
    const wallet = new TokenWallet({
      cpsUrl: "https://cps.test",
      fetch: (r) => fetch(r),
      requireRelay: true,
    });
    await expect(wallet.fetchKeys()).rejects.toMatchObject({ code: "RELAY_REQUIRED" });
    expect(sent).toEqual([]);
  });

  it("watch (a WebSocket) refuses under requireRelay: push cannot go through OHTTP", () => {
    let dialled = false;
    expect(() =>
      watch({
        cps: "https://cps.test",
        target: { tn: BOB },
        onFrame: () => {},
        requireRelay: true,
        connect: () => {
          dialled = true;
          throw new Error("dialled");
        },
      }),
    ).toThrow(expect.objectContaining({ code: "RELAY_REQUIRED" }));
    expect(dialled).toBe(false);
  });
});

describe("CLI: --relay and --require-relay", () => {
  it("are global flags, accepted before the command", () => {
    expect(splitCommand(["--relay", RELAY, "--require-relay", "verify", "--to", BOB])).toEqual({
      command: "verify",
      rest: ["--to", BOB, "--relay", RELAY, "--require-relay"],
    });
  });

  it("build one relay for the command; a relay URL that is not http(s) is a usage error", async () => {
    const g = await loadGlobals({ home: "/nonexistent-stir-oob", relay: RELAY, "require-relay": true });
    expect(g.transport.relay).toBeInstanceOf(OhttpRelay);
    expect(g.transport.relay instanceof OhttpRelay && g.transport.relay.keysUrl).toBe(`${RELAY}/keys`);
    expect(g.transport.requireRelay).toBe(true);
    await expect(loadGlobals({ home: "/nonexistent-stir-oob", relay: "ftp://x" })).rejects.toBeInstanceOf(
      UsageError,
    );
  });
});
