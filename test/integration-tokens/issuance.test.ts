/**
 * Token issuance: GET /tokens/keys (current + next, never expired keys) and POST /tokens behind the
 * STIR credential bearer token, with batch limit and the per-credential daily quota (KV, coarse).
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { bearerFor } from "../helpers/pki.js";
import { BASE, pki } from "./helpers.js";

interface KeysDoc {
  keys: { id: string; status: string; publicKey: string; suite: string }[];
  limits: { maxUses: number; maxUsesPerNumber: number; batchMax: number };
}

async function issue(authorization: string | undefined, body: unknown, contentType = "application/json") {
  const headers: Record<string, string> = { "Content-Type": contentType };
  if (authorization) headers.Authorization = authorization;
  const res = await SELF.fetch(`${BASE}/tokens`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json<Record<string, unknown>>(), headers: res.headers };
}

const messages = (n: number, len = 256) =>
  Array.from({ length: n }, () => {
    const m = crypto.getRandomValues(new Uint8Array(len));
    m[0] = 0x01; // below any 2048-bit modulus with its top bit set
    return encodeBase64url(m);
  });

const validBearer = async () => bearerFor(await pki.credential("valid"), "tokens:issue");

describe("GET /tokens/keys", () => {
  it("publishes the current and the next key, not the expired one, with the limits", async () => {
    const res = await SELF.fetch(`${BASE}/tokens/keys`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toContain("max-age");
    const doc = await res.json<KeysDoc>();
    expect(doc.keys.map((k) => [k.id, k.status])).toEqual([
      ["test-current", "current"],
      ["test-next", "next"],
    ]);
    expect(doc.keys.every((k) => k.suite === "RSABSSA-SHA384-PSS-Randomized")).toBe(true);
    expect(doc.limits.maxUses).toBe(Number(env.TOKEN_MAX_USES));
    expect(doc.limits.maxUsesPerNumber).toBe(Number(env.TOKEN_MAX_USES_PER_NUMBER));
  });
});

describe("POST /tokens", () => {
  it("answers one blind signature of modulus length per blinded message", async () => {
    const res = await issue(await validBearer(), { keyId: "test-current", blindedMessages: messages(3) });
    expect(res.status).toBe(200);
    const sigs = res.body.blindSignatures as string[];
    expect(sigs).toHaveLength(3);
    expect(new Set(sigs).size).toBe(3);
  });

  it.each([
    [
      "batch over the limit",
      { keyId: "test-current", blindedMessages: messages(33) },
      400,
      "BATCH_TOO_LARGE",
    ],
    ["empty batch", { keyId: "test-current", blindedMessages: [] }, 400, "INVALID_BODY"],
    ["no keyId", { blindedMessages: messages(1) }, 400, "INVALID_BODY"],
    [
      "the next key (not yet valid)",
      { keyId: "test-next", blindedMessages: messages(1) },
      401,
      "TOKEN_UNKNOWN_KEY",
    ],
    ["an expired key", { keyId: "test-expired", blindedMessages: messages(1) }, 401, "TOKEN_UNKNOWN_KEY"],
    ["an unknown key", { keyId: "nope", blindedMessages: messages(1) }, 401, "TOKEN_UNKNOWN_KEY"],
    [
      "message of the wrong length",
      { keyId: "test-current", blindedMessages: messages(1, 255) },
      400,
      "TOKEN_MALFORMED",
    ],
    [
      "message not below the modulus",
      { keyId: "test-current", blindedMessages: [encodeBase64url(new Uint8Array(256).fill(0xff))] },
      400,
      "TOKEN_MALFORMED",
    ],
    ["message not base64url", { keyId: "test-current", blindedMessages: ["***"] }, 400, "TOKEN_MALFORMED"],
  ])("refuses %s: %i %s", async (_name, body, status, code) => {
    const res = await issue(await validBearer(), body);
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
  });

  const now = () => Math.floor(Date.now() / 1000);
  it.each([
    ["no bearer token", async () => undefined, 401, "AUTH_MISSING"],
    ["garbage bearer token", async () => "Bearer a.b.c", 401, "AUTH_MALFORMED"],
    [
      "expired token (iat 10 minutes ago)",
      async () => bearerFor(await pki.credential("valid"), "tokens:issue", { now: now() - 600 }),
      401,
      "AUTH_EXPIRED",
    ],
    [
      "wrong aud",
      async () =>
        bearerFor(await pki.credential("valid"), "tokens:issue", { audience: "https://other.example" }),
      401,
      "AUTH_AUDIENCE",
    ],
    ["wrong action", async () => bearerFor(await pki.credential("valid"), "keys:put"), 403, "AUTH_ACTION"],
    [
      "expired certificate",
      async () => bearerFor(await pki.credential("expired"), "tokens:issue"),
      403,
      "CERT_EXPIRED",
    ],
    [
      "certificate not chaining to the trust anchor",
      async () => bearerFor(await pki.credential("wrongAnchor"), "tokens:issue"),
      403,
      "CERT_UNTRUSTED",
    ],
    [
      "certificate under a non-CA intermediate",
      async () => bearerFor(await pki.credential("nonCaIntermediate"), "tokens:issue"),
      403,
      "CERT_CHAIN_INVALID",
    ],
    [
      "certificate without TNAuthList",
      async () => bearerFor(await pki.credential("noTnAuthList"), "tokens:issue"),
      403,
      "CERT_NO_TNAUTHLIST",
    ],
  ])("refuses a bad bearer token: %s -> %i %s", async (_name, make, status, code) => {
    const res = await issue(await make(), { keyId: "test-current", blindedMessages: messages(1) });
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(res.body.blindSignatures).toBeUndefined();
  });

  it("refuses a replayed jti", async () => {
    const header = await validBearer();
    expect((await issue(header, { keyId: "test-current", blindedMessages: messages(1) })).status).toBe(200);
    const again = await issue(header, { keyId: "test-current", blindedMessages: messages(1) });
    expect(again.status).toBe(401);
    expect(again.body.code).toBe("AUTH_REPLAYED");
  });

  it("enforces the daily quota per credential (TOKEN_DAILY_QUOTA) with 429 ISSUANCE_QUOTA", async () => {
    const quota = Number(env.TOKEN_DAILY_QUOTA);
    const fresh = await pki.issue({ subject: "CN=Quota Test SP" });
    const bearer = () => bearerFor(fresh, "tokens:issue");
    let issued = 0;
    while (issued + 32 <= quota) {
      expect(
        (await issue(await bearer(), { keyId: "test-current", blindedMessages: messages(32) })).status,
      ).toBe(200);
      issued += 32;
    }
    const over = await issue(await bearer(), {
      keyId: "test-current",
      blindedMessages: messages(quota - issued + 1),
    });
    expect(over.status).toBe(429);
    expect(over.body.code).toBe("ISSUANCE_QUOTA");
    expect(Number(over.headers.get("Retry-After"))).toBeGreaterThan(0);
    // Up to the quota exactly is still fine, and another credential is unaffected.
    if (quota > issued) {
      const exact = await issue(await bearer(), {
        keyId: "test-current",
        blindedMessages: messages(quota - issued),
      });
      expect(exact.status).toBe(200);
    }
    expect(
      (await issue(await validBearer(), { keyId: "test-current", blindedMessages: messages(1) })).status,
    ).toBe(200);
  });
});
