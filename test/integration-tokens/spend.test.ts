/**
 * Spending storage tokens on `POST /cps/{tn}/ppts` (RFC 8816 §7.5, docs/tokens.md) with the
 * local-dev switch off: the token and K_temp checks, exact counting under concurrency, and the
 * refusal table. Every refusal leaves the number's queue untouched (docs/design.md invariant 7).
 */
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { isCpsError } from "../../src/errors.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import type { StorageToken } from "../../src/stir/storage-token.js";
import { encodeStorageToken, TOKEN_HEADER, TOKEN_SIGNATURE_HEADER } from "../../src/stir/storage-token.js";
import {
  BASE,
  directToken,
  issuerPrivateKey,
  liveCount,
  sealedFor,
  store,
  tokenHeaders,
  wallet,
} from "./helpers.js";

const MAX_USES = Number(env.TOKEN_MAX_USES);
const MAX_PER_NUMBER = Number(env.TOKEN_MAX_USES_PER_NUMBER);
let n = 0;
/** A fresh called number per test, so counts never leak between rows. */
const freshTn = () => `1202555${String(1000 + n++).padStart(4, "0")}`;

describe("storing with a storage token", () => {
  it("refuses a store without token headers: 401 TOKEN_MISSING (switch off)", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const res = await store(tn, text);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe("TOKEN_MISSING");
    expect(await liveCount(tn)).toBe(0);
  });

  it("stores with a token obtained through POST /tokens (blind issuance end to end)", async () => {
    const w = wallet();
    expect(await w.refill(2)).toBe(2);
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const { decodeEnvelope } = await import("../../src/stir/envelope.js");
    const res = await store(tn, text, await w.storeHeaders(tn, decodeEnvelope(text)));
    expect(res.status).toBe(201);
    expect(res.headers.get("Location")).toBe(`/cps/${tn}/ppts/${res.body.id}`);
    expect(await liveCount(tn)).toBe(1);
    expect(w.size).toBe(1);
  });

  it("accepts a P-256 K_temp as well as Ed25519", async () => {
    const w = wallet(1, "P-256");
    await w.refill(1);
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const { decodeEnvelope } = await import("../../src/stir/envelope.js");
    expect((await store(tn, text, await w.storeHeaders(tn, decodeEnvelope(text)))).status).toBe(201);
  });
});

describe("refusals (each leaves the queue unchanged)", () => {
  let current: CryptoKey;
  beforeAll(async () => {
    current = await issuerPrivateKey("test-current");
  });

  type Case = (tn: string, text: string) => Promise<Record<string, string>>;
  const cases: [string, number, string, Case][] = [
    [
      "forged token (random signature bytes)",
      401,
      "TOKEN_INVALID",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", current);
        const forged: StorageToken = { ...token, signature: crypto.getRandomValues(new Uint8Array(256)) };
        return tokenHeaders(forged, privateKey, tn, text);
      },
    ],
    [
      "token signed by another RSA key under the current key id",
      401,
      "TOKEN_INVALID",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", await issuerPrivateKey("fresh"));
        return tokenHeaders(token, privateKey, tn, text);
      },
    ],
    [
      "token whose K_temp was swapped for another key's",
      401,
      "TOKEN_INVALID",
      async (tn, text) => {
        const a = await directToken("test-current", current);
        const b = await directToken("test-current", current);
        return tokenHeaders({ ...a.token, kTempSpki: b.token.kTempSpki }, b.privateKey, tn, text);
      },
    ],
    [
      "token from a revoked (no longer configured) key id",
      401,
      "TOKEN_UNKNOWN_KEY",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-revoked", await issuerPrivateKey("fresh"));
        return tokenHeaders(token, privateKey, tn, text);
      },
    ],
    [
      "token from an expired key (past notAfter)",
      401,
      "TOKEN_UNKNOWN_KEY",
      async (tn, text) => {
        const { token, privateKey } = await directToken(
          "test-expired",
          await issuerPrivateKey("test-expired"),
        );
        return tokenHeaders(token, privateKey, tn, text);
      },
    ],
    [
      "token from the next key (before notBefore)",
      401,
      "TOKEN_UNKNOWN_KEY",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-next", await issuerPrivateKey("test-next"));
        return tokenHeaders(token, privateKey, tn, text);
      },
    ],
    [
      "K_temp signature over another number",
      401,
      "TOKEN_INVALID",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", current);
        return tokenHeaders(token, privateKey, `${tn.slice(0, -1)}${(Number(tn.at(-1)) + 1) % 10}`, text);
      },
    ],
    [
      "K_temp signature over another blob",
      401,
      "TOKEN_INVALID",
      async (tn) => {
        const { token, privateKey } = await directToken("test-current", current);
        return tokenHeaders(token, privateKey, tn, (await sealedFor(tn)).text);
      },
    ],
    [
      "K_temp signature by another key",
      401,
      "TOKEN_INVALID",
      async (tn, text) => {
        const a = await directToken("test-current", current);
        const b = await directToken("test-current", current);
        return tokenHeaders(a.token, b.privateKey, tn, text);
      },
    ],
    [
      "token header without signature header",
      401,
      "TOKEN_MISSING",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", current);
        const h = await tokenHeaders(token, privateKey, tn, text);
        return { [TOKEN_HEADER]: h[TOKEN_HEADER] ?? "" };
      },
    ],
    [
      "garbage token",
      400,
      "TOKEN_MALFORMED",
      async () => ({ [TOKEN_HEADER]: "v1.x.y.z.w", [TOKEN_SIGNATURE_HEADER]: "AA" }),
    ],
    [
      "wrong token version",
      400,
      "TOKEN_MALFORMED",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", current);
        const h = await tokenHeaders(token, privateKey, tn, text);
        return { ...h, [TOKEN_HEADER]: (h[TOKEN_HEADER] ?? "").replace(/^v1\./, "v2.") };
      },
    ],
    [
      "truncated K_temp signature",
      400,
      "TOKEN_MALFORMED",
      async (tn, text) => {
        const { token, privateKey } = await directToken("test-current", current);
        const h = await tokenHeaders(token, privateKey, tn, text);
        return { ...h, [TOKEN_SIGNATURE_HEADER]: (h[TOKEN_SIGNATURE_HEADER] ?? "").slice(0, 40) };
      },
    ],
  ];

  it.each(cases)("%s -> %i %s", async (_name, status, code, make) => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const res = await store(tn, text, await make(tn, text));
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(res.headers.get("Content-Type")).toContain("application/problem+json");
    expect(await liveCount(tn)).toBe(0);
  });

  it("a refused token is not counted: the same token then stores", async () => {
    const tn = freshTn();
    const { token, privateKey } = await directToken("test-current", current);
    const { text } = await sealedFor(tn);
    const other = (await sealedFor(tn)).text;
    // Signature over another blob: refused, and must not use up the token.
    const bad = await store(tn, text, await tokenHeaders(token, privateKey, tn, other));
    expect(bad.status).toBe(401);
    const good = await store(tn, text, await tokenHeaders(token, privateKey, tn, text));
    expect(good.status).toBe(201);
  });
});

describe("which refusal wins when several things are wrong (the order of the checks)", () => {
  // Media type, size, token headers, number and envelope (decoded once), then the signatures and the
  // spend (src/http/storage-token.ts): a store wrong in several ways is refused by the first check.
  let current: CryptoKey;
  beforeAll(async () => {
    current = await issuerPrivateKey("test-current");
  });
  const BAD_TN = "12x";
  const BAD_BODY = "not an envelope";

  async function post(
    path: string,
    body: string,
    headers: Record<string, string>,
    type = "application/passport",
  ) {
    const res = await SELF.fetch(`${BASE}${path}`, {
      method: "POST",
      headers: { "Content-Type": type, ...headers },
      body,
    });
    return { status: res.status, code: (await res.json<Record<string, unknown>>()).code };
  }

  async function goodHeaders(tn: string, text: string) {
    const { token, privateKey } = await directToken("test-current", current);
    return tokenHeaders(token, privateKey, tn, text);
  }

  it("the media type before the token headers: 415 UNSUPPORTED_MEDIA_TYPE", async () => {
    expect(await post(`/cps/${BAD_TN}/ppts`, BAD_BODY, {}, "text/plain")).toEqual({
      status: 415,
      code: "UNSUPPORTED_MEDIA_TYPE",
    });
  });

  it("missing token headers before a bad number or body: 401 TOKEN_MISSING", async () => {
    expect(await post(`/cps/${BAD_TN}/ppts`, BAD_BODY, {})).toEqual({ status: 401, code: "TOKEN_MISSING" });
  });

  it("a malformed token before a bad number or body: 400 TOKEN_MALFORMED", async () => {
    const garbage = { [TOKEN_HEADER]: "v1.x.y.z.w", [TOKEN_SIGNATURE_HEADER]: "AA" };
    expect(await post(`/cps/${BAD_TN}/ppts`, BAD_BODY, garbage)).toEqual({
      status: 400,
      code: "TOKEN_MALFORMED",
    });
  });

  it("an unknown issuer key before a bad number or body: 401 TOKEN_UNKNOWN_KEY", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const { token, privateKey } = await directToken("test-expired", current);
    const headers = await tokenHeaders(token, privateKey, tn, text);
    expect(await post(`/cps/${BAD_TN}/ppts`, BAD_BODY, headers)).toEqual({
      status: 401,
      code: "TOKEN_UNKNOWN_KEY",
    });
  });

  it("a bad number before a bad body or signature: 400 INVALID_TN", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    expect(await post(`/cps/${BAD_TN}/ppts`, BAD_BODY, await goodHeaders(tn, text))).toEqual({
      status: 400,
      code: "INVALID_TN",
    });
  });

  it("a bad body before the signatures: the envelope decoder's code, not TOKEN_INVALID", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    let expected: { status: number; code: string } | undefined;
    try {
      decodeEnvelope(BAD_BODY);
    } catch (e) {
      if (isCpsError(e)) expected = { status: e.status, code: e.code };
    }
    expect(expected?.status).toBe(400);
    expect(await post(`/cps/${tn}/ppts`, BAD_BODY, await goodHeaders(tn, text))).toEqual(expected);
    expect(await liveCount(tn)).toBe(0);
  });

  it("then the signatures: a valid token signed over another blob is 401 TOKEN_INVALID", async () => {
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const other = (await sealedFor(tn)).text;
    expect(await post(`/cps/${tn}/ppts`, text, await goodHeaders(tn, other))).toEqual({
      status: 401,
      code: "TOKEN_INVALID",
    });
    expect(await liveCount(tn)).toBe(0);
  });
});

describe("counting (TokenLedger Durable Object)", () => {
  it(`50 concurrent spends of one token over 50 numbers: exactly TOKEN_MAX_USES succeed`, async () => {
    const current = await issuerPrivateKey("test-current");
    const { token, privateKey } = await directToken("test-current", current);
    const spends = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const tn = freshTn();
        const { text } = await sealedFor(tn);
        return { tn, headers: await tokenHeaders(token, privateKey, tn, text), text };
      }),
    );
    const results = await Promise.all(spends.map((s) => store(s.tn, s.text, s.headers)));
    const created = results.filter((r) => r.status === 201).length;
    expect(created).toBe(MAX_USES);
    const refused = results.filter((r) => r.status === 429);
    expect(refused).toHaveLength(50 - MAX_USES);
    for (const r of refused) expect(r.body.code).toBe("TOKEN_SPENT");
    // And the stores that were refused left nothing behind.
    const stored = await Promise.all(spends.map((s) => liveCount(s.tn)));
    expect(stored.reduce((a, b) => a + b, 0)).toBe(MAX_USES);
  });

  it("at most TOKEN_MAX_USES_PER_NUMBER stores per number per window, then 429 with Retry-After", async () => {
    const current = await issuerPrivateKey("test-current");
    const { token, privateKey } = await directToken("test-current", current);
    const tn = freshTn();
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof store>> | undefined;
    for (let i = 0; i < MAX_PER_NUMBER + 1; i++) {
      const { text } = await sealedFor(tn);
      last = await store(tn, text, await tokenHeaders(token, privateKey, tn, text));
      statuses.push(last.status);
    }
    expect(statuses).toEqual([...Array(MAX_PER_NUMBER).fill(201), 429]);
    expect(last?.body.code).toBe("TOKEN_RATE_LIMITED");
    expect(Number(last?.headers.get("Retry-After"))).toBeGreaterThan(0);
    // Another number is still open for the same token.
    const other = freshTn();
    const { text } = await sealedFor(other);
    expect((await store(other, text, await tokenHeaders(token, privateKey, other, text))).status).toBe(201);
  });

  // docs/tokens.md "Retried stores": a client that lost the answer sends the same request again.
  it("the same request sent again is a retry: same id, one blob, one use counted", async () => {
    const current = await issuerPrivateKey("test-current");
    const { token, privateKey } = await directToken("test-current", current);
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const headers = await tokenHeaders(token, privateKey, tn, text);
    const first = await store(tn, text, headers);
    // Twice in a row, then twice at once (a retry racing a slow first attempt).
    const again = [await store(tn, text, headers), await store(tn, text, headers)];
    again.push(...(await Promise.all([store(tn, text, headers), store(tn, text, headers)])));
    expect(first.status).toBe(201);
    for (const res of again) {
      expect(res.status).toBe(201);
      expect(res.body.id).toBe(first.body.id);
      expect(res.headers.get("Location")).toBe(first.headers.get("Location"));
    }
    expect(await liveCount(tn)).toBe(1);
    // Only one use went: the token still pays for TOKEN_MAX_USES - 1 other stores, then is spent.
    const others = [];
    for (let i = 0; i < MAX_USES; i++) {
      const other = freshTn();
      const sealed = await sealedFor(other);
      others.push(await store(other, sealed.text, await tokenHeaders(token, privateKey, other, sealed.text)));
    }
    expect(others.map((r) => r.status)).toEqual([...Array(MAX_USES - 1).fill(201), 429]);
    expect(others.at(-1)?.body.code).toBe("TOKEN_SPENT");
    expect(encodeStorageToken(token)).toBe(headers[TOKEN_HEADER]);
  });

  it("a retry still passes once the token is spent, and a new blob under it does not", async () => {
    const current = await issuerPrivateKey("test-current");
    const { token, privateKey } = await directToken("test-current", current);
    const sent = [];
    for (let i = 0; i < MAX_USES; i++) {
      const tn = freshTn();
      const { text } = await sealedFor(tn);
      const headers = await tokenHeaders(token, privateKey, tn, text);
      sent.push({ tn, text, headers, res: await store(tn, text, headers) });
    }
    expect(sent.map((s) => s.res.status)).toEqual(Array(MAX_USES).fill(201));
    const last = sent.at(-1)!;
    const retried = await store(last.tn, last.text, last.headers);
    expect(retried.status).toBe(201);
    expect(retried.body.id).toBe(last.res.body.id);
    // Same number, new blob: a new store, and the token has none left.
    const { text } = await sealedFor(last.tn);
    const fresh = await store(last.tn, text, await tokenHeaders(token, privateKey, last.tn, text));
    expect(fresh.status).toBe(429);
    expect(fresh.body.code).toBe("TOKEN_SPENT");
    expect(await liveCount(last.tn)).toBe(1);
  });
});
