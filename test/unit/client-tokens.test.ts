/**
 * The AS/gateway view of a token wallet (src/client/store-tokens.ts): prefetch in batches, low-water
 * refill; and the wallet itself (src/client/token-wallet.ts) on the client's one HTTP path.
 */
import { RSABSSA } from "@cloudflare/blindrsa-ts";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError, CpsUnavailableError, StirClientError, StirOobError } from "../../src/client/errors.js";
import { type WalletLike, walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { tokenKeysAnswer } from "../helpers/token-keys.js";

function fakeWallet(start: number) {
  const calls: number[] = [];
  const w = {
    held: start,
    get size() {
      return w.held;
    },
    async refill(n: number) {
      calls.push(n);
      w.held += n;
      return n;
    },
    async storeHeaders() {
      if (w.held === 0) throw new Error("empty");
      w.held--;
      return { "CPS-Token": "t", "CPS-Token-Signature": "s" };
    },
  };
  return { w, calls };
}

const TN = canonicalTn("22225552222");

describe("walletTokens", () => {
  it("the real TokenWallet fits the interface", () => {
    const wallet: WalletLike = new TokenWallet({ cpsUrl: "https://cps.test", authorization: async () => "" });
    expect(wallet.size).toBe(0);
  });

  it("prefetch refills in batches only when the wallet holds fewer than the stores need", async () => {
    const { w, calls } = fakeWallet(1);
    const tokens = walletTokens(w, { batch: 10 });
    await tokens.prefetch?.("https://cps.test", 1);
    expect(calls).toEqual([]);
    await tokens.prefetch?.("https://cps.test", 3);
    expect(calls).toEqual([10]);
    expect(w.held).toBe(11);
  });

  it("spending below the low-water mark starts one background refill", async () => {
    const { w, calls } = fakeWallet(3);
    const tokens = walletTokens(w, { batch: 5, lowWater: 3 });
    const headers = await tokens.headersForStore("https://cps.test", TN, new Uint8Array(1));
    expect(headers["CPS-Token"]).toBe("t");
    await tokens.headersForStore("https://cps.test", TN, new Uint8Array(1));
    await tokens.prefetch?.("https://cps.test", 1); // waits for the refill in flight
    expect(calls).toEqual([5]);
    expect(w.held).toBe(6);
  });
});

/**
 * The wallet's HTTP goes through CpsClient (one client HTTP path): the same requests as before, and
 * the store path's timeouts, Retry-After handling and problem+json mapping. A scripted CPS blind-signs
 * with a real RSA key (the library's big-number path, as on Node), so finalize really verifies.
 */
type Outcome = "ok" | "busy" | "quota" | "hang";

interface SentRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

describe("TokenWallet through CpsClient", { timeout: 60_000 }, () => {
  let issuer: CryptoKeyPair;
  let spki: string;

  beforeAll(async () => {
    issuer = await RSABSSA.SHA384.generateKey({
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    });
    spki = encodeBase64url(
      new Uint8Array((await crypto.subtle.exportKey("spki", issuer.publicKey)) as ArrayBuffer),
    );
  });

  /** A CPS answering `GET /tokens/keys` and, per `outcomes`, each `POST /tokens`. */
  function scriptedCps(outcomes: Outcome[]) {
    const sent: SentRequest[] = [];
    const problem = (status: number, code: string, retryAfter: string) =>
      new Response(JSON.stringify({ type: "about:blank", title: code, status, code }), {
        status,
        headers: { "content-type": "application/problem+json", "retry-after": retryAfter },
      });
    const fetch = async (request: Request): Promise<Response> => {
      const url = new URL(request.url);
      const body = await request.text();
      sent.push({
        method: request.method,
        path: url.pathname,
        headers: Object.fromEntries(
          [...request.headers.entries()].filter(([k]) => k === "authorization" || k === "content-type"),
        ),
        body,
      });
      if (url.pathname === "/tokens/keys") {
        return tokenKeysAnswer(spki, 32);
      }
      const next = outcomes.shift() ?? "ok";
      if (next === "busy") return problem(503, "UNAVAILABLE", "1");
      if (next === "quota") return problem(429, "ISSUANCE_QUOTA", "30");
      if (next === "hang") {
        return new Promise((_resolve, reject) =>
          request.signal.addEventListener("abort", () => reject(request.signal.reason)),
        );
      }
      const { blindedMessages } = JSON.parse(body) as { blindedMessages: string[] };
      const signer = RSABSSA.SHA384.PSS.Randomized({ supportsRSARAW: false });
      const blindSignatures = await Promise.all(
        blindedMessages.map(async (m) =>
          encodeBase64url(await signer.blindSign(issuer.privateKey, decodeBase64url(m))),
        ),
      );
      return Response.json({ keyId: "k1", blindSignatures });
    };
    let n = 0;
    const authorization = async () => `Bearer cred-${++n}`;
    return { fetch, sent, authorization, posts: () => sent.filter((s) => s.method === "POST") };
  }

  it("an empty wallet says WALLET_EMPTY (a StirOobError with no HTTP status), not TOKEN_MISSING/401", async () => {
    const wallet = new TokenWallet({ cpsUrl: "https://cps.test" });
    const err = await wallet.storeHeaders(TN, new Uint8Array(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StirClientError);
    expect(err).toBeInstanceOf(StirOobError);
    expect(err).not.toBeInstanceOf(CpsError);
    expect((err as StirClientError).code).toBe("WALLET_EMPTY");
    expect(err).not.toHaveProperty("status");
  });

  it("refill without a credential is NO_CREDENTIAL and sends no request", async () => {
    const cps = scriptedCps([]);
    const wallet = new TokenWallet({ cpsUrl: "https://cps.test", fetch: cps.fetch });
    await expect(wallet.refill(1)).rejects.toMatchObject({ name: "StirClientError", code: "NO_CREDENTIAL" });
    expect(cps.sent).toEqual([]);
  });

  it("issues with the same requests as before: GET /tokens/keys, then POST /tokens (JSON, Authorization)", async () => {
    const cps = scriptedCps(["ok"]);
    const wallet = new TokenWallet({
      cpsUrl: "https://cps.test/",
      fetch: cps.fetch,
      authorization: cps.authorization,
    });
    expect(await wallet.refill(2)).toBe(2);
    expect(wallet.size).toBe(2);
    expect(cps.sent.map((s) => `${s.method} ${s.path}`)).toEqual(["GET /tokens/keys", "POST /tokens"]);
    expect(cps.sent[0]?.headers).toEqual({});
    expect(cps.sent[1]?.headers).toEqual({
      "content-type": "application/json",
      authorization: "Bearer cred-1",
    });
    const body = JSON.parse(cps.sent[1]?.body ?? "{}") as { keyId: string; blindedMessages: string[] };
    expect(Object.keys(body)).toEqual(["keyId", "blindedMessages"]);
    expect(body.keyId).toBe("k1");
    expect(body.blindedMessages).toHaveLength(2);
    // The tokens it holds pay for stores.
    const headers = await wallet.storeHeaders(TN, new Uint8Array(8));
    expect(Object.keys(headers).sort()).toEqual(["CPS-Token", "CPS-Token-Signature"]);
  });

  it("a problem answer to a token request carries the CPS's code through the root class; a 4xx is final", async () => {
    const cps = scriptedCps(["quota", "ok"]);
    const wallet = new TokenWallet({
      cpsUrl: "https://cps.test",
      fetch: cps.fetch,
      authorization: cps.authorization,
      retryDelayMs: 1,
    });
    const err = await wallet.refill(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StirOobError);
    expect(err).toBeInstanceOf(CpsError);
    const { code, status, retryAfter } = err as CpsError;
    expect({ code, status, retryAfter }).toEqual({ code: "ISSUANCE_QUOTA", status: 429, retryAfter: 30 });
    expect(cps.posts()).toHaveLength(1);
    expect(wallet.size).toBe(0);
  });

  it("a busy CPS's Retry-After on issuance is honoured as on stores, each try with a fresh credential token", async () => {
    const cps = scriptedCps(["busy", "ok"]);
    const wallet = new TokenWallet({
      cpsUrl: "https://cps.test",
      fetch: cps.fetch,
      authorization: cps.authorization,
      retryDelayMs: 1,
    });
    const t0 = performance.now();
    expect(await wallet.refill(1)).toBe(1);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
    const [first, second] = cps.posts();
    expect(cps.posts()).toHaveLength(2);
    expect(second?.body).toBe(first?.body);
    expect([first?.headers.authorization, second?.headers.authorization]).toEqual([
      "Bearer cred-1",
      "Bearer cred-2",
    ]);
  });

  it("a token request that times out is retried like a store; out of retries it is CpsUnavailableError", async () => {
    const retried = scriptedCps(["hang", "ok"]);
    const wallet = new TokenWallet({
      cpsUrl: "https://cps.test",
      fetch: retried.fetch,
      authorization: retried.authorization,
      timeoutMs: 50,
      retryDelayMs: 1,
    });
    expect(await wallet.refill(1)).toBe(1);
    expect(retried.posts()).toHaveLength(2);

    const lost = scriptedCps(["hang"]);
    const once = new TokenWallet({
      cpsUrl: "https://cps.test",
      fetch: lost.fetch,
      authorization: lost.authorization,
      timeoutMs: 50,
      retries: 0,
    });
    const err = await once.refill(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CpsUnavailableError);
    expect(err).toBeInstanceOf(StirOobError);
    expect((err as CpsUnavailableError).code).toBe("UNAVAILABLE");
    expect(lost.posts()).toHaveLength(1);
  });
});
