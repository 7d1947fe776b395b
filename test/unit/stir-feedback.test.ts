/**
 * Feedback on bogus PASSporTs, the pure parts (RFC 8816 §7.5; docs/tokens.md "Feedback"): the one
 * piece of HPKE glue (a KEM that yields a given shared secret, so @hpke/core's own key schedule runs
 * from a reported secret) against RFC 9180 Appendix A.1.1; the tag at seal and open time; the header
 * and body parsers; and the CPS's judgment of a reported PASSporT, freshness at the store time.
 */
import { describe, expect, it } from "vitest";
import { isReportable } from "../../src/client/feedback.js";
import { CpsError, isCpsError } from "../../src/errors.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import {
  ENVELOPE_LENGTH,
  encodeEnvelope,
  envelopeSuite,
  generateRecipientKeyPair,
  openPassport,
  openPassportForReport,
  openWithSharedSecret,
  sealPassport,
  sealPassportWithTag,
  suiteForSharedSecret,
} from "../../src/stir/envelope.js";
import {
  encodeFeedbackTag,
  feedbackBody,
  judgeReportedPassport,
  parseFeedbackBody,
  parseFeedbackTag,
  type ReportedSigner,
} from "../../src/stir/feedback.js";
import { createPassport } from "../../src/stir/passport.js";
import { canonicalTn } from "../../src/stir/tn.js";
import vector from "../vectors/rfc9180-a1-1.json" with { type: "json" };

const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: ArrayBuffer | Uint8Array): string =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const utf8 = new TextEncoder();

// RFC 9180 A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base): shared_secret and the
// three exported values (A.1.1.2), beside rfc9180-a1-1.json's enc, info and first encryption.
const SHARED_SECRET = "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc";
const EXPORTS: [string, string][] = [
  ["", "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee"],
  ["00", "2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5"],
  ["54657374436f6e74657874", "e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931"],
];
const first = vector.encryptions[0];
if (!first) throw new Error("rfc9180-a1-1.json has no encryption entry");

describe("RFC 9180 A.1.1 through the given-secret KEM (suiteForSharedSecret)", () => {
  it("RFC 9180 A.1.1: the real KEM's decap of enc with skRm is shared_secret", async () => {
    const recipientKey = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmR));
    expect(toHex(await envelopeSuite.kem.decap({ recipientKey, enc: hex(vector.enc) }))).toBe(SHARED_SECRET);
  });

  it("RFC 9180 A.1.1: from shared_secret alone the recipient context opens ct of sequence 0", async () => {
    const suite = suiteForSharedSecret(hex(SHARED_SECRET));
    const placeholder = await envelopeSuite.kem.generateKeyPair();
    const ctx = await suite.createRecipientContext({
      recipientKey: placeholder,
      enc: hex(vector.enc),
      info: hex(vector.info),
    });
    expect(toHex(await ctx.open(hex(first.ct), hex(first.aad)))).toBe(first.pt);
  });

  it.each(EXPORTS)(
    "RFC 9180 A.1.1: Export(exporter_context %j, 32) from shared_secret",
    async (context, value) => {
      const ctx = await suiteForSharedSecret(hex(SHARED_SECRET)).createRecipientContext({
        recipientKey: await envelopeSuite.kem.generateKeyPair(),
        enc: hex(vector.enc),
        info: hex(vector.info),
      });
      expect(toHex(await ctx.export(hex(context), 32))).toBe(value);
    },
  );

  it("RFC 9180 A.1.1: a shared secret one bit off does not open ct", async () => {
    const wrong = hex(SHARED_SECRET);
    wrong[0] = (wrong[0] ?? 0) ^ 1;
    const ctx = await suiteForSharedSecret(wrong).createRecipientContext({
      recipientKey: await envelopeSuite.kem.generateKeyPair(),
      enc: hex(vector.enc),
      info: hex(vector.info),
    });
    await expect(ctx.open(hex(first.ct), hex(first.aad))).rejects.toThrow();
  });

  it("refuses a shared secret that is not 32 bytes", () => {
    expect(() => suiteForSharedSecret(new Uint8Array(31))).toThrow(CpsError);
  });
});

describe("feedback tags at seal and open time", () => {
  const tn = canonicalTn("+1 303 555 0101");

  it("a tagged seal is an envelope v1: same length, opens with openPassport", async () => {
    const callee = await generateRecipientKeyPair();
    const { blob, tag } = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    expect(blob.length).toBe(ENVELOPE_LENGTH);
    expect(tag.length).toBe(32);
    expect(await openPassport(callee.keyPair, tn, blob)).toBe("p.q.r");
  });

  it("the callee derives the sender's tag, and the CPS derives it again from the shared secret alone", async () => {
    const callee = await generateRecipientKeyPair();
    const { blob, tag } = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    const opened = await openPassportForReport(callee.keyPair, tn, blob);
    expect(opened.passport).toBe("p.q.r");
    expect(toHex(opened.tag)).toBe(toHex(tag));
    expect(opened.secret.length).toBe(32);
    const atCps = await openWithSharedSecret(opened.secret, tn, blob);
    expect(atCps.passport).toBe("p.q.r");
    expect(toHex(atCps.tag)).toBe(toHex(tag));
  });

  it("the tag is the RFC 9180 export under label || SHA-256(enc || ct), as an independent HPKE recipient computes it", async () => {
    const callee = await generateRecipientKeyPair();
    const { blob, tag } = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    const ctx = await envelopeSuite.createRecipientContext({
      recipientKey: callee.keyPair,
      enc: blob.subarray(0, 32),
      info: utf8.encode(`stir-oob envelope v1\u0000${tn}`),
    });
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob));
    const context = new Uint8Array([...utf8.encode("stir-oob feedback tag v1"), ...digest]);
    expect(toHex(await ctx.export(context, 32))).toBe(toHex(tag));
  });

  it("a blob re-encrypted under a genuine blob's secret (another enc) opens, but has another tag", async () => {
    // With a given secret the key schedule ignores enc: B' = random enc || B's ciphertext opens to the
    // same PASSporT. The tag binds SHA-256 of the whole blob, so B' cannot stand for B in a report.
    const callee = await generateRecipientKeyPair();
    const { blob, tag } = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    const { secret } = await openPassportForReport(callee.keyPair, tn, blob);
    const reencrypted = blob.slice();
    reencrypted.set(crypto.getRandomValues(new Uint8Array(32)), 0);
    const atCps = await openWithSharedSecret(secret, tn, reencrypted);
    expect(atCps.passport).toBe("p.q.r");
    expect(toHex(atCps.tag)).not.toBe(toHex(tag));
    expect(toHex((await openWithSharedSecret(secret, tn, blob)).tag)).toBe(toHex(tag));
  });

  it("two seals of one PASSporT have unrelated tags; an untagged seal's blob still yields a tag", async () => {
    const callee = await generateRecipientKeyPair();
    const a = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    const b = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    expect(toHex(a.tag)).not.toBe(toHex(b.tag));
    const plain = await sealPassport(callee.publicKey, tn, "p.q.r");
    expect((await openPassportForReport(callee.keyPair, tn, plain)).tag.length).toBe(32);
  });

  it("a wrong secret, another number or a tampered blob does not open: ENVELOPE_OPEN_FAILED", async () => {
    const callee = await generateRecipientKeyPair();
    const { blob } = await sealPassportWithTag(callee.publicKey, tn, "p.q.r");
    const { secret } = await openPassportForReport(callee.keyPair, tn, blob);
    const tampered = blob.slice();
    tampered[100] = (tampered[100] ?? 0) ^ 1;
    for (const attempt of [
      () => openWithSharedSecret(crypto.getRandomValues(new Uint8Array(32)), tn, blob),
      () => openWithSharedSecret(secret, canonicalTn("13035550102"), blob),
      () => openWithSharedSecret(secret, tn, tampered),
      () => openWithSharedSecret(secret, tn, blob.subarray(1)),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: "ENVELOPE_OPEN_FAILED" });
    }
  });
});

describe("CPS-Feedback-Tag and the report body", () => {
  it("parses a canonical 32-byte base64url tag, refuses anything else", () => {
    const tag = encodeFeedbackTag(new Uint8Array(32).fill(7));
    expect(parseFeedbackTag(tag)).toBe(tag);
    expect(parseFeedbackTag(` ${tag} `)).toBe(tag);
    for (const bad of ["", "x", `${"A".repeat(42)}B`, "A".repeat(44), `${"A".repeat(42)}=`, "+".repeat(43)]) {
      expect(() => parseFeedbackTag(bad), bad).toThrow(
        expect.objectContaining({ code: "FEEDBACK_TAG_MALFORMED" }),
      );
    }
  });

  it("round-trips a body and refuses bad shapes with stable codes", async () => {
    const tn = canonicalTn("13035550101");
    const callee = await generateRecipientKeyPair();
    const blob = await sealPassport(callee.publicKey, tn, "x");
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const parsed = parseFeedbackBody(feedbackBody(tn, blob, secret));
    expect(parsed.tn).toBe(tn);
    expect(toHex(parsed.blob)).toBe(toHex(blob));
    expect(toHex(parsed.secret)).toBe(toHex(secret));
    const text = encodeEnvelope(blob);
    const s = encodeBase64url(secret);
    const table: [string, string][] = [
      ["nope", "INVALID_BODY"],
      ["null", "INVALID_BODY"],
      [JSON.stringify({ blob: text, secret: s }), "FEEDBACK_INVALID"],
      [JSON.stringify({ tn, blob: text }), "FEEDBACK_INVALID"],
      [JSON.stringify({ tn, blob: text, secret: s.slice(1) }), "FEEDBACK_INVALID"],
      [JSON.stringify({ tn, blob: text.slice(4), secret: s }), "BLOB_SIZE"],
      [JSON.stringify({ tn: "12", blob: text, secret: s }), "INVALID_TN"],
      [JSON.stringify({ tn: "1".repeat(65), blob: text, secret: s }), "FEEDBACK_INVALID"],
    ];
    for (const [body, code] of table) {
      let caught: unknown;
      try {
        parseFeedbackBody(body);
      } catch (err) {
        caught = err;
      }
      expect(isCpsError(caught) && caught.code, body.slice(0, 40)).toBe(code);
    }
    expect(decodeBase64url(s).length).toBe(32);
  });
});

describe("judgeReportedPassport: what the CPS can call bogus", () => {
  const tn = canonicalTn("13035550101");
  const orig = "12025550123";
  const iat = 1_800_000_000;
  const x5u = "https://certs.example.net/a.pem";
  const keys = crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ]) as Promise<CryptoKeyPair>;
  const signer = async (tnAuthList: ReportedSigner["tnAuthList"] = [{ type: "one", tn: orig }]) => ({
    publicKey: (await keys).publicKey,
    tnAuthList,
  });
  const passport = async (claims: Partial<{ dest: string; iat: number; orig: string }> = {}) =>
    createPassport(
      {
        x5u,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [claims.dest ?? tn] },
          iat: claims.iat ?? iat,
          orig: { tn: claims.orig ?? orig },
          origid: "o",
        },
      },
      (await keys).privateKey,
    );
  const judge = async (jws: string, storedAt = iat + 5, resolve?: () => Promise<ReportedSigner>) =>
    judgeReportedPassport(jws, { tn, storedAt, resolveSigner: resolve ?? (() => signer()) });

  it("a genuine PASSporT is not bogus, judged at its store time however late the report", async () => {
    expect(await judge(await passport())).toEqual({ bogus: false });
    expect(await judge(await passport(), iat + 60)).toEqual({ bogus: false });
  });

  it("stale when stored more than 60 s from iat (either way)", async () => {
    expect(await judge(await passport(), iat + 61)).toEqual({ bogus: true, reason: "STALE" });
    expect(await judge(await passport(), iat - 61)).toEqual({ bogus: true, reason: "STALE" });
  });

  it("dest not naming the number it was stored under", async () => {
    expect(await judge(await passport({ dest: "13035550102" }))).toEqual({
      bogus: true,
      reason: "DEST_MISMATCH",
    });
  });

  it("a numbered certificate that does not cover orig; an SPC-only one is not compared", async () => {
    const other = async () => signer([{ type: "one", tn: "19995550000" }]);
    expect(await judge(await passport(), iat, other)).toEqual({ bogus: true, reason: "NOT_AUTHORISED" });
    const spc = async () => signer([{ type: "spc", spc: "709J" }]);
    expect(await judge(await passport(), iat, spc)).toEqual({ bogus: false });
  });

  it("a signature by another key", async () => {
    const other = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const resolve = async () => ({
      publicKey: other.publicKey,
      tnAuthList: [{ type: "one" as const, tn: orig }],
    });
    expect(await judge(await passport(), iat, resolve)).toEqual({ bogus: true, reason: "SIGNATURE" });
  });

  it("an untrusted or revoked certificate is bogus; one that cannot be had or checked is undecided", async () => {
    for (const code of ["CERT_UNTRUSTED", "CERT_EXPIRED", "CERT_REVOKED", "CERT_CHAIN_INVALID"] as const) {
      const r = await judge(await passport(), iat, async () => {
        throw new CpsError(code, "x");
      });
      expect(r, code).toEqual({ bogus: true, reason: "UNTRUSTED" });
    }
    for (const code of ["X5U_FETCH_FAILED", "CERT_REVOCATION_UNKNOWN"] as const) {
      await expect(
        judge(await passport(), iat, async () => {
          throw new CpsError(code, "x");
        }),
      ).rejects.toMatchObject({ code: "FEEDBACK_UNDECIDED" });
    }
  });

  it("not a PASSporT is bogus (MALFORMED); a ppt the CPS does not judge is undecided", async () => {
    expect(await judge("hello")).toEqual({ bogus: true, reason: "MALFORMED" });
    const b64 = (v: unknown) => encodeBase64url(utf8.encode(JSON.stringify(v)));
    const div = `${b64({ alg: "ES256", typ: "passport", ppt: "div", x5u })}.${b64({ iat, orig: { tn: orig }, dest: { tn: [tn] } })}.AA`;
    await expect(judge(div)).rejects.toMatchObject({ code: "FEEDBACK_UNDECIDED" });
  });

  it("the key is resolved at the store time", async () => {
    let at: Date | undefined;
    await judgeReportedPassport(await passport(), {
      tn,
      storedAt: iat + 3,
      resolveSigner: async (_h, when) => {
        at = when;
        return signer();
      },
    });
    expect(at?.getTime()).toBe((iat + 3) * 1000);
  });
});

describe("which VS failures a VS reports (isReportable)", () => {
  const c = (code: string, link?: number) => ({
    passport: "p",
    blobIds: ["a"],
    ok: false,
    failure: { code, ...(link === undefined ? {} : { link }) },
  });
  it("reports failures the CPS can confirm, in the PASSporT itself", () => {
    for (const code of [
      "PASSPORT_SIGNATURE",
      "DEST_MISMATCH",
      "PASSPORT_STALE",
      "CERT_UNTRUSTED",
      "PASSPORT_MALFORMED",
    ]) {
      expect(isReportable(c(code)), code).toBe(true);
      expect(isReportable(c(code, 0)), code).toBe(true);
    }
  });
  it("not a genuine PASSporT of another call, a replay, an unfetchable x5u, or an earlier diversion link", () => {
    for (const code of [
      "ORIG_MISMATCH",
      "REPLAYED",
      "X5U_FETCH_FAILED",
      "PASSPORT_PPT_UNSUPPORTED",
      "INTERNAL",
    ]) {
      expect(isReportable(c(code)), code).toBe(false);
    }
    expect(isReportable(c("PASSPORT_SIGNATURE", 1))).toBe(false);
    expect(isReportable({ passport: "p", blobIds: [], ok: true })).toBe(false);
  });
});
