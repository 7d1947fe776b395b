/**
 * Envelope v1 wire vector: test/vectors/envelope-v1.json was produced once by our sealPassport (source:
 * this repository, docs/wire-format.md; PASSporT from RFC 8816 §9) and committed. Opening it with the
 * committed key must keep working: a change to the suite, the info, the padding or the encoding breaks
 * every deployed client, so it must break this test first. The key is generated test data only.
 */
import { describe, expect, it } from "vitest";
import { decodeBase64url } from "../../src/stir/base64url.js";
import {
  decodeEnvelope,
  ENVELOPE_LENGTH,
  ENVELOPE_TEXT_LENGTH,
  encodeEnvelope,
  envelopeInfo,
  envelopeSuite,
  importRecipientPrivateKey,
  openPassport,
} from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import vector from "./envelope-v1.json" with { type: "json" };

const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: ArrayBuffer | Uint8Array): string =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

const tn = canonicalTn(vector.called_number);

describe("envelope v1 wire vector (test/vectors/envelope-v1.json, PASSporT of RFC 8816 §9)", () => {
  it("envelope-v1.json: the suite is KEM 0x0020, KDF 0x0001, AEAD 0x0001 in base mode", () => {
    expect(vector.suite).toEqual({
      mode: 0,
      kem_id: envelopeSuite.kem.id,
      kdf_id: envelopeSuite.kdf.id,
      aead_id: envelopeSuite.aead.id,
    });
    expect([envelopeSuite.kem.id, envelopeSuite.kdf.id, envelopeSuite.aead.id]).toEqual([
      0x0020, 0x0001, 0x0001,
    ]);
  });

  it("envelope-v1.json: RFC 8816 §9 number 2.222.555.2222 canonicalises and gives the committed info bytes", () => {
    expect(tn).toBe(vector.canonical_tn);
    expect(toHex(envelopeInfo(tn))).toBe(vector.info_hex);
    // Spelled out: UTF-8 "stir-oob envelope v1", 0x00, ASCII "22225552222".
    expect(vector.info_hex).toBe(
      `${toHex(new TextEncoder().encode("stir-oob envelope v1"))}00${toHex(new TextEncoder().encode("22225552222"))}`,
    );
  });

  it("envelope-v1.json: the committed private key gives the committed public key", async () => {
    const priv = await importRecipientPrivateKey(hex(vector.recipient_private_key_hex));
    // An X25519 private JWK carries its public key in `x` (RFC 8037 §2).
    const jwk = (await crypto.subtle.exportKey("jwk", priv)) as JsonWebKey;
    expect(toHex(decodeBase64url(jwk.x ?? ""))).toBe(vector.recipient_public_key_hex);
  });

  it("envelope-v1.json: the committed blob is 1072 bytes, 1430 canonical base64url chars, enc first", () => {
    expect(vector.blob_base64url).toHaveLength(ENVELOPE_TEXT_LENGTH);
    const blob = decodeEnvelope(vector.blob_base64url);
    expect(blob).toHaveLength(ENVELOPE_LENGTH);
    expect(blob).toHaveLength(vector.blob_length);
    expect(toHex(blob.subarray(0, 32))).toBe(vector.enc_hex);
    expect(encodeEnvelope(blob)).toBe(vector.blob_base64url);
  });

  it("envelope-v1.json: openPassport with the committed key gives the RFC 8816 §9 PASSporT back", async () => {
    const priv = await importRecipientPrivateKey(hex(vector.recipient_private_key_hex));
    expect(await openPassport(priv, tn, decodeEnvelope(vector.blob_base64url))).toBe(vector.passport);
  });

  it("envelope-v1.json: raw HPKE open with info_hex gives u16 length || PASSporT || zero padding to 1024", async () => {
    const priv = await importRecipientPrivateKey(hex(vector.recipient_private_key_hex));
    const blob = decodeEnvelope(vector.blob_base64url);
    const padded = new Uint8Array(
      await envelopeSuite.open(
        { recipientKey: priv, enc: blob.subarray(0, 32), info: hex(vector.info_hex) },
        blob.subarray(32),
        new Uint8Array(0), // aad is empty
      ),
    );
    expect(padded).toHaveLength(1024);
    const length = ((padded[0] ?? 0) << 8) | (padded[1] ?? 0);
    const passport = new TextEncoder().encode(vector.passport);
    expect(length).toBe(passport.length);
    expect(padded.subarray(2, 2 + length)).toEqual(passport);
    expect(padded.subarray(2 + length).every((b) => b === 0)).toBe(true);
  });

  it("envelope-v1.json: the committed blob does not open under another number (RFC 8816 §7.4)", async () => {
    const priv = await importRecipientPrivateKey(hex(vector.recipient_private_key_hex));
    await expect(
      openPassport(priv, canonicalTn("2.222.555.2223"), decodeEnvelope(vector.blob_base64url)),
    ).rejects.toMatchObject({ code: "ENVELOPE_OPEN_FAILED" });
  });

  it("envelope-v1.json: the RFC 8816 §9 folded form of the committed blob decodes to the same bytes", () => {
    const folded = (vector.blob_base64url.match(/.{1,64}/g) ?? []).map((l) => `   ${l}`).join("\r\n");
    expect(decodeEnvelope(folded)).toEqual(decodeEnvelope(vector.blob_base64url));
  });
});
