/**
 * The ATIS access-JWT claim rules (src/stir/atis-claims.ts, docs/atis-api.md "The access JWT"):
 * path match of orig/dest/spc, action, the passports digest, exp at most 60 s (ATIS-1000105), and the
 * certificate coverage of spc/iss/sub and of DEST for retrieval. Attacks first, each with its code.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  ATIS_PUBLISH_ACTIONS,
  ATIS_RETRIEVE_ACTIONS,
  type AtisClaimExpectations,
  checkAtisClaims,
  checkAtisCoverage,
  coversDestination,
  coversIdentity,
  isAtisSpc,
} from "../../src/stir/atis-claims.js";
import { acceptedPassportsDigests, passportsDigest } from "../../src/stir/atis-digest.js";
import { parseSpcNumberBlocks } from "../../src/stir/number-blocks.js";
import { DEFAULT_TEST_TN_AUTH_LIST } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";

const ORIG = canonicalTn("12025550100");
const DEST = canonicalTn("12155551212");
const IAT = 1_700_000_000;
const PASSPORTS = ["aGVhZA.cGF5bG9hZA.c2ln"];
const BODY = { passports: PASSPORTS, object: { passports: PASSPORTS } };
const DIGESTS = await acceptedPassportsDigests(BODY);
const DIGEST_A = await passportsDigest("A", BODY);

/** A publish token's claims as the ATIS sample client sends them (TransNexus sti-oobs-sample). */
const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  iat: IAT,
  exp: IAT + 15,
  action: "publish",
  spc: "709J",
  iss: "709J",
  aud: "cps.example",
  jti: "0f5b1c9e-6f2a-4a8e-9a61-3c1f2d1e4b7a",
  dest: { tn: [DEST] },
  orig: { tn: ORIG },
  passports: DIGEST_A,
  ...extra,
});

const publish = (extra: Partial<AtisClaimExpectations> = {}): AtisClaimExpectations => ({
  actions: ATIS_PUBLISH_ACTIONS,
  dest: DEST,
  orig: ORIG,
  digests: DIGESTS,
  ...extra,
});
const retrieve = (extra: Partial<AtisClaimExpectations> = {}): AtisClaimExpectations => ({
  actions: ATIS_RETRIEVE_ACTIONS,
  dest: DEST,
  orig: ORIG,
  ...extra,
});

const codeOf = (c: Record<string, unknown>, e: AtisClaimExpectations): string => {
  try {
    checkAtisClaims(c, e);
    return "accepted";
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe("checkAtisClaims: refusals", () => {
  it("an action the route does not serve: AUTH_ACTION", () => {
    expect(codeOf(claims({ action: "retrieve" }), publish())).toBe("AUTH_ACTION");
    expect(codeOf(claims({ action: "publish" }), retrieve())).toBe("AUTH_ACTION");
    expect(codeOf(claims({ action: "republish" }), retrieve())).toBe("AUTH_ACTION");
    for (const action of ["keys:put", "PUBLISH", "", undefined, ["publish"]]) {
      expect(codeOf(claims({ action }), publish())).toBe("AUTH_ACTION");
    }
  });

  it("orig not the path's ORIG: ATIS_CLAIM_MISMATCH", () => {
    for (const orig of [
      { tn: "12025550101" },
      { tn: [ORIG, "12025550101"] },
      { tn: ["12025550101", ORIG] },
      { tn: [] },
      { tn: 12025550100 },
      { tn: `${ORIG}0` },
      { tn: "tel:+12025550100" },
      { uri: `sip:+${ORIG}@example.com` },
      { TN: ORIG },
      ORIG,
      [ORIG],
      null,
      undefined,
    ]) {
      expect([orig, codeOf(claims({ orig }), publish())]).toEqual([orig, "ATIS_CLAIM_MISMATCH"]);
    }
  });

  it("dest not naming the path's DEST, or holding anything but numbers: ATIS_CLAIM_MISMATCH", () => {
    for (const dest of [
      { tn: ["12155551213"] },
      { tn: "12155551213" },
      { tn: [] },
      { tn: [DEST, "not-a-number"] },
      { tn: [DEST, 5] },
      { tn: [...Array(64).fill("12155551213"), DEST] },
      { uri: [`sip:${DEST}@example.com`] },
      { tn: [[DEST]] },
      DEST,
      null,
      undefined,
    ]) {
      expect([dest, codeOf(claims({ dest }), publish())]).toEqual([dest, "ATIS_CLAIM_MISMATCH"]);
    }
  });

  it("on an SPC path, spc missing or not exactly the path's SPC: ATIS_CLAIM_MISMATCH", () => {
    const e = publish({ spc: "709J" });
    for (const spc of [undefined, "709j", "709", "709JJ", "OTHER"]) {
      expect([spc, codeOf(claims({ spc }), e)]).toEqual([spc, "ATIS_CLAIM_MISMATCH"]);
    }
    expect(codeOf(claims({ spc: "709J " }), e)).toBe("AUTH_MALFORMED");
    expect(codeOf(claims({ spc: "709J" }), e)).toBe("accepted");
  });

  it("spc, iss or sub that is not a short printable string: AUTH_MALFORMED", () => {
    for (const name of ["spc", "iss", "sub"]) {
      for (const value of [709, null, "", "a b", "x".repeat(65), ["709J"], { spc: "709J" }, "709J\n"]) {
        expect([name, value, codeOf(claims({ [name]: value }), publish())]).toEqual([
          name,
          value,
          "AUTH_MALFORMED",
        ]);
      }
    }
  });

  it("publish and republish: passports missing or not the body's digest: ATIS_DIGEST_MISMATCH", () => {
    for (const action of ["publish", "republish"]) {
      expect(codeOf(claims({ action, passports: undefined }), publish())).toBe("ATIS_DIGEST_MISMATCH");
      expect(codeOf(claims({ action, passports: `${DIGEST_A}x` }), publish())).toBe("ATIS_DIGEST_MISMATCH");
      expect(codeOf(claims({ action, passports: DIGEST_A.slice(7) }), publish())).toBe(
        "ATIS_DIGEST_MISMATCH",
      );
      // A route that forgot to compute the body's digests refuses every one (fail closed).
      expect(codeOf(claims({ action }), publish({ digests: undefined }))).toBe("ATIS_DIGEST_MISMATCH");
    }
  });

  it("exp not after iat, or on publish more than 60 s after it: ATIS_EXP_TOO_LONG", () => {
    for (const exp of [IAT + 61, IAT + 3600, IAT, IAT - 1, IAT + 0.5, "later", null]) {
      expect([exp, codeOf(claims({ exp }), publish())]).toEqual([exp, "ATIS_EXP_TOO_LONG"]);
    }
    for (const exp of [IAT, IAT - 1, IAT + 0.5, "later", null]) {
      expect([exp, codeOf(claims({ exp, action: "retrieve" }), retrieve())]).toEqual([
        exp,
        "ATIS_EXP_TOO_LONG",
      ]);
    }
  });

  it("a retrieve token's exp may be later than iat + 60 (VESPER's retrieve example: iat + 300)", () => {
    for (const exp of [IAT + 61, IAT + 300]) {
      expect([exp, codeOf(claims({ exp, action: "retrieve" }), retrieve())]).toEqual([exp, "accepted"]);
    }
  });

  it("several faults: the first in the documented order wins", () => {
    const all = { action: "publish", orig: { tn: "1" }, passports: "x", exp: IAT + 999, spc: 5 };
    expect(codeOf(claims({ ...all, action: "retrieve" }), publish())).toBe("AUTH_ACTION");
    expect(codeOf(claims(all), publish())).toBe("AUTH_MALFORMED");
    expect(codeOf(claims({ ...all, spc: "709J" }), publish())).toBe("ATIS_CLAIM_MISMATCH");
    expect(codeOf(claims({ ...all, spc: "709J", orig: { tn: ORIG } }), publish())).toBe(
      "ATIS_DIGEST_MISMATCH",
    );
    expect(codeOf(claims({ ...all, spc: "709J", orig: { tn: ORIG }, passports: DIGEST_A }), publish())).toBe(
      "ATIS_EXP_TOO_LONG",
    );
  });
});

describe("checkAtisClaims: accepted shapes", () => {
  it("the ATIS sample client's publish token on the SPC path", () => {
    expect(checkAtisClaims(claims(), publish({ spc: "709J" }))).toEqual({
      action: "publish",
      spc: "709J",
      iss: "709J",
      exp: IAT + 15,
      digestVariant: "A",
    });
  });

  it("orig as a string or a one-entry array, dest as a string or an array, numbers in any E.164 spelling", () => {
    for (const orig of [{ tn: ORIG }, { tn: [ORIG] }, { tn: `+${ORIG}` }, { tn: "+1-202-555-0100" }]) {
      for (const dest of [{ tn: DEST }, { tn: [DEST] }, { tn: ["12025550142", `+${DEST}`] }]) {
        expect(codeOf(claims({ orig, dest }), publish())).toBe("accepted");
      }
    }
    expect(codeOf(claims({ dest: { tn: [...Array(63).fill("12155551213"), DEST] } }), publish())).toBe(
      "accepted",
    );
  });

  it("exp absent, or up to iat + 60; spc optional off the SPC paths; iss/sub any SPC or number", () => {
    expect(checkAtisClaims(claims({ exp: undefined }), publish()).exp).toBeUndefined();
    expect(checkAtisClaims(claims({ exp: IAT + 60 }), publish()).exp).toBe(IAT + 60);
    const r = checkAtisClaims(claims({ spc: undefined, iss: ORIG, sub: ORIG }), publish());
    expect(r).toEqual({ action: "publish", iss: ORIG, sub: ORIG, exp: IAT + 15, digestVariant: "A" });
  });

  it("every digest variant; retrieve ignores a passports claim entirely", async () => {
    for (const v of ["A", "B", "C"] as const) {
      const passports = await passportsDigest(v, BODY);
      expect(checkAtisClaims(claims({ passports }), publish()).digestVariant).toBe(v);
    }
    const r = checkAtisClaims(
      claims({ action: "retrieve", passports: "garbage", exp: undefined }),
      retrieve(),
    );
    expect(r).toEqual({ action: "retrieve", spc: "709J", iss: "709J" });
  });

  it("isAtisSpc: 1 to 32 letters and digits", () => {
    for (const ok of ["709J", "a", "A".repeat(32), "0123"]) expect(isAtisSpc(ok)).toBe(true);
    for (const bad of ["", "A".repeat(33), "70-9", "709J ", "%37", "ü", "709J/x"])
      expect(isAtisSpc(bad)).toBe(false);
  });
});

describe("certificate coverage (after the chain validated)", () => {
  const list = DEFAULT_TEST_TN_AUTH_LIST; // SPC 709J, range 12025550100+100, one 12155551212
  const tnOnly: TnAuthList = [{ type: "range", start: "12025550100", count: 100 }];
  const twoSpcs: TnAuthList = [
    { type: "one", tn: "12155551212" },
    { type: "spc", spc: "AAAA" },
    { type: "spc", spc: "BBBB" },
  ];
  const blocks = parseSpcNumberBlocks(JSON.stringify({ "709J": ["1303"], BBBB: ["1404555xxxx"] }));
  const none = new Map();
  const code = (l: TnAuthList, c: Record<string, string>) => {
    try {
      checkAtisCoverage(l, c, blocks);
      return "accepted";
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  it("spc not listed, iss or sub not covered: CERT_NOT_AUTHORISED", () => {
    expect(code(list, { spc: "OTHER" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(list, { spc: "709j" })).toBe("CERT_NOT_AUTHORISED");
    // A number is not an SPC: spc is only ever matched against SPC entries.
    expect(code(list, { spc: "12155551212" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(tnOnly, { spc: "709J" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(list, { spc: "709J", iss: "OTHER" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(list, { iss: "709J", sub: "12025550200" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(list, { sub: "19995550100" })).toBe("CERT_NOT_AUTHORISED");
    expect(code(tnOnly, { iss: "709J" })).toBe("CERT_NOT_AUTHORISED");
  });

  it("covered: listed SPCs, TNs in a TN or range entry, TNs an SPC holds per SPC_NUMBER_BLOCKS", () => {
    expect(code(list, { spc: "709J", iss: "709J", sub: "12025550199" })).toBe("accepted");
    expect(code(list, { iss: "+12155551212" })).toBe("accepted");
    expect(code(list, { iss: "13035550100" })).toBe("accepted"); // 709J holds 1303...
    expect(coversIdentity(list, "13035550100", none)).toBe(false); // ...only through the operator's map
    expect(code(twoSpcs, { sub: "14045551234" })).toBe("accepted");
    expect(code(twoSpcs, { sub: "140455512345" })).toBe("CERT_NOT_AUTHORISED"); // a block has one length
  });

  it("publisher SPC: the token's spc, else iss if a listed SPC, else the first SPC entry, else none", () => {
    expect(checkAtisCoverage(twoSpcs, { spc: "BBBB", iss: "AAAA" }, none).publisherSpc).toBe("BBBB");
    expect(checkAtisCoverage(twoSpcs, { iss: "BBBB" }, none).publisherSpc).toBe("BBBB");
    expect(checkAtisCoverage(twoSpcs, { iss: "12155551212" }, none).publisherSpc).toBe("AAAA");
    expect(checkAtisCoverage(twoSpcs, {}, none).publisherSpc).toBe("AAAA");
    expect(checkAtisCoverage(tnOnly, { iss: "12025550100" }, none).publisherSpc).toBeNull();
  });

  it("coversDestination: the retrieve rule (TN or range entry, or a mapped SPC)", () => {
    expect(coversDestination(list, canonicalTn("12155551212"), none)).toBe(true);
    expect(coversDestination(list, canonicalTn("12025550142"), none)).toBe(true);
    expect(coversDestination(list, canonicalTn("12025550200"), none)).toBe(false);
    expect(coversDestination(list, canonicalTn("13035550100"), none)).toBe(false);
    expect(coversDestination(list, canonicalTn("13035550100"), blocks)).toBe(true);
    expect(coversDestination(tnOnly, canonicalTn("13035550100"), blocks)).toBe(false);
  });
});

describe("checkAtisClaims on junk (property)", () => {
  it("throws nothing but CpsError with a 4xx status, and accepts only claims naming the path", () => {
    const tnish = fc.oneof(
      fc.constant(ORIG),
      fc.constant(DEST),
      fc.constant(`+${ORIG}`),
      fc.string(),
      fc.integer(),
    );
    const member = fc.oneof(
      fc.record({ tn: fc.oneof(tnish, fc.array(tnish, { maxLength: 3 })) }),
      fc.jsonValue(),
    );
    const arb = fc.record(
      {
        action: fc.oneof(fc.constantFrom("publish", "republish", "retrieve"), fc.jsonValue()),
        iat: fc.oneof(fc.constant(IAT), fc.jsonValue()),
        exp: fc.oneof(fc.integer({ min: IAT - 5, max: IAT + 70 }), fc.jsonValue()),
        orig: member,
        dest: member,
        spc: fc.oneof(fc.constant("709J"), fc.jsonValue()),
        iss: fc.oneof(fc.constant("709J"), fc.jsonValue()),
        passports: fc.oneof(fc.constant(DIGEST_A), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(arb, fc.boolean(), (c, onSpcPath) => {
        const e = publish(onSpcPath ? { spc: "709J" } : {});
        try {
          const out = checkAtisClaims(c, e);
          // Accepted: the path's numbers are named, and the digest is the body's.
          expect(["publish", "republish"]).toContain(out.action);
          expect(c.passports).toBe(DIGEST_A);
          if (onSpcPath) expect(c.spc).toBe("709J");
        } catch (err) {
          expect(err).toBeInstanceOf(CpsError);
          expect((err as CpsError).status).toBeGreaterThanOrEqual(400);
          expect((err as CpsError).status).toBeLessThan(500);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
