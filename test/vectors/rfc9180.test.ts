/**
 * Known-answer test for the envelope's HPKE suite from RFC 9180 Appendix A.1.1
 * (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode), data in rfc9180-a1-1.json.
 * It runs through the exported `envelopeSuite`, so it fails if the suite ever changes.
 */
import { describe, expect, it } from "vitest";
import { envelopeSuite } from "../../src/stir/envelope.js";
import vector from "./rfc9180-a1-1.json" with { type: "json" };

const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: ArrayBuffer | Uint8Array): string =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

const first = vector.encryptions[0];
if (!first) throw new Error("rfc9180-a1-1.json has no encryption entry");

describe("RFC 9180 A.1.1 DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM", () => {
  it("RFC 9180 A.1.1: the suite ids are KEM 0x0020, KDF 0x0001, AEAD 0x0001", () => {
    expect(envelopeSuite.kem.id).toBe(vector.kem_id);
    expect(envelopeSuite.kdf.id).toBe(vector.kdf_id);
    expect(envelopeSuite.aead.id).toBe(vector.aead_id);
    expect(vector.mode).toBe(0);
  });

  it("RFC 9180 A.1.1: DeriveKeyPair(ikmR) gives pkRm and skRm", async () => {
    const pair = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmR));
    expect(toHex(await envelopeSuite.kem.serializePublicKey(pair.publicKey))).toBe(vector.pkRm);
    expect(toHex(await envelopeSuite.kem.serializePrivateKey(pair.privateKey))).toBe(vector.skRm);
  });

  it("RFC 9180 A.1.1: DeriveKeyPair(ikmE) gives pkEm and skEm", async () => {
    const pair = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmE));
    expect(toHex(await envelopeSuite.kem.serializePublicKey(pair.publicKey))).toBe(vector.pkEm);
    expect(toHex(await envelopeSuite.kem.serializePrivateKey(pair.privateKey))).toBe(vector.skEm);
  });

  it("RFC 9180 A.1.1: single-shot seal with ekm = ikmE gives enc and ct of sequence 0", async () => {
    const recipient = await envelopeSuite.kem.deserializePublicKey(hex(vector.pkRm));
    const { enc, ct } = await envelopeSuite.seal(
      { recipientPublicKey: recipient, info: hex(vector.info), ekm: hex(vector.ikmE) },
      hex(first.pt),
      hex(first.aad),
    );
    expect(toHex(enc)).toBe(vector.enc);
    expect(toHex(ct)).toBe(first.ct);
  });

  it("RFC 9180 A.1.1: open with the recipient key pair gives pt", async () => {
    const recipientKey = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmR));
    const pt = await envelopeSuite.open(
      { recipientKey, enc: hex(vector.enc), info: hex(vector.info) },
      hex(first.ct),
      hex(first.aad),
    );
    expect(toHex(pt)).toBe(first.pt);
  });

  it("RFC 9180 A.1.1: open with the private key alone (imported from skRm) gives pt", async () => {
    const recipientKey = await envelopeSuite.kem.deserializePrivateKey(hex(vector.skRm));
    const pt = await envelopeSuite.open(
      { recipientKey, enc: hex(vector.enc), info: hex(vector.info) },
      hex(first.ct),
      hex(first.aad),
    );
    expect(toHex(pt)).toBe(first.pt);
  });

  it.each([0, 17, first.ct.length / 2 - 1])(
    "RFC 9180 A.1.1: ct with byte %i flipped does not open",
    async (index) => {
      const recipientKey = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmR));
      const ct = hex(first.ct);
      ct[index] = (ct[index] ?? 0) ^ 0x01;
      await expect(
        envelopeSuite.open(
          { recipientKey, enc: hex(vector.enc), info: hex(vector.info) },
          ct,
          hex(first.aad),
        ),
      ).rejects.toThrow();
    },
  );

  it("RFC 9180 A.1.1: another info or aad does not open", async () => {
    const recipientKey = await envelopeSuite.kem.deriveKeyPair(hex(vector.ikmR));
    const info = hex(vector.info);
    info[0] = (info[0] ?? 0) ^ 0x01;
    await expect(
      envelopeSuite.open({ recipientKey, enc: hex(vector.enc), info }, hex(first.ct), hex(first.aad)),
    ).rejects.toThrow();
    await expect(
      envelopeSuite.open(
        { recipientKey, enc: hex(vector.enc), info: hex(vector.info) },
        hex(first.ct),
        new Uint8Array(0),
      ),
    ).rejects.toThrow();
  });
});
