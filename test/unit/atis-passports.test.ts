/**
 * The ATIS publish body and the verification of every PASSporT in it (src/stir/atis-passports.ts,
 * docs/atis-api.md): bad shapes get their stable codes, a PASSporT that is not for the path, stale,
 * forged or of an unsupported kind is refused, and the key resolver (the x5u fetch at the CPS) is never
 * called for a PASSporT whose cheap checks already fail (threat model #10). Real keys from the test
 * PKI, real PASSporTs from createPassport.
 */
import fc from "fast-check";
import { CompactSign } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import { matchPassportsDigest, passportsDigest } from "../../src/stir/atis-digest.js";
import {
  MAX_PUBLISH_PASSPORTS,
  parsePublishBody,
  verifyPublishedPassport,
} from "../../src/stir/atis-passports.js";
import {
  createPassport,
  type PassportClaims,
  type PassportHeader,
  toCompactForm,
} from "../../src/stir/passport.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";

const X5U = "https://certs.example/sp.pem";
const ORIG = canonicalTn("12025550100");
const DEST = canonicalTn("12025550142");
const NOW = Math.floor(Date.now() / 1000);

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const shaken = (extra: Partial<Record<keyof PassportClaims | string, unknown>> = {}): PassportClaims =>
  ({
    attest: "A",
    dest: { tn: [DEST] },
    iat: NOW,
    orig: { tn: ORIG },
    origid: "123e4567-e89b-12d3-a456-426655440000",
    ...extra,
  }) as PassportClaims;

const passport = (claims: PassportClaims = shaken(), ppt: string | null = "shaken") =>
  createPassport({ x5u: X5U, ...(ppt === null ? {} : { ppt }), claims }, pki.valid.privateKey);

/** A JWS with any header and payload, signed with the valid key (for headers createPassport refuses). */
const raw = (header: Record<string, unknown>, claims: unknown) =>
  new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader(header as { alg: string })
    .sign(pki.valid.privateKey);

/** A resolver that counts its calls: the x5u fetch the CPS would make. */
function resolver(key?: () => CryptoKey) {
  const calls: PassportHeader[] = [];
  const resolveKey = async (h: PassportHeader) => {
    calls.push(h);
    return key ? key() : pki.valid.publicKey;
  };
  return { calls, resolveKey };
}

const verify = (
  jws: string,
  r = resolver(),
  extra: { dest?: CanonicalTn; orig?: CanonicalTn; now?: number } = {},
) => verifyPublishedPassport(jws, { dest: DEST, orig: ORIG, now: NOW, resolveKey: r.resolveKey, ...extra });

describe("parsePublishBody: bad bodies get stable codes", () => {
  const body = (value: unknown) => JSON.stringify(value);
  const code = (text: string) => {
    try {
      parsePublishBody(text);
    } catch (err) {
      expect(err).toBeInstanceOf(CpsError);
      return (err as CpsError).code;
    }
    return "accepted";
  };

  it("not JSON, or JSON that is not an object: INVALID_BODY", () => {
    for (const text of [
      "",
      "{",
      "passports",
      "{'passports':[]}",
      "\ufeff{}",
      "[]",
      "null",
      "1",
      '"x"',
      "true",
    ]) {
      expect(code(text)).toBe("INVALID_BODY");
    }
  });

  it("passports missing, not an array, empty, too many, or holding anything but full-form JWS", () => {
    const jws = "aGVhZA.cGF5bG9hZA.c2ln";
    const bad: unknown[] = [
      {},
      { passport: [jws] },
      { Passports: [jws] },
      { passports: jws },
      { passports: { 0: jws } },
      { passports: null },
      { passports: [] },
      { passports: Array(MAX_PUBLISH_PASSPORTS + 1).fill(jws) },
      { passports: [jws, 1] },
      { passports: [jws, null] },
      { passports: [[jws]] },
      { passports: [{ jws }] },
      { passports: ["aGVhZA..c2ln"] }, // compact form: needs the SIP headers to rebuild
      { passports: ["aGVhZA.cGF5bG9hZA"] },
      { passports: ["aGVhZA.cGF5bG9hZA.c2ln.eHh4"] },
      { passports: [".cGF5bG9hZA.c2ln"] },
      { passports: ["aGVhZA.cGF5bG9hZA."] },
      { passports: ["aGVhZA.cGF5bG9hZA.c2ln=="] },
      { passports: ["aGVh+A.cGF5bG9hZA.c2ln"] },
      { passports: ["aGVh/A.cGF5bG9hZA.c2ln"] },
      { passports: [" aGVhZA.cGF5bG9hZA.c2ln"] },
      { passports: ["aGVhZA.cGF5bG9hZA.c2ln\n"] },
      { passports: [""] },
      { passports: [`aGVhZA.${"a".repeat(8192)}.c2ln`] },
    ];
    for (const value of bad) expect([value, code(body(value))]).toEqual([value, "ATIS_PASSPORTS_INVALID"]);
    // __proto__ in JSON is an own member named "__proto__", never the object's passports.
    expect(code(`{"__proto__":{"passports":["${jws}"]}}`)).toBe("ATIS_PASSPORTS_INVALID");
  });

  it("JSON nested deeper than 32 levels: INVALID_BODY, not a stack overflow later (the JCS digest, the fingerprint)", async () => {
    const deep = (n: number) =>
      `{"passports":["aGVhZA.cGF5bG9hZA.c2ln"],"x":${"[".repeat(n)}${"]".repeat(n)}}`;
    // A 60 KB body (under the 64 KiB limit) of 30,000 nested arrays overflowed the recursive JCS.
    expect(code(deep(30_000))).toBe("INVALID_BODY");
    expect(code(deep(32))).toBe("INVALID_BODY");
    expect(code(`{"passports":["aGVhZA.cGF5bG9hZA.c2ln"],"x":${'{"a":'.repeat(40)}1${"}".repeat(40)}}`)).toBe(
      "INVALID_BODY",
    );
    const ok = parsePublishBody(deep(31));
    expect(await matchPassportsDigest(await passportsDigest("C", ok), ok)).toBe("C");
  });

  it("1 to 10 full-form PASSporTs of up to 8192 characters; other members kept for the digest, ignored otherwise", () => {
    const jws = "aGVhZA.cGF5bG9hZA.c2ln";
    const longest = `aGVhZA.${"a".repeat(8192 - 12)}.c2ln`;
    expect(longest).toHaveLength(8192);
    expect(parsePublishBody(body({ passports: [jws] })).passports).toEqual([jws]);
    expect(parsePublishBody(body({ passports: [longest] })).passports).toEqual([longest]);
    const ten = Array.from({ length: 10 }, () => jws);
    expect(parsePublishBody(body({ passports: ten })).passports).toEqual(ten);
    const withToken = parsePublishBody(body({ token: "x.y.z", passports: [jws], n: 1 }));
    expect(withToken.passports).toEqual([jws]);
    expect(withToken.object).toEqual({ token: "x.y.z", passports: [jws], n: 1 });
    expect(parsePublishBody(` \n${body({ passports: [jws] })}\n`).passports).toEqual([jws]);
  });
});

describe("verifyPublishedPassport: refusals, and no key lookup for a PASSporT already wrong", () => {
  it("orig not the path's ORIG: ATIS_PASSPORT_MISMATCH, resolver never called", async () => {
    const r = resolver();
    await expect(verify(await passport(shaken({ orig: { tn: "12025550101" } })), r)).rejects.toMatchObject({
      code: "ATIS_PASSPORT_MISMATCH",
      status: 400,
    });
    await expect(
      verify(await passport(shaken({ orig: { uri: "sip:alice@example.com" } })), r),
    ).rejects.toMatchObject({
      code: "ATIS_PASSPORT_MISMATCH",
    });
    expect(r.calls).toHaveLength(0);
  });

  it("the path's DEST not among dest.tn: ATIS_PASSPORT_MISMATCH, resolver never called", async () => {
    const r = resolver();
    for (const dest of [{ tn: ["12025550143"] }, { uri: ["sip:bob@example.com"] }, { tn: ["1202555014"] }]) {
      await expect(verify(await passport(shaken({ dest })), r)).rejects.toMatchObject({
        code: "ATIS_PASSPORT_MISMATCH",
      });
    }
    // The PASSporT of another call to the same callee, published under this call's path.
    await expect(verify(await passport(), r, { orig: canonicalTn("12025550199") })).rejects.toMatchObject({
      code: "ATIS_PASSPORT_MISMATCH",
    });
    expect(r.calls).toHaveLength(0);
  });

  it("iat more than 60 s off: PASSPORT_STALE, resolver never called", async () => {
    const r = resolver();
    for (const iat of [NOW - 61, NOW + 61, 0]) {
      await expect(verify(await passport(shaken({ iat })), r)).rejects.toMatchObject({
        code: "PASSPORT_STALE",
      });
    }
    expect(r.calls).toHaveLength(0);
  });

  it("signed by another key, or payload swapped: PASSPORT_SIGNATURE", async () => {
    await expect(
      verify(
        await passport(),
        resolver(() => pki.expired.publicKey),
      ),
    ).rejects.toMatchObject({
      code: "PASSPORT_SIGNATURE",
    });
    const a = await passport();
    const b = await passport(shaken({ attest: "C" }));
    const [h, , s] = a.split(".");
    const forged = `${h}.${b.split(".")[1]}.${s}`;
    await expect(verify(forged)).rejects.toMatchObject({ code: "PASSPORT_SIGNATURE" });
  });

  it("the resolver's refusal (untrusted chain, fetch failure) is passed through", async () => {
    const failing = {
      calls: [],
      resolveKey: async () => {
        throw new CpsError("CERT_UNTRUSTED", "not under a trust anchor");
      },
    };
    await expect(verify(await passport(), failing)).rejects.toMatchObject({ code: "CERT_UNTRUSTED" });
  });

  it("alg, typ, ppt and SHAKEN claim rules of passport.ts apply", async () => {
    const c = shaken();
    const r = resolver();
    // Headers no P-256 key can sign: written out with a dummy signature, refused before any crypto.
    const seg = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    for (const alg of ["ES384", "none", "HS256", "RS256"]) {
      const jws = `${seg({ alg, typ: "passport", ppt: "shaken", x5u: X5U })}.${seg(c)}.c2ln`;
      await expect(verify(jws, r)).rejects.toMatchObject({ code: "PASSPORT_ALG" });
    }
    await expect(verify(await raw({ alg: "ES256", typ: "JWT", x5u: X5U }, c), r)).rejects.toMatchObject({
      code: "PASSPORT_MALFORMED",
    });
    await expect(
      verify(await raw({ alg: "ES256", typ: "passport", ppt: "div", x5u: X5U }, c), r),
    ).rejects.toMatchObject({
      code: "PASSPORT_PPT_UNSUPPORTED",
    });
    await expect(
      verify(
        await raw({ alg: "ES256", typ: "passport", ppt: "shaken", x5u: X5U }, { ...c, origid: undefined }),
        r,
      ),
    ).rejects.toMatchObject({
      code: "PASSPORT_CLAIMS",
    });
    // The jodi prototype's orig.tn as an array is not an RFC 8225 orig: refused as a claim error.
    await expect(
      verify(
        await raw({ alg: "ES256", typ: "passport", ppt: "shaken", x5u: X5U }, { ...c, orig: { tn: [ORIG] } }),
        r,
      ),
    ).rejects.toMatchObject({
      code: "PASSPORT_CLAIMS",
    });
    await expect(verify(toCompactForm(await passport()), r)).rejects.toMatchObject({
      code: "PASSPORT_MALFORMED",
    });
    expect(r.calls).toHaveLength(0);
  });
});

describe("verifyPublishedPassport: accepted", () => {
  it("a SHAKEN PASSporT for the path: decoded, the key resolved once from its header", async () => {
    const r = resolver();
    const out = await verify(
      await passport(shaken({ dest: { tn: ["12025550199", DEST] }, iat: NOW - 60 })),
      r,
    );
    expect(out.claims.iat).toBe(NOW - 60);
    expect(out.claims.orig).toEqual({ tn: ORIG });
    expect(r.calls).toEqual([expect.objectContaining({ x5u: X5U, ppt: "shaken", alg: "ES256" })]);
  });

  it("a PASSporT without ppt (RFC 8225 base) and one in the TransNexus sample's member order", async () => {
    const base = await passport(
      { dest: { tn: [DEST] }, iat: NOW + 5, orig: { tn: ORIG } } as PassportClaims,
      null,
    );
    expect((await verify(base)).header.ppt).toBeUndefined();
    // Header and claims not in RFC 8225 §9 order, as a JSON.stringify client writes them.
    const sample = await raw(
      { alg: "ES256", ppt: "shaken", typ: "passport", x5u: X5U },
      { attest: "B", dest: { tn: [DEST] }, iat: NOW, orig: { tn: ORIG }, origid: "c0ffee" },
    );
    expect((await verify(sample)).claims.attest).toBe("B");
  });
});

describe("parsePublishBody on junk (property)", () => {
  it("throws nothing but INVALID_BODY or ATIS_PASSPORTS_INVALID, and what it accepts is well formed", () => {
    const jwsish = fc.stringMatching(/^[A-Za-z0-9_.=+/ -]{0,40}$/);
    const bodies = fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .record({ passports: fc.oneof(fc.array(jwsish, { maxLength: 12 }), fc.jsonValue()) })
        .map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(bodies, (text) => {
        try {
          const out = parsePublishBody(text);
          expect(out.passports.length).toBeGreaterThanOrEqual(1);
          expect(out.passports.length).toBeLessThanOrEqual(MAX_PUBLISH_PASSPORTS);
          for (const p of out.passports)
            expect(p).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
        } catch (err) {
          expect(err).toBeInstanceOf(CpsError);
          expect(["INVALID_BODY", "ATIS_PASSPORTS_INVALID"]).toContain((err as CpsError).code);
        }
      }),
      { numRuns: 500 },
    );
  });
});
