import "reflect-metadata";
import { PemConverter } from "@peculiar/x509";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  CertificateValidator,
  coversRange,
  coversSpc,
  coversTn,
  parseCertificate,
  parseCertificateChain,
  validateCertificateChain,
} from "../../src/stir/certificates.js";
import { parsePattern } from "../../src/stir/number-blocks.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import {
  decodeTnAuthList,
  encodeTnAuthList,
  rangeCoversTn,
  type TnAuthList,
  tnAuthListWithin,
} from "../../src/stir/tnauthlist.js";

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

describe("TNAuthList (RFC 8226 §9)", () => {
  const list: TnAuthList = [
    { type: "spc", spc: "709J" },
    { type: "range", start: "12025550100", count: 100 },
    { type: "one", tn: "12155551212" },
  ];

  it("encodes and decodes every entry kind", () => {
    expect(decodeTnAuthList(encodeTnAuthList(list))).toEqual(list);
  });

  it.each([
    ["first of the range", "12025550100", true],
    ["last of the range", "12025550199", true],
    ["one past the range", "12025550200", false],
    ["one before the range", "12025550099", false],
    ["a longer number with the same prefix", "120255501000", false],
    ["the single number", "12155551212", true],
    ["a neighbour of the single number", "12155551213", false],
  ])("coversTn: %s", (_n, tn, expected) => {
    expect(coversTn(list, tn)).toBe(expected);
  });

  it.each([
    ["the whole range", "12025550100", 100, true],
    ["an inner block", "12025550150", 50, true],
    ["a block running past the end", "12025550150", 51, false],
    ["one number", "12025550123", 1, true],
    ["the single entry as a range of one", "12155551212", 1, true],
    ["a range crossing the digit count", "99999999999", 2, false],
  ])("coversRange: %s", (_n, start, count, expected) => {
    expect(coversRange(list, start, count)).toBe(expected);
  });

  it("coversSpc matches exactly", () => {
    expect(coversSpc(list, "709J")).toBe(true);
    expect(coversSpc(list, "709j")).toBe(false);
    expect(coversSpc(list, "1234")).toBe(false);
  });

  it("range arithmetic agrees with a plain loop (property)", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 10n ** 10n, max: 10n ** 11n - 1000n }),
        fc.integer({ min: 2, max: 500 }),
        fc.integer({ min: -600, max: 600 }),
        (s, count, delta) => {
          const tn = (s + BigInt(delta)).toString();
          const expected = delta >= 0 && delta < count && tn.length === 11;
          expect(rangeCoversTn(s.toString(), count, tn)).toBe(expected);
        },
      ),
    );
  });

  it.each([
    ["empty list", new Uint8Array([0x30, 0x00])],
    ["not DER", new Uint8Array([0xff, 0x01, 0x02])],
    ["truncated", encodeTnAuthList(list).slice(0, 10)],
  ])("decode refuses %s with CERT_MALFORMED", (_n, der) => {
    expect(() => decodeTnAuthList(der)).toThrow(expect.objectContaining({ code: "CERT_MALFORMED" }));
  });

  it("decode throws nothing but CpsError on random bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeTnAuthList(bytes);
        } catch (e) {
          if (!(e instanceof CpsError)) throw e;
        }
      }),
    );
  });
});

describe("certificate parsing", () => {
  it("parses PEM and DER chains, leaf first, with a stable fingerprint", async () => {
    const fromPem = await parseCertificateChain(pki.valid.pem);
    const fromDer = await parseCertificateChain(pki.valid.der);
    expect(fromPem.certificates.map((c) => c.subject)).toEqual(pki.valid.chain.map((c) => c.subject));
    expect(fromPem.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(fromDer.fingerprint).toBe(fromPem.fingerprint);
    expect((await parseCertificateChain(pki.expired.pem)).fingerprint).not.toBe(fromPem.fingerprint);
    expect(fromPem.certificates[0]?.subject).toContain("TEST ONLY");
  });

  it.each([
    ["empty text", ""],
    ["garbage PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ["a key, not a certificate", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
  ])("chain parse refuses %s with CERT_MALFORMED", async (_n, pem) => {
    await expect(parseCertificateChain(pem)).rejects.toMatchObject({ code: "CERT_MALFORMED" });
  });

  it("parsers throw nothing but CpsError on random input (property)", async () => {
    const der = new Uint8Array(pki.valid.chain[0]?.rawData ?? new ArrayBuffer(0));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat(der.length), async (bytes, cut) => {
        for (const input of [bytes, der.slice(0, cut), PemConverter.encode(bytes, "CERTIFICATE")]) {
          try {
            parseCertificate(input);
            await parseCertificateChain(typeof input === "string" ? input : [input]);
          } catch (e) {
            if (!(e instanceof CpsError)) throw e;
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("chain validation (RFC 5280 §6 via pkijs, RFC 8226)", () => {
  it("validates the good chain and returns its key and TNAuthList", async () => {
    const v = await validateCertificateChain(await parseCertificateChain(pki.valid.pem), [
      pki.root.certificate,
    ]);
    expect(v.tnAuthList).toContainEqual({ type: "spc", spc: "709J" });
    expect(v.publicKey.type).toBe("public");
  });

  it.each([
    ["expired leaf", (p: TestPki) => p.expired.pem, "CERT_EXPIRED"],
    ["not-yet-valid leaf", (p: TestPki) => p.notYetValid.pem, "CERT_NOT_YET_VALID"],
    ["wrong anchor", (p: TestPki) => p.wrongAnchor.pem, "CERT_UNTRUSTED"],
    ["non-CA intermediate", (p: TestPki) => p.nonCaIntermediate.pem, "CERT_CHAIN_INVALID"],
    ["no TNAuthList", (p: TestPki) => p.noTnAuthList.pem, "CERT_NO_TNAUTHLIST"],
    [
      "leaf alone, intermediate missing",
      (p: TestPki) => PemConverter.encode(p.valid.chain[0]?.rawData ?? new ArrayBuffer(0), "CERTIFICATE"),
      "CERT_UNTRUSTED",
    ],
  ] as const)("refuses %s", async (_n, pem, code) => {
    const chain = await parseCertificateChain(pem(pki));
    await expect(validateCertificateChain(chain, [pki.root.certificate])).rejects.toMatchObject({ code });
  });

  it("a leaf past its notAfter by the validation time is refused, before it is accepted", async () => {
    const chain = await parseCertificateChain(pki.valid.pem);
    const leaf = pki.valid.chain[0];
    if (leaf === undefined) throw new Error("no leaf");
    const after = new Date(leaf.notAfter.getTime() + 1000);
    await expect(
      validateCertificateChain(chain, [pki.root.certificate], { now: after }),
    ).rejects.toMatchObject({
      code: "CERT_EXPIRED",
    });
  });

  it("the validator caches by fingerprint, bounded, and re-validates past a certificate's life", async () => {
    const validator = new CertificateValidator({ anchors: [pki.root.certificate], cacheSize: 2 });
    const chain = await parseCertificateChain(pki.valid.pem);
    const first = await validator.validate(chain);
    expect(await validator.validate(pki.valid.pem)).toBe(first); // same object: a cache hit
    const extra1 = await pki.issue({ tnAuthList: [{ type: "one", tn: "14155550000" }] });
    const extra2 = await pki.issue({ tnAuthList: [{ type: "one", tn: "14155550001" }] });
    await validator.validate(extra1.pem);
    await validator.validate(extra2.pem);
    expect(validator.cacheSize).toBe(2);
    expect(await validator.validate(chain)).not.toBe(first); // evicted, validated again
    const leaf = pki.valid.chain[0];
    if (leaf === undefined) throw new Error("no leaf");
    await expect(validator.validate(chain, new Date(leaf.notAfter.getTime() + 1000))).rejects.toMatchObject({
      code: "CERT_EXPIRED",
    });
  });

  it("a cached chain is still checked against the validator's anchors (no cross-anchor reuse)", async () => {
    const other = new CertificateValidator({ anchors: [pki.otherRoot.certificate] });
    await expect(other.validate(pki.valid.pem)).rejects.toMatchObject({ code: "CERT_UNTRUSTED" });
  });
});

describe("adversary #9: a delegate CA's number scope (RFC 9060 §4)", () => {
  const one = (tn: string): TnAuthList => [{ type: "one", tn }];
  const parent: TnAuthList = [
    { type: "spc", spc: "709J" },
    { type: "range", start: "12025550100", count: 100 },
    { type: "one", tn: "12155551212" },
  ];
  const range = (start: string, count: number): TnAuthList => [{ type: "range", start, count }];
  it.each<[string, TnAuthList, boolean]>([
    ["a number inside a parent range", one("12025550150"), true],
    ["the parent's single number", one("12155551212"), true],
    ["a neighbour of the parent's single number", one("12155551213"), false],
    ["a number of another length with the same digits", one("120255501500"), false],
    ["an inner range", range("12025550150", 50), true],
    ["the parent's whole range", range("12025550100", 100), true],
    ["a range running one past the parent's", range("12025550150", 51), false],
    ["a range starting one before the parent's", range("12025550099", 2), false],
    ["a range over the single number and its neighbour", range("12155551212", 2), false],
    ["the same SPC", [{ type: "spc", spc: "709J" }], true],
    ["another SPC", [{ type: "spc", spc: "123A" }], false],
    ["the SPC in another case (exact match)", [{ type: "spc", spc: "709j" }], false],
    ["a number with '#' the parent does not list", one("12025550150#"), false],
    [
      "several entries, all inside",
      [...one("12025550101"), ...range("12025550110", 10), ...one("12155551212")],
      true,
    ],
    ["several entries, one outside", [...one("12025550101"), ...one("19995550000")], false],
    ["an empty list", [], false],
  ])("containment: %s -> %s", (_n, child, ok) => {
    expect(tnAuthListWithin(child, parent)).toBe(ok);
  });

  it("containment: no stitching of two adjacent parent ranges (one entry must hold the child's)", () => {
    const split = [...range("12025550100", 50), ...range("12025550150", 50)];
    expect(tnAuthListWithin(range("12025550140", 20), split)).toBe(false);
    expect(tnAuthListWithin(range("12025550150", 20), split)).toBe(true);
  });

  it("containment: an SPC under a numbers-only parent never; numbers under an SPC only through the check", () => {
    expect(tnAuthListWithin([{ type: "spc", spc: "709J" }], range("12025550100", 100))).toBe(false);
    const spcOnly: TnAuthList = [{ type: "spc", spc: "709J" }];
    expect(tnAuthListWithin(one("12025550142"), spcOnly)).toBe(false);
    const calls: unknown[] = [];
    const check = (spc: string, start: string, count: number) => {
      calls.push([spc, start, count]);
      return spc === "709J" && start.startsWith("1202555");
    };
    expect(tnAuthListWithin(range("12025550100", 100), spcOnly, check)).toBe(true);
    expect(tnAuthListWithin(one("13035550100"), spcOnly, check)).toBe(false);
    expect(calls).toEqual([
      ["709J", "12025550100", 100],
      ["709J", "13035550100", 1],
    ]);
  });

  const validate = async (pem: string, options: Parameters<typeof validateCertificateChain>[2] = {}) =>
    validateCertificateChain(await parseCertificateChain(pem), [pki.root.certificate], options);

  it("a sub-CA scoped to one number cannot issue a valid leaf for another number", async () => {
    const subCa = await pki.delegate({ tnAuthList: one("12025550142") });
    const leaf = await pki.issue({ issuer: subCa, tnAuthList: one("14155550123") });
    expect(leaf.chain).toHaveLength(3);
    await expect(validate(leaf.pem)).rejects.toMatchObject({ code: "CERT_CHAIN_INVALID" });
  });

  it("the same sub-CA's in-scope leaf validates", async () => {
    const subCa = await pki.delegate({ tnAuthList: [{ type: "range", start: "12025550100", count: 100 }] });
    const leaf = await pki.issue({ issuer: subCa, tnAuthList: one("12025550142") });
    expect((await validate(leaf.pem)).tnAuthList).toEqual(one("12025550142"));
  });

  it("listing the chain out of order does not skip the check (the built path is checked)", async () => {
    const subCa = await pki.delegate({ tnAuthList: one("12025550142") });
    const leaf = await pki.issue({ issuer: subCa, tnAuthList: one("14155550123") });
    const [l, s, i] = leaf.chain;
    if (!l || !s || !i) throw new Error("short chain");
    const shuffled = await parseCertificateChain([l.rawData, i.rawData, s.rawData]);
    await expect(validateCertificateChain(shuffled, [pki.root.certificate])).rejects.toMatchObject({
      code: "CERT_CHAIN_INVALID",
    });
  });

  it("a CA without a TNAuthList under a scoped CA inherits the scope: it cannot widen it", async () => {
    const scoped = await pki.delegate({ tnAuthList: one("12025550142") });
    const unscoped = await pki.delegate({ issuer: scoped, name: "Unscoped below scoped" });
    await expect(
      validate((await pki.issue({ issuer: unscoped, tnAuthList: one("14155550123") })).pem),
    ).rejects.toMatchObject({ code: "CERT_CHAIN_INVALID" });
    await expect(
      validate((await pki.issue({ issuer: unscoped, tnAuthList: one("12025550142") })).pem),
    ).resolves.toMatchObject({ tnAuthList: one("12025550142") });
  });

  it("a delegate CA wider than its scoped parent is refused, even with an in-scope leaf", async () => {
    const parent = await pki.delegate({ tnAuthList: [{ type: "range", start: "12025550100", count: 100 }] });
    const wider = await pki.delegate({
      issuer: parent,
      tnAuthList: [{ type: "range", start: "12025550100", count: 200 }],
    });
    const leaf = await pki.issue({ issuer: wider, tnAuthList: one("12025550150") });
    await expect(validate(leaf.pem)).rejects.toMatchObject({ code: "CERT_CHAIN_INVALID" });
  });

  it("an SPC-scoped CA's TN leaf: refused unless the operator maps the SPC to those numbers", async () => {
    const spcCa = await pki.delegate({ tnAuthList: [{ type: "spc", spc: "709J" }] });
    const leaf = await pki.issue({ issuer: spcCa, tnAuthList: one("12025550142") });
    await expect(validate(leaf.pem)).rejects.toMatchObject({ code: "CERT_CHAIN_INVALID" });
    const mapped = new Map([["709J", [parsePattern("1202555")]]]);
    await expect(validate(leaf.pem, { spcNumberBlocks: mapped })).resolves.toMatchObject({
      tnAuthList: one("12025550142"),
    });
    const elsewhere = new Map([["709J", [parsePattern("1303")]]]);
    await expect(validate(leaf.pem, { spcNumberBlocks: elsewhere })).rejects.toMatchObject({
      code: "CERT_CHAIN_INVALID",
    });
  });

  it("the CertificateValidator applies the check too (and caches only what passed)", async () => {
    const validator = new CertificateValidator({ anchors: [pki.root.certificate] });
    const subCa = await pki.delegate({ tnAuthList: one("12025550142") });
    const bad = await pki.issue({ issuer: subCa, tnAuthList: one("14155550123") });
    await expect(validator.validate(bad.pem)).rejects.toMatchObject({ code: "CERT_CHAIN_INVALID" });
    expect(validator.cacheSize).toBe(0);
  });
});
