import fc from "fast-check";
import { base64url, CompactSign } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  canonicalJson,
  createPassport,
  decodePassport,
  fromCompactForm,
  type PassportClaims,
  toCompactForm,
  verifyPassport,
} from "../../src/stir/passport.js";

const NOW = 1_700_000_000;
const X5U = "https://cert.example.org/passport.cer";
const claims: PassportClaims = {
  attest: "A",
  dest: { tn: ["12125551213"] },
  iat: NOW,
  orig: { tn: "12155551212" },
  origid: "123e4567-e89b-12d3-a456-426655440000",
};
const enc = (v: unknown) => base64url.encode(JSON.stringify(v));

let keys: CryptoKeyPair;
let other: CryptoKeyPair;
let good: string;

beforeAll(async () => {
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  keys = (await crypto.subtle.generateKey(alg, false, ["sign", "verify"])) as CryptoKeyPair;
  other = (await crypto.subtle.generateKey(alg, false, ["sign", "verify"])) as CryptoKeyPair;
  good = await createPassport({ x5u: X5U, ppt: "shaken", claims }, keys.privateKey);
});

// Signs arbitrary header/payload JSON with the test key, bypassing createPassport's own checks.
async function rawJws(header: Record<string, unknown>, payload: unknown): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header as { alg: string })
    .sign(keys.privateKey);
}

describe("PASSporT create and verify (RFC 8225, RFC 8588)", () => {
  it("a shaken PASSporT round-trips with its header and claims", async () => {
    const out = await verifyPassport(good, keys.publicKey, { now: NOW + 10 });
    expect(out.header).toEqual({ alg: "ES256", ppt: "shaken", typ: "passport", x5u: X5U });
    expect(out.claims).toEqual(claims);
  });

  it("the key may come from a resolver that sees the checked header", async () => {
    const seen: string[] = [];
    await verifyPassport(
      good,
      (h) => {
        seen.push(h.x5u);
        return keys.publicKey;
      },
      { now: NOW },
    );
    expect(seen).toEqual([X5U]);
  });

  it("the iat window is configurable", async () => {
    await expect(verifyPassport(good, keys.publicKey, { now: NOW + 100 })).rejects.toMatchObject({
      code: "PASSPORT_STALE",
    });
    await expect(
      verifyPassport(good, keys.publicKey, { now: NOW + 100, freshnessSeconds: 120 }),
    ).resolves.toBeDefined();
  });

  it("compact form drops the payload and rebuilds byte for byte (RFC 8225 §7)", () => {
    const compact = toCompactForm(good);
    expect(compact).toMatch(/^[\w-]+\.\.[\w-]+$/);
    expect(fromCompactForm(compact, { ...claims })).toBe(good);
    expect(() => toCompactForm(compact)).toThrow(CpsError);
    expect(() => fromCompactForm(good, claims)).toThrow(CpsError);
  });

  it("createPassport refuses shaken claims without attest", async () => {
    const { attest: _a, ...noAttest } = claims;
    await expect(
      createPassport({ x5u: X5U, ppt: "shaken", claims: noAttest as PassportClaims }, keys.privateKey),
    ).rejects.toMatchObject({ code: "PASSPORT_CLAIMS" });
  });
});

const header = { alg: "ES256", ppt: "shaken", typ: "passport", x5u: X5U };

describe("PASSporT verification refuses", () => {
  it.each([
    ["alg none", async () => `${enc({ ...header, alg: "none" })}.${enc(claims)}.`, "PASSPORT_ALG"],
    [
      "alg none with a signature",
      async () => `${enc({ ...header, alg: "none" })}.${enc(claims)}.AAAA`,
      "PASSPORT_ALG",
    ],
    ["alg HS256", async () => `${enc({ ...header, alg: "HS256" })}.${enc(claims)}.c2ln`, "PASSPORT_ALG"],
    ["alg RS256", async () => `${enc({ ...header, alg: "RS256" })}.${enc(claims)}.c2ln`, "PASSPORT_ALG"],
    ["alg ES384", async () => `${enc({ ...header, alg: "ES384" })}.${enc(claims)}.c2ln`, "PASSPORT_ALG"],
    ["typ jwt", async () => rawJws({ ...header, typ: "JWT" }, claims), "PASSPORT_MALFORMED"],
    ["unsupported ppt", async () => rawJws({ ...header, ppt: "div" }, claims), "PASSPORT_PPT_UNSUPPORTED"],
    [
      "missing x5u",
      async () => rawJws({ alg: "ES256", ppt: "shaken", typ: "passport" }, claims),
      "PASSPORT_MALFORMED",
    ],
    [
      "crit header",
      async () => `${enc({ ...header, crit: ["x"], x: 1 })}.${enc(claims)}.c2ln`,
      "PASSPORT_MALFORMED",
    ],
    [
      "tampered payload",
      async () => {
        const [h, , s] = good.split(".");
        return `${h}.${enc({ ...claims, orig: { tn: "12155551213" } })}.${s}`;
      },
      "PASSPORT_SIGNATURE",
    ],
    [
      "tampered signature",
      async () => `${good.slice(0, -4)}${good.endsWith("AAAA") ? "BBBB" : "AAAA"}`,
      "PASSPORT_SIGNATURE",
    ],
    [
      "signature by another key",
      async () => createPassport({ x5u: X5U, ppt: "shaken", claims }, other.privateKey),
      "PASSPORT_SIGNATURE",
    ],
    ["stale iat", async () => rawJws(header, { ...claims, iat: NOW - 61 }), "PASSPORT_STALE"],
    ["iat in the future", async () => rawJws(header, { ...claims, iat: NOW + 61 }), "PASSPORT_STALE"],
    ["string iat", async () => rawJws(header, { ...claims, iat: String(NOW) }), "PASSPORT_CLAIMS"],
    [
      "orig with both tn and uri",
      async () => rawJws(header, { ...claims, orig: { tn: "12155551212", uri: "sip:a@b" } }),
      "PASSPORT_CLAIMS",
    ],
    [
      "orig tn with a plus",
      async () => rawJws(header, { ...claims, orig: { tn: "+12155551212" } }),
      "PASSPORT_CLAIMS",
    ],
    [
      "dest tn not an array",
      async () => rawJws(header, { ...claims, dest: { tn: "12125551213" } }),
      "PASSPORT_CLAIMS",
    ],
    ["dest empty", async () => rawJws(header, { ...claims, dest: {} }), "PASSPORT_CLAIMS"],
    [
      "dest uri not a URI",
      async () => rawJws(header, { ...claims, dest: { uri: ["alice"] } }),
      "PASSPORT_CLAIMS",
    ],
    ["attest D", async () => rawJws(header, { ...claims, attest: "D" }), "PASSPORT_CLAIMS"],
    ["missing origid", async () => rawJws(header, { ...claims, origid: undefined }), "PASSPORT_CLAIMS"],
    ["two segments", async () => good.split(".").slice(0, 2).join("."), "PASSPORT_MALFORMED"],
    ["compact form", async () => toCompactForm(good), "PASSPORT_MALFORMED"],
    ["non-JSON header", async () => `${base64url.encode("nope")}.${enc(claims)}.c2ln`, "PASSPORT_MALFORMED"],
  ] as const)("%s", async (_name, make, code) => {
    const jws = await make();
    await expect(verifyPassport(jws, keys.publicKey, { now: NOW })).rejects.toMatchObject({ code });
  });
});

describe("properties", () => {
  it("decodePassport throws nothing but CpsError on any string", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9_.-]{0,200}$/)), (s) => {
        try {
          decodePassport(s);
        } catch (e) {
          if (!(e instanceof CpsError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });

  it("decodePassport throws nothing but CpsError on JWS-shaped JSON junk", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (h, p) => {
        try {
          decodePassport(`${enc(h)}.${enc(p)}.c2ln`);
        } catch (e) {
          if (!(e instanceof CpsError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });

  it("canonicalJson is order-independent and parses back to the same value", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        const out = canonicalJson(obj);
        expect(canonicalJson(reversed)).toBe(out);
        expect(JSON.parse(out)).toEqual(JSON.parse(JSON.stringify(obj)));
        // No whitespace added: same length as JSON.stringify of the same value in any key order.
        expect(out.length).toBe(JSON.stringify(obj).length);
      }),
    );
  });
});
