/**
 * Signed key records (RFC 8816 §11; docs/key-directory.md "Signed key records"): a good record by x5c
 * and by x5u, and every refusal, with the test PKI (src/stir/test-pki.ts, TEST ONLY keys).
 */
import { calculateJwkThumbprint } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import { holderId } from "../../src/stir/authority.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import { type CertificateChain, parseCertificateChain } from "../../src/stir/cert-parse.js";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import type { VerifiedCredentialToken } from "../../src/stir/credential-token.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { parseSpcNumberBlocks } from "../../src/stir/number-blocks.js";
import {
  KEY_RECORD_SKEW_SECONDS,
  MAX_KEY_RECORD_LENGTH,
  signKeyRecord,
  verifyKeyRecord,
} from "../../src/stir/signed-key-record.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { recordHeader, recordPayload, signedKeyRecord, signRawRecord } from "../helpers/key-records.js";

let pki: TestPki;
let validator: CertificateValidator;
const now = () => Math.floor(Date.now() / 1000);
const newKey = async () => (await generateRecipientKeyPair()).publicKey;

beforeAll(async () => {
  // Default TNAuthList: SPC 709J, the range 12025550100 + 100 (= 120255501xx), the number 12155551212.
  pki = await createTestPki();
  validator = new CertificateValidator({ anchors: [pki.root.certificate] });
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof CpsError ? err.code : `not a CpsError: ${String(err)}`;
  }
  return "none";
}

/** One JSON segment of a JWS, decoded. */
function segment(jws: string, i: number): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(decodeBase64url(jws.split(".")[i] as string)));
}

const verify = (jws: unknown, extra: Partial<Parameters<typeof verifyKeyRecord>[1]> = {}) =>
  verifyKeyRecord(jws, { validator, ...extra });

describe("a good record", () => {
  it("by x5c: verifies, returns the payload, the RFC 7638 kid, the key and the signer's holder id", async () => {
    const key = await newKey();
    const jws = await signedKeyRecord(pki.valid, key, {
      blocks: ["120255501xx", "12155551212"],
      label: "pbx",
      ttlSeconds: 3600,
    });
    const got = await verify(jws, { tn: "12025550142" });
    const x = encodeBase64url(key);
    expect(got.claims).toMatchObject({ v: 1, jwk: { kty: "OKP", crv: "X25519", x }, label: "pbx" });
    expect(got.claims.blocks).toEqual(["120255501xx", "12155551212"]);
    expect(got.claims.exp - got.claims.nbf).toBe(3600);
    expect(got.publicKey).toEqual(key);
    expect(got.kid).toBe(await calculateJwkThumbprint({ kty: "OKP", crv: "X25519", x }, "sha256"));
    expect(got.blocks).toEqual([
      { digits: "120255501", open: 2 },
      { digits: "12155551212", open: 0 },
    ]);
    // The same holder as a credential token of the same certificate (src/stir/authority.ts).
    expect(got.holder).toBe(
      await holderId({ certificate: got.certificate } as unknown as VerifiedCredentialToken),
    );
    expect(got.holder).toMatch(/^[0-9a-f]{32}$/);
  });

  it("by x5u: the injected resolver gets the URL and its chain is used", async () => {
    const url = "https://certs.example.net/leaf.pem";
    const asked: string[] = [];
    const resolveX5u = async (u: string): Promise<CertificateChain> => {
      asked.push(u);
      return parseCertificateChain(pki.valid.pem);
    };
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks: ["12155551212"], x5u: url });
    expect(segment(jws, 0)).toMatchObject({ x5u: url });
    const got = await verify(jws, { resolveX5u, tn: "12155551212" });
    expect(asked).toEqual([url]);
    expect(got.claims.blocks).toEqual(["12155551212"]);
    // Without a resolver an x5u record is refused, and nothing is fetched.
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("ignores header members it does not know (other than crit)", async () => {
    const key = await newKey();
    const jws = await signRawRecord(
      pki.valid,
      { ...recordHeader(pki.valid), kid: "whatever", "x-note": 1 },
      recordPayload(key, ["12155551212"]),
    );
    expect((await verify(jws)).publicKey).toEqual(key);
  });

  it("accepts typ in any letter case (RFC 7515 §4.1.9) and nbf up to the tolerated skew ahead", async () => {
    const key = await newKey();
    const t = now();
    const jws = await signRawRecord(
      pki.valid,
      { ...recordHeader(pki.valid), typ: "STIR-Key-Record+JWT" },
      recordPayload(key, ["12155551212"], { nbf: t + KEY_RECORD_SKEW_SECONDS - 5, exp: t + 3600 }),
    );
    expect((await verify(jws)).publicKey).toEqual(key);
  });

  it("a certificate that speaks for numbers by SPC covers the blocks the operator maps to it", async () => {
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks: ["1303555xxxx"] });
    expect(await codeOf(verify(jws))).toBe("CERT_NOT_AUTHORISED");
    const spcNumberBlocks = parseSpcNumberBlocks(JSON.stringify({ "709J": ["1303555"] }));
    expect((await verify(jws, { spcNumberBlocks })).claims.blocks).toEqual(["1303555xxxx"]);
  });
});

describe("refusals", () => {
  const blocks = ["12155551212"];

  it("a bad signature (signed by another key, the valid chain in x5c): KEY_RECORD_INVALID", async () => {
    const forger = { privateKey: pki.wrongAnchor.privateKey, der: pki.valid.der };
    const jws = await signRawRecord(forger, recordHeader(pki.valid), recordPayload(await newKey(), blocks));
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("a good record folded with white space is refused, not decoded around it: KEY_RECORD_INVALID", async () => {
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks });
    expect(await codeOf(verify(jws))).toBe("none");
    expect(await codeOf(verify(`${jws.slice(0, 40)}\n${jws.slice(40)}`))).toBe("KEY_RECORD_INVALID");
    expect(await codeOf(verify(` ${jws}`))).toBe("KEY_RECORD_INVALID");
  });

  it("a tampered payload (a directory swapping in its own key): KEY_RECORD_INVALID", async () => {
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks });
    const [h, p, s] = jws.split(".") as [string, string, string];
    const payload = segment(jws, 1) as { jwk: { x: string } };
    payload.jwk.x = encodeBase64url(await newKey());
    const swapped = encodeBase64url(new TextEncoder().encode(JSON.stringify(payload)));
    expect(await codeOf(verify(`${h}.${swapped}.${s}`))).toBe("KEY_RECORD_INVALID");
    // A flipped signature byte too.
    const sig = s.startsWith("A") ? `B${s.slice(1)}` : `A${s.slice(1)}`;
    expect(await codeOf(verify(`${h}.${p}.${sig}`))).toBe("KEY_RECORD_INVALID");
  });

  it("a chain that does not reach the trust anchor: CERT_UNTRUSTED", async () => {
    const jws = await signedKeyRecord(pki.wrongAnchor, await newKey(), { blocks });
    expect(await codeOf(verify(jws))).toBe("CERT_UNTRUSTED");
  });

  it("an expired or not yet valid certificate: CERT_EXPIRED / CERT_NOT_YET_VALID", async () => {
    const expired = await signedKeyRecord(pki.expired, await newKey(), { blocks });
    expect(await codeOf(verify(expired))).toBe("CERT_EXPIRED");
    const early = await signedKeyRecord(pki.notYetValid, await newKey(), { blocks });
    expect(await codeOf(verify(early))).toBe("CERT_NOT_YET_VALID");
  });

  it.each([
    ["a number outside the credential", ["19995550000"]],
    ["a block wider than the credential's range", ["1202555xxxx"]],
    ["one block of several outside", ["120255501xx", "12155551212", "12025550200"]],
    ["a number of another length with the same digits", ["1202555014"]],
  ])("blocks outside the credential (%s): CERT_NOT_AUTHORISED", async (_n, outside) => {
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks: outside });
    expect(await codeOf(verify(jws))).toBe("CERT_NOT_AUTHORISED");
  });

  it("a record that has expired, or is not yet valid: KEY_RECORD_EXPIRED", async () => {
    const t = now();
    const old = await signedKeyRecord(pki.valid, await newKey(), { blocks, nbf: t - 7200, ttlSeconds: 3600 });
    expect(await codeOf(verify(old))).toBe("KEY_RECORD_EXPIRED");
    const later = await signedKeyRecord(pki.valid, await newKey(), { blocks, nbf: t + 3600 });
    expect(await codeOf(verify(later))).toBe("KEY_RECORD_EXPIRED");
    // exp is exclusive: at exp the record is dead.
    const edge = await signedKeyRecord(pki.valid, await newKey(), { blocks, nbf: t - 60, ttlSeconds: 60 });
    expect(await codeOf(verify(edge, { now: t }))).toBe("KEY_RECORD_EXPIRED");
    expect(await codeOf(verify(edge, { now: t - 1 }))).toBe("none");
  });

  it.each([
    ["exp - nbf over 400 days", (t: number) => ({ nbf: t, exp: t + 400 * 86_400 + 1 })],
    ["exp equal to nbf", (t: number) => ({ nbf: t, exp: t })],
    ["exp before nbf", (t: number) => ({ nbf: t, exp: t - 10 })],
    ["nbf missing", (t: number) => ({ nbf: undefined, exp: t + 10 })],
    ["iat missing", () => ({ iat: undefined })],
    ["exp not a whole number", (t: number) => ({ exp: t + 0.5 })],
    ["exp a string", (t: number) => ({ exp: String(t + 100) })],
  ])("a bad window (%s): KEY_RECORD_INVALID", async (_n, window) => {
    const payload = recordPayload(await newKey(), blocks, window(now()));
    const jws = await signRawRecord(pki.valid, recordHeader(pki.valid), payload);
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("exactly 400 days between nbf and exp is accepted", async () => {
    const t = now();
    const payload = recordPayload(await newKey(), blocks, { nbf: t, exp: t + 400 * 86_400 });
    const jws = await signRawRecord(pki.valid, recordHeader(pki.valid), payload);
    expect(await codeOf(verify(jws))).toBe("none");
  });

  it.each([
    ["an unknown critical header", ["x-unknown"]],
    ["an empty crit list", []],
    ["crit naming a known member", ["x5c"]],
  ])("a crit header (%s): KEY_RECORD_INVALID", async (_n, crit) => {
    const header = { ...recordHeader(pki.valid), crit, "x-unknown": true };
    const jws = await signRawRecord(pki.valid, header, recordPayload(await newKey(), blocks));
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("crit is refused by the header check itself, before the payload is looked at (not left to jose)", async () => {
    // jose also refuses an unknown crit at signature time; asking for another number shows which
    // check answered: the header check comes before KEY_RECORD_NOT_FOR_TN.
    const header = { ...recordHeader(pki.valid), crit: ["x-unknown"], "x-unknown": true };
    const jws = await signRawRecord(pki.valid, header, recordPayload(await newKey(), blocks));
    expect(await codeOf(verify(jws, { tn: "19995550000" }))).toBe("KEY_RECORD_INVALID");
  });

  it("an oversized chain (9 certificates in x5c): KEY_RECORD_INVALID, before any parsing", async () => {
    const header = recordHeader(pki.valid);
    const x5c = header.x5c as string[];
    const nine = [...x5c, ...x5c, ...x5c, ...x5c, ...x5c].slice(0, 9);
    expect(nine).toHaveLength(9);
    const jws = await signRawRecord(
      pki.valid,
      { ...header, x5c: nine },
      recordPayload(await newKey(), blocks),
    );
    expect(jws.length).toBeLessThan(MAX_KEY_RECORD_LENGTH);
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("an oversized record (over 16,384 characters): KEY_RECORD_INVALID", async () => {
    const header = { ...recordHeader(pki.valid), pad: "a".repeat(MAX_KEY_RECORD_LENGTH) };
    const jws = await signRawRecord(pki.valid, header, recordPayload(await newKey(), blocks));
    expect(jws.length).toBeGreaterThan(MAX_KEY_RECORD_LENGTH);
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it.each([
    ["both x5c and x5u", (h: Record<string, unknown>) => ({ ...h, x5u: "https://certs.example.net/a.pem" })],
    ["neither", (h: Record<string, unknown>) => ({ alg: h.alg, typ: h.typ })],
    ["x5c empty", (h: Record<string, unknown>) => ({ ...h, x5c: [] })],
    ["x5c not a list", (h: Record<string, unknown>) => ({ ...h, x5c: (h.x5c as string[])[0] })],
    ["x5c base64url, not base64", (h: Record<string, unknown>) => ({ ...h, x5c: ["-_-_"] })],
    ["x5u not a string", (h: Record<string, unknown>) => ({ alg: h.alg, typ: h.typ, x5u: 7 })],
  ])("the certificate named wrongly (%s): KEY_RECORD_INVALID", async (_n, change) => {
    const jws = await signRawRecord(
      pki.valid,
      change(recordHeader(pki.valid)),
      recordPayload(await newKey(), blocks),
    );
    const resolveX5u = async () => parseCertificateChain(pki.valid.pem);
    expect(await codeOf(verify(jws, { resolveX5u }))).toBe("KEY_RECORD_INVALID");
  });

  it.each([
    ["JWT", "JWT"],
    ["passport", "passport"],
    ["missing", undefined],
    ["with the application/ prefix", "application/stir-key-record+jwt"],
  ])("a wrong typ (%s): KEY_RECORD_INVALID", async (_n, typ) => {
    const jws = await signRawRecord(
      pki.valid,
      { ...recordHeader(pki.valid), typ },
      recordPayload(await newKey(), blocks),
    );
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it.each([["ES384"], ["none"], ["EdDSA"], ["es256"]])(
    "a wrong alg (%s): KEY_RECORD_INVALID",
    async (alg) => {
      const jws = await signRawRecord(
        pki.valid,
        { ...recordHeader(pki.valid), alg },
        recordPayload(await newKey(), blocks),
      );
      expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
    },
  );

  it.each([
    ["an unknown payload member", { tn: ["12155551212"] }],
    ["another version", { v: 2 }],
    ["version as a string", { v: "1" }],
    ["duplicate blocks", { blocks: ["12155551212", "12155551212"] }],
    ["a block not in canonical form", { blocks: ["1202555XXXX"] }],
    ["a block that is not one", { blocks: ["1202x555"] }],
    ["no blocks", { blocks: [] }],
    ["65 blocks", { blocks: Array.from({ length: 65 }, (_, i) => `1202555${String(i).padStart(4, "0")}`) }],
    ["blocks not a list", { blocks: "12155551212" }],
    ["an empty label", { label: "" }],
    ["a label of 33 characters", { label: "a".repeat(33) }],
    ["a label with a newline", { label: "a\nb" }],
  ])("a bad payload (%s): KEY_RECORD_INVALID", async (_n, overrides) => {
    const jws = await signRawRecord(
      pki.valid,
      recordHeader(pki.valid),
      recordPayload(await newKey(), blocks, overrides),
    );
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it.each([
    ["a private key member", (x: string) => ({ kty: "OKP", crv: "X25519", x, d: x })],
    ["a kid member", (x: string) => ({ kty: "OKP", crv: "X25519", x, kid: "k" })],
    ["another curve", (x: string) => ({ kty: "OKP", crv: "Ed25519", x })],
    ["the all-zero key", () => ({ kty: "OKP", crv: "X25519", x: encodeBase64url(new Uint8Array(32)) })],
    ["31 bytes", () => ({ kty: "OKP", crv: "X25519", x: encodeBase64url(new Uint8Array(31).fill(7)) })],
    ["not an object", (x: string) => x],
  ])("a bad jwk (%s): KEY_RECORD_INVALID", async (_n, jwk) => {
    const x = encodeBase64url(await newKey());
    const jws = await signRawRecord(
      pki.valid,
      recordHeader(pki.valid),
      recordPayload(await newKey(), blocks, { jwk: jwk(x) }),
    );
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });

  it("the number asked about is in none of the blocks: KEY_RECORD_NOT_FOR_TN", async () => {
    const jws = await signedKeyRecord(pki.valid, await newKey(), { blocks: ["120255501xx"] });
    expect(await codeOf(verify(jws, { tn: "12025550200" }))).toBe("KEY_RECORD_NOT_FOR_TN");
    expect(await codeOf(verify(jws, { tn: "120255501000" }))).toBe("KEY_RECORD_NOT_FOR_TN");
    expect(await codeOf(verify(jws, { tn: "12025550199" }))).toBe("none");
  });

  it.each([
    ["not a string", 42],
    ["empty", ""],
    ["two parts", "a.b"],
    ["four parts", "a.b.c.d"],
    ["an empty signature", "eyJhbGciOiJFUzI1NiJ9.e30."],
    ["a header that is not JSON", `${encodeBase64url(new TextEncoder().encode("nope"))}.e30.AAAA`],
    ["a header that is a list", `${encodeBase64url(new TextEncoder().encode("[]"))}.e30.AAAA`],
    ["padding in a segment", "eyJhbGciOiJFUzI1NiJ9=.e30.AAAA"],
    ["white space in a segment", "eyJhbGciOiJF UzI1NiJ9.e30.AAAA"],
  ])("not a JWS (%s): KEY_RECORD_INVALID", async (_n, jws) => {
    expect(await codeOf(verify(jws))).toBe("KEY_RECORD_INVALID");
  });
});

describe("signKeyRecord refuses to sign what no verifier accepts", () => {
  const base = async () => ({
    publicKey: await newKey(),
    blocks: ["12155551212"],
    label: "ok",
    exp: now() + 3600,
    privateKey: pki.valid.privateKey,
    x5c: pki.valid.der,
  });

  it.each([
    ["no certificate", (o: Record<string, unknown>) => ({ ...o, x5c: undefined })],
    ["x5c and x5u", (o: Record<string, unknown>) => ({ ...o, x5u: "https://certs.example.net/a.pem" })],
    ["duplicate blocks", (o: Record<string, unknown>) => ({ ...o, blocks: ["12155551212", "12155551212"] })],
    ["a bad label", (o: Record<string, unknown>) => ({ ...o, label: "" })],
    ["exp over 400 days", (o: Record<string, unknown>) => ({ ...o, exp: now() + 401 * 86_400 })],
    ["exp in the past", (o: Record<string, unknown>) => ({ ...o, exp: now() - 1 })],
  ])("%s: KEY_RECORD_INVALID", async (_n, change) => {
    const options = change(await base()) as unknown as Parameters<typeof signKeyRecord>[0];
    expect(await codeOf(signKeyRecord(options))).toBe("KEY_RECORD_INVALID");
  });

  it("an all-zero public key: INVALID_KEY", async () => {
    expect(await codeOf(signKeyRecord({ ...(await base()), publicKey: new Uint8Array(32) }))).toBe(
      "INVALID_KEY",
    );
  });

  it("writes blocks in canonical form and the protected header of the format", async () => {
    const jws = await signKeyRecord({ ...(await base()), blocks: ["120255501XX"] });
    const header = segment(jws, 0);
    expect(Object.keys(header).sort()).toEqual(["alg", "typ", "x5c"]);
    expect(header).toMatchObject({ alg: "ES256", typ: "stir-key-record+jwt" });
    expect((await verify(jws)).claims.blocks).toEqual(["120255501xx"]);
  });
});
