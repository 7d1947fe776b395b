/**
 * The `passports` digest of an ATIS publish token (src/stir/atis-digest.ts, docs/atis-api.md): each
 * variant a deployed client sends is accepted, everything near it is refused. Expected values are
 * computed here independently of the module (node:crypto createHash, and literals computed with
 * Python's hashlib/json, as the jodi prototype does), never with the code under test.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  acceptedPassportsDigests,
  type DigestVariant,
  matchAcceptedDigest,
  matchPassportsDigest,
  type PublishBodyForDigest,
  passportsDigest,
} from "../../src/stir/atis-digest.js";

const P1 = "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2ln";
const P2 = "aGVhZA.cGF5bG9hZA.c2lnbmF0dXJl";
const PASSPORTS = [P1, P2];
const BODY = { passports: PASSPORTS, object: { passports: PASSPORTS } };

// Python 3: json.dumps(PASSPORTS, separators=(',', ':')) / json.dumps(PASSPORTS), hashlib.sha256,
// base64.b64encode (of the digest, or of hexdigest().encode()), and for C json.dumps(body,
// sort_keys=True, separators=(',', ':')) -> base64.urlsafe_b64encode without '='.
const PY = {
  A: "sha256-RVjVL0YwmZMM9uxtoP8oboppAySyrwVOEBNlc1ZYcws=",
  B: "sha256-NDU1OGQ1MmY0NjMwOTk5MzBjZjZlYzZkYTBmZjI4NmU4YTY5MDMyNGIyYWYwNTRlMTAxMzY1NzM1NjU4NzMwYg==",
  Aspaced: "sha256-O8QyAEqWzI+l/OqIdTZIoz4h4Rcvzi8LvDtj/KxnYZI=",
  Bspaced: "sha256-M2JjNDMyMDA0YTk2Y2M4ZmE1ZmNlYTg4NzUzNjQ4YTMzZTIxZTExNzJmY2UyZjBiYmMzYjYzZmNhYzY3NjE5Mg==",
  C: "UKHJiSdOct9766nLucXOAyiusdW8JHSXANBvOWu62M4",
};

const sha = (text: string) => createHash("sha256").update(text, "utf8");
const atisA = (list: readonly string[]) => `sha256-${sha(JSON.stringify(list)).digest("base64")}`;
const jodiB = (list: readonly string[]) =>
  `sha256-${Buffer.from(sha(JSON.stringify(list)).digest("hex"), "utf8").toString("base64")}`;
const vesperC = (jcsText: string) => sha(jcsText).digest("base64url");

const refused = (claim: unknown, body: PublishBodyForDigest = BODY) =>
  expect(matchPassportsDigest(claim, body)).rejects.toMatchObject({
    code: "ATIS_DIGEST_MISMATCH",
    status: 403,
  });

describe("near misses are refused (ATIS_DIGEST_MISMATCH 403)", () => {
  it("the digest of the same PASSporTs in another order", async () => {
    const reversed = [...PASSPORTS].reverse();
    await refused(atisA(reversed));
    await refused(jodiB(reversed));
    await refused(vesperC(JSON.stringify({ passports: reversed })));
  });

  it("the digest of another body: one PASSporT dropped, added or one byte changed", async () => {
    await refused(atisA([P1]));
    await refused(atisA([P1, P2, P2]));
    await refused(atisA([P1, `${P2.slice(0, -1)}m`]));
    await refused(jodiB([P1]));
    await refused(vesperC(JSON.stringify({ passports: [P1] })));
  });

  it("the right value with one character changed, in each variant", async () => {
    for (const good of [PY.A, PY.B, PY.C, `sha256-${PY.C}`]) {
      for (const i of [7, 20, good.length - 3]) {
        const c = good[i] === "A" ? "B" : "A";
        await refused(good.slice(0, i) + c + good.slice(i + 1));
      }
      await refused(good.replace(/=+$/, "").slice(0, -1));
      await refused(`${good}A`);
    }
  });

  it("base64 and hex swapped, or the wrong base64 alphabet", async () => {
    const d = sha(JSON.stringify(PASSPORTS));
    const hex = d.copy().digest("hex");
    await refused(`sha256-${hex}`); // hex text itself, not base64 of it
    await refused(`sha256-${hex.toUpperCase()}`);
    await refused(`sha256-${Buffer.from(hex.toUpperCase()).toString("base64")}`); // B over upper-case hex
    // A in the base64url alphabet (Python's ", " text: its base64 digest has both '+' and '/').
    const spaced = sha(`[${PASSPORTS.map((p) => JSON.stringify(p)).join(", ")}]`).digest();
    expect(`sha256-${spaced.toString("base64")}`).toBe(PY.Aspaced);
    await refused(`sha256-${spaced.toString("base64url")}`);
    const jcs = sha(JSON.stringify({ passports: PASSPORTS }));
    await refused(jcs.copy().digest("base64")); // C in standard base64 with padding
    await refused(`${jcs.copy().digest("base64url")}=`); // C padded
    await refused(`sha256-${jcs.copy().digest("base64")}`); // JCS body hashed, A's encoding
  });

  it("a prefix missing where it is required, or spelled otherwise", async () => {
    await refused(PY.A.slice("sha256-".length));
    await refused(PY.B.slice("sha256-".length));
    for (const p of ["SHA256-", "sha-256-", "sha256:", "sha256_", " sha256-", "sha512-"]) {
      await refused(p + PY.A.slice("sha256-".length));
      await refused(p + PY.C);
    }
    await refused(`${PY.A} `);
    await refused(` ${PY.C}`);
  });

  it("variant C computed over the array only, or over the body's JSON text as sent (not JCS)", async () => {
    const body = { passports: PASSPORTS, object: { token: "x.y.z", passports: PASSPORTS } };
    await refused(vesperC(JSON.stringify(PASSPORTS)), body);
    await refused(vesperC(JSON.stringify(body.object)), body); // member order as sent, not sorted
    await refused(vesperC(JSON.stringify({ passports: PASSPORTS })), body); // the other members left out
  });

  it("a claim that is missing or not a string", async () => {
    for (const claim of [undefined, null, 1, true, [PY.A], { passports: PY.A }, ""]) await refused(claim);
    expect(() => matchAcceptedDigest(PY.A, new Map())).toThrow(
      expect.objectContaining({ code: "ATIS_DIGEST_MISMATCH" }),
    );
  });
});

describe("accepted variants", () => {
  it("A: the ATIS sample client's sha256- + base64 of SHA-256(JSON.stringify(passports))", async () => {
    expect(atisA(PASSPORTS)).toBe(PY.A);
    expect(await matchPassportsDigest(PY.A, BODY)).toBe("A");
    expect(await matchPassportsDigest(PY.A.replace(/=+$/, ""), BODY)).toBe("A");
    expect(await matchPassportsDigest(PY.Aspaced, BODY)).toBe("A");
  });

  it("B: the jodi prototype's sha256- + base64 of the lower-case hex digest text", async () => {
    expect(jodiB(PASSPORTS)).toBe(PY.B);
    expect(await matchPassportsDigest(PY.B, BODY)).toBe("B");
    expect(await matchPassportsDigest(PY.B.replace(/=+$/, ""), BODY)).toBe("B");
    expect(await matchPassportsDigest(PY.Bspaced, BODY)).toBe("B");
  });

  it("C: VESPER's base64url (no padding) SHA-256 of the JCS body, with or without sha256-", async () => {
    expect(vesperC(`{"passports":${JSON.stringify(PASSPORTS)}}`)).toBe(PY.C);
    expect(await matchPassportsDigest(PY.C, BODY)).toBe("C");
    expect(await matchPassportsDigest(`sha256-${PY.C}`, BODY)).toBe("C");
  });

  it("C covers the whole body, members sorted (RFC 8785 §3.2.3) whatever order they came in", async () => {
    const object = { token: "x.y.z", passports: PASSPORTS, b: [1, 2.5, true, null], a: { z: 1, y: "é" } };
    // Python: json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    const expected = "gcUjisW3HP_ijkt-CEqfaRACgq5VNGVHQg4Xe49jGWo";
    expect(
      vesperC(
        `{"a":{"y":"é","z":1},"b":[1,2.5,true,null],"passports":${JSON.stringify(PASSPORTS)},"token":"x.y.z"}`,
      ),
    ).toBe(expected);
    expect(await matchPassportsDigest(expected, { passports: PASSPORTS, object })).toBe("C");
    // A and B still hash only the array, so the extra members do not change them.
    expect(await matchPassportsDigest(PY.A, { passports: PASSPORTS, object })).toBe("A");
  });

  it("C uses RFC 8785's number, string and key-order rules (its §3.2.2, §3.2.3 examples)", async () => {
    const input =
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
      '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}';
    const jcs =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    const object = JSON.parse(input) as Record<string, unknown>;
    expect(await passportsDigest("C", { passports: [], object })).toBe(vesperC(jcs));
    const keys = JSON.parse(
      '{"\\u20ac":1,"\\r":2,"\\ufb33":3,"1":4,"\\ud83d\\ude00":5,"\\u0080":6,"\\u00f6":7}',
    );
    const sorted = '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\ud83d\ude00":5,"\ufb33":3}';
    expect(await passportsDigest("C", { passports: [], object: keys })).toBe(vesperC(sorted));
  });

  it("C over a parsed body with a __proto__ member hashes it like any member", async () => {
    const text = `{"__proto__":{"x":1},"passports":${JSON.stringify(PASSPORTS)}}`;
    const object = JSON.parse(text) as Record<string, unknown>;
    expect(await matchPassportsDigest(vesperC(text), { passports: PASSPORTS, object })).toBe("C");
    await refused(PY.C, { passports: PASSPORTS, object });
  });

  it("every value accepted for a body, and nothing else", async () => {
    const accepted = await acceptedPassportsDigests(BODY);
    const expected: [string, DigestVariant][] = [
      [PY.A, "A"],
      [PY.A.replace(/=+$/, ""), "A"],
      [PY.Aspaced, "A"],
      [PY.Aspaced.replace(/=+$/, ""), "A"],
      [PY.B, "B"],
      [PY.B.replace(/=+$/, ""), "B"],
      [PY.Bspaced, "B"],
      [PY.Bspaced.replace(/=+$/, ""), "B"],
      [PY.C, "C"],
      [`sha256-${PY.C}`, "C"],
    ];
    expect([...accepted.entries()].sort()).toEqual(expected.sort());
  });

  it("passportsDigest writes each variant as its clients do", async () => {
    expect(await passportsDigest("A", { passports: PASSPORTS })).toBe(PY.A);
    expect(await passportsDigest("B", { passports: PASSPORTS })).toBe(PY.B);
    expect(await passportsDigest("C", { passports: PASSPORTS })).toBe(PY.C);
    for (const v of ["A", "B", "C"] as const) {
      expect(await matchPassportsDigest(await passportsDigest(v, BODY), BODY)).toBe(v);
    }
  });

  it("a real-size body: ten 8 KiB PASSporTs", async () => {
    const big = Array.from(
      { length: 10 },
      (_, i) => `${"a".repeat(4000)}.${String(i).repeat(4000)}.${"s".repeat(86)}`,
    );
    const body = { passports: big, object: { passports: big } };
    expect(await matchPassportsDigest(atisA(big), body)).toBe("A");
    expect(await matchPassportsDigest(jodiB(big), body)).toBe("B");
    expect(await matchPassportsDigest(vesperC(JSON.stringify({ passports: big })), body)).toBe("C");
  });
});

describe("no other string matches (property)", () => {
  it("a random claim, or a right one with any one character changed, is refused", async () => {
    const accepted = await acceptedPassportsDigests(BODY);
    const goods = [...accepted.keys()];
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), (claim) => {
        fc.pre(!accepted.has(claim));
        expect(() => matchAcceptedDigest(claim, accepted)).toThrow(
          expect.objectContaining({ code: "ATIS_DIGEST_MISMATCH" }),
        );
      }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...goods),
        fc.nat(),
        fc.string({ minLength: 1, maxLength: 1 }),
        (good, at, ch) => {
          const i = at % good.length;
          const mutated = good.slice(0, i) + ch + good.slice(i + 1);
          fc.pre(mutated !== good && !goods.includes(mutated));
          expect(() => matchAcceptedDigest(mutated, accepted)).toThrow(
            expect.objectContaining({ code: "ATIS_DIGEST_MISMATCH" }),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
