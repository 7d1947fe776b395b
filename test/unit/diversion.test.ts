/**
 * src/stir/diversion.ts and the div/div-o claim shapes of src/stir/passport.ts (RFC 8946 §3 `div`,
 * §5 `div-o` and `opt`): building diversion claims, the link rules, the chain walk with a stub link
 * check, and what a diverting service must store.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type ChainLink,
  DEFAULT_MAX_DIVERSIONS,
  divClaims,
  divertedFrom,
  type LinkCheckInput,
  linkProblem,
  MAX_CHAIN_CHECKS,
  passportsToStore,
  verifyChain,
} from "../../src/stir/diversion.js";
import {
  checkPassportClaims,
  createPassport,
  type DecodedPassport,
  decodePassport,
  type PassportClaims,
} from "../../src/stir/passport.js";
import { canonicalTn } from "../../src/stir/tn.js";

const ALICE = canonicalTn("11115551111");
const CAROL = canonicalTn("33335553333");
const BOB = canonicalTn("22225552222");
const DAVE = canonicalTn("44445554444");
const X5U = "https://certs.example.test/x.pem";
const PPTS = ["shaken", "div", "div-o"];

let key: CryptoKey;
beforeAll(async () => {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  key = pair.privateKey;
});

const base: PassportClaims = {
  attest: "A",
  dest: { tn: [CAROL] },
  iat: 1_700_000_000,
  orig: { tn: ALICE },
  origid: "o",
};

async function sign(ppt: string, claims: PassportClaims): Promise<ChainLink> {
  const passport = await createPassport({ x5u: X5U, ppt, claims }, key);
  const decoded = decodePassport(passport, { supportedPpt: PPTS });
  return { passport, decoded, kind: ppt === "div" || ppt === "div-o" ? ppt : "original" };
}

describe("div and opt claim shapes (passport.ts, RFC 8946 §3, §5)", () => {
  const div = { dest: { tn: [BOB] }, iat: 1, orig: { tn: ALICE } };
  it.each([
    ["div missing", { ...div }, "div"],
    ["div a string", { ...div, div: "12345" }, "div"],
    ["div an array", { ...div, div: [{ tn: CAROL }] }, "div"],
    ["div.tn an array (one number only)", { ...div, div: { tn: [CAROL] } }, "div"],
    ["div.tn not canonical", { ...div, div: { tn: "+1 333 555 3333" } }, "div"],
    ["div with tn and uri", { ...div, div: { tn: CAROL, uri: "sip:c@example.com" } }, "div"],
    ["div with an unknown member", { ...div, div: { phone: CAROL } }, "div"],
    ["div-o without opt", { ...div, div: { tn: CAROL } }, "div-o"],
    ["div-o opt not a JWS", { ...div, div: { tn: CAROL }, opt: "abc" }, "div-o"],
    ["div-o opt in compact form", { ...div, div: { tn: CAROL }, opt: "a..c" }, "div-o"],
    ["div-o opt an object", { ...div, div: { tn: CAROL }, opt: { orig: 1 } }, "div-o"],
  ])("%s -> PASSPORT_CLAIMS", (_name, claims, ppt) => {
    expect(() => checkPassportClaims(claims, ppt)).toThrow(
      expect.objectContaining({ code: "PASSPORT_CLAIMS" }),
    );
  });

  it("accepts div {tn} and {uri}, and div-o with a full-form opt", () => {
    expect(checkPassportClaims({ ...div, div: { tn: CAROL } }, "div").div).toEqual({ tn: CAROL });
    expect(checkPassportClaims({ ...div, div: { uri: "sip:carol@example.com" } }, "div").div).toEqual({
      uri: "sip:carol@example.com",
    });
    expect(checkPassportClaims({ ...div, div: { tn: CAROL }, opt: "a.b.c" }, "div-o").opt).toBe("a.b.c");
  });

  it("property: a div claim that is not exactly {tn: canonical} or {uri} is refused", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const ok =
          value !== null &&
          typeof value === "object" &&
          !Array.isArray(value) &&
          Object.keys(value).length === 1 &&
          (("tn" in value && typeof value.tn === "string" && /^[0-9]{3,15}$/.test(value.tn)) ||
            ("uri" in value &&
              typeof value.uri === "string" &&
              /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(value.uri)));
        let accepted = true;
        try {
          checkPassportClaims({ ...div, div: value }, "div");
        } catch {
          accepted = false;
        }
        return accepted === ok;
      }),
    );
  });
});

describe("divClaims (RFC 8946 §3)", () => {
  it("copies orig, names the number diverted from in div, the new target in dest", () => {
    expect(divClaims(base, { from: CAROL, to: BOB, iat: 5 })).toEqual({
      orig: { tn: ALICE },
      dest: { tn: [BOB] },
      div: { tn: CAROL },
      iat: 5,
    });
    expect(divClaims(base, { from: CAROL, to: BOB, iat: 5, opt: "a.b.c" }).opt).toBe("a.b.c");
  });

  it("refuses a number that is not a destination of the PASSporT, and an unchanged destination", () => {
    expect(() => divClaims(base, { from: BOB, to: DAVE, iat: 5 })).toThrow(
      expect.objectContaining({ code: "DIVERSION_UNLINKED" }),
    );
    expect(() => divClaims(base, { from: CAROL, to: CAROL, iat: 5 })).toThrow(
      expect.objectContaining({ code: "DIVERSION_UNLINKED" }),
    );
  });
});

describe("linkProblem", () => {
  const decoded = (claims: PassportClaims, ppt = "div"): DecodedPassport => ({
    header: { alg: "ES256", typ: "passport", ppt, x5u: X5U },
    claims,
  });
  const previous = decoded(base, "shaken");
  it.each([
    ["follows", divClaims(base, { from: CAROL, to: BOB, iat: 1 }), undefined],
    [
      "orig changed",
      { ...divClaims(base, { from: CAROL, to: BOB, iat: 1 }), orig: { tn: "11115551112" } },
      "DIVERSION_UNLINKED",
    ],
    [
      "div not a dest",
      { ...divClaims(base, { from: CAROL, to: BOB, iat: 1 }), div: { tn: DAVE } },
      "DIVERSION_UNLINKED",
    ],
    [
      "div a URI",
      { ...divClaims(base, { from: CAROL, to: BOB, iat: 1 }), div: { uri: "sip:c@x" } },
      "DIVERSION_UNLINKED",
    ],
  ])("%s", (_name, claims, code) => {
    expect(linkProblem(decoded(claims as PassportClaims), previous)?.code).toBe(code);
  });
});

describe("verifyChain (links checked by a stub)", () => {
  const passAll = async (_l: LinkCheckInput) => undefined;
  const decode = (jws: string) => decodePassport(jws, { supportedPpt: PPTS });

  it("div-o: follows opt to the original; the signer of each link must cover div, then orig", async () => {
    const p0 = await sign("shaken", base);
    const d1 = await sign("div-o", divClaims(base, { from: CAROL, to: BOB, iat: 2, opt: p0.passport }));
    const seen: [number, string, string][] = [];
    const r = await verifyChain(d1, {
      decode,
      pool: [],
      check: async (l) => {
        seen.push([l.index, l.kind, l.covers]);
        return undefined;
      },
    });
    expect(r.ok).toBe(true);
    expect(seen).toEqual([
      [0, "div-o", CAROL],
      [1, "original", ALICE],
    ]);
    if (r.ok) expect(divertedFrom(r.links)).toEqual([CAROL]);
  });

  it("div: finds its predecessor in the pool, skipping PASSporTs it does not follow", async () => {
    const other = await sign("shaken", { ...base, dest: { tn: [DAVE] } });
    const p0 = await sign("shaken", base);
    const d1 = await sign("div", divClaims(base, { from: CAROL, to: BOB, iat: 2 }));
    const r = await verifyChain(d1, {
      decode,
      pool: ["junk", other.passport, d1.passport, p0.passport],
      check: passAll,
    });
    expect(r.ok && r.links.map((l) => l.passport)).toEqual([d1.passport, p0.passport]);
  });

  it("div: when the first predecessor fails its check, another that passes is used", async () => {
    const bad = await sign("shaken", { ...base, origid: "bad" });
    const good = await sign("shaken", base);
    const d1 = await sign("div", divClaims(base, { from: CAROL, to: BOB, iat: 2 }));
    const r = await verifyChain(d1, {
      decode,
      pool: [bad.passport, good.passport],
      check: async (l) =>
        l.passport === bad.passport ? { step: 6, code: "PASSPORT_SIGNATURE", message: "bad" } : undefined,
    });
    expect(r.ok && r.links[1]?.passport).toBe(good.passport);
    const onlyBad = await verifyChain(d1, {
      decode,
      pool: [bad.passport],
      check: async (l) =>
        l.passport === bad.passport ? { step: 6, code: "PASSPORT_SIGNATURE", message: "bad" } : undefined,
    });
    expect(onlyBad).toMatchObject({ ok: false, failure: { link: 1, step: 6, code: "PASSPORT_SIGNATURE" } });
  });

  it("a loop of diversions ends: DIVERSION_TOO_LONG or unlinked, never a hang", async () => {
    // Carol -> Bob and Bob -> Carol, same orig: each follows the other.
    const cb = await sign("div", { orig: { tn: ALICE }, dest: { tn: [BOB] }, div: { tn: CAROL }, iat: 1 });
    const bc = await sign("div", { orig: { tn: ALICE }, dest: { tn: [CAROL] }, div: { tn: BOB }, iat: 1 });
    const r = await verifyChain(cb, { decode, pool: [cb.passport, bc.passport], check: passAll });
    expect(r).toMatchObject({ ok: false, failure: { code: "DIVERSION_UNLINKED" } });
  });

  it("more diversions than maxDiversions: DIVERSION_TOO_LONG at the link past the bound", async () => {
    const p0 = await sign("shaken", base);
    let prev = p0;
    const links = [p0];
    const hops = [CAROL, BOB, DAVE, canonicalTn("55555555555"), canonicalTn("66666666666")];
    for (let i = 0; i + 1 < hops.length; i++) {
      prev = await sign(
        "div",
        divClaims(prev.decoded.claims, { from: hops[i] as never, to: hops[i + 1] as never, iat: 1 }),
      );
      links.unshift(prev);
    }
    const pool = links.map((l) => l.passport);
    const r = await verifyChain(prev, { decode, pool, check: passAll });
    expect(DEFAULT_MAX_DIVERSIONS).toBe(3);
    expect(r).toMatchObject({ ok: false, failure: { code: "DIVERSION_TOO_LONG", link: 3 } });
    expect((await verifyChain(prev, { decode, pool, check: passAll, maxDiversions: 4 })).ok).toBe(true);
  });
});

describe("passportsToStore", () => {
  const l = (kind: ChainLink["kind"], passport: string) => ({ kind, passport }) as ChainLink;
  it.each([
    ["div-o over the original: nothing beside", "div-o", [l("original", "p0")], []],
    ["div over the original: the original", "div", [l("original", "p0")], ["p0"]],
    ["div-o over a div: the div's predecessors", "div-o", [l("div", "d1"), l("original", "p0")], ["p0"]],
    ["div over a div-o: the div-o only", "div", [l("div-o", "d1"), l("original", "p0")], ["d1"]],
    [
      "div over div over original: both",
      "div",
      [l("div", "d2"), l("div", "d1"), l("original", "p0")],
      ["d2", "d1", "p0"],
    ],
  ] as const)("%s", (_name, kind, chain, expected) => {
    expect(passportsToStore(chain, kind)).toEqual(expected);
  });
});

describe("verifyChain work bound (review F2)", () => {
  const decode = (jws: string) => decodePassport(jws, { supportedPpt: PPTS });
  const X = canonicalTn("55555555555");
  const Y = canonicalTn("66666666666");

  it("a diversion whose div number is among its own dest is refused before any check", async () => {
    const self = await sign("div", { orig: { tn: ALICE }, dest: { tn: [BOB, X] }, div: { tn: X }, iat: 1 });
    let checks = 0;
    const r = await verifyChain(self, {
      decode,
      pool: [self.passport],
      check: async () => {
        checks++;
        return undefined;
      },
    });
    expect(r).toMatchObject({ ok: false, failure: { step: 3, code: "DIVERSION_UNLINKED", link: 0 } });
    expect(checks).toBe(0);
  });

  it("100 diversions linking each other through two numbers: at most MAX_CHAIN_CHECKS checks, DIVERSION_TOO_COMPLEX", async () => {
    const pool: ChainLink[] = [];
    for (let i = 0; i < 50; i++) {
      pool.push(await sign("div", { orig: { tn: ALICE }, dest: { tn: [BOB, Y] }, div: { tn: X }, iat: i }));
      pool.push(await sign("div", { orig: { tn: ALICE }, dest: { tn: [BOB, X] }, div: { tn: Y }, iat: i }));
    }
    let checks = 0;
    // Past 1000 checks every link fails, so the search without a bound still ends.
    const check = async () =>
      ++checks > 1000 ? { step: 6 as const, code: "STOP", message: "bound" } : undefined;
    const r = await verifyChain(pool[0] as ChainLink, {
      decode,
      pool: pool.map((l) => l.passport),
      check,
      maxDiversions: 8,
    });
    expect(MAX_CHAIN_CHECKS).toBe(64);
    expect(r).toMatchObject({ ok: false, failure: { step: 3, code: "DIVERSION_TOO_COMPLEX" } });
    expect(checks).toBeLessThanOrEqual(MAX_CHAIN_CHECKS);
  });

  it("the genuine predecessor is found first among many that link (originals before diversions)", async () => {
    const p0 = await sign("shaken", base);
    const d1 = await sign("div", divClaims(base, { from: CAROL, to: BOB, iat: 2 }));
    const noise: string[] = [];
    for (let i = 0; i < 100; i++) {
      noise.push(
        (await sign("div", { orig: { tn: ALICE }, dest: { tn: [CAROL] }, div: { tn: X }, iat: i })).passport,
      );
    }
    let checks = 0;
    const r = await verifyChain(d1, {
      decode,
      pool: [...noise, p0.passport],
      check: async () => {
        checks++;
        return undefined;
      },
    });
    expect(r.ok && r.links.map((l) => l.passport)).toEqual([d1.passport, p0.passport]);
    expect(checks).toBe(2);
  });
});
