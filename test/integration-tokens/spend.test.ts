/**
 * Spending storage tokens on `POST /cps/{tn}/ppts` (RFC 8816 §7.5, docs/tokens.md) with the
 * local-dev switch off: the token and K_temp checks, exact counting under concurrency, and the
 * refusal table. Every refusal leaves the number's queue untouched (docs/design.md invariant 7).
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { StorageToken } from "../../src/stir/storage-token.js";
import { encodeStorageToken, TOKEN_HEADER, TOKEN_SIGNATURE_HEADER } from "../../src/stir/storage-token.js";
import {
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
