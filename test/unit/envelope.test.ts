/**
 * Envelope v1 (docs/wire-format.md): HPKE base mode sealing of a padded PASSporT, bound to the called
 * number (RFC 8816 §7.4), one length for every blob and dummies nobody can tell apart (RFC 8816 §6.2).
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  decodeEnvelope,
  ENVELOPE_LABEL,
  ENVELOPE_LENGTH,
  ENVELOPE_TEXT_LENGTH,
  encodeEnvelope,
  envelopeInfo,
  envelopeSuite,
  exportRecipientPrivateKey,
  generateRecipientKeyPair,
  importRecipientPrivateKey,
  MAX_PASSPORT_LENGTH,
  makeDecoy,
  makeDummy,
  openPassport,
  PADDED_PLAINTEXT_LENGTH,
  type RecipientKeyPair,
  sealPassport,
} from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";

// RFC 8816 §9 example PASSporT (dummy values), folded lines joined.
const PASSPORT =
  "eyJhbGciOiJFUzI1NiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9" +
  "jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9.eyJkZXN0Ijp7InRuIjpbI" +
  "jIyMjI1NTUyMjIyIl19LCJpYXQiOiIxNTgzMjUxODEwIiwib3JpZyI6eyJ0biI6" +
  "IjExMTE1NTUxMTExIn19.pnij4IlLHoR4vxID0u3CT1e9Hq4xLngZUTv45Vbxmd" +
  "3IVyZug4KOSa378yfP4x6twY0KTdiDypsereS438ZHaQ";
const TN = canonicalTn("2.222.555.2222");
const OTHER_TN = canonicalTn("2.222.555.2223");
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return err instanceof CpsError ? err.code : `not a CpsError: ${String(err)}`;
  }
  return undefined;
}

let bob: RecipientKeyPair;
let mallory: RecipientKeyPair;
let blob: Uint8Array;

beforeAll(async () => {
  bob = await generateRecipientKeyPair();
  mallory = await generateRecipientKeyPair();
  blob = await sealPassport(bob.publicKey, TN, PASSPORT);
});

describe("envelope v1: layout constants", () => {
  it("a blob is enc (Nenc) || padded plaintext || tag (Nt) = 1072 bytes, 1430 base64url chars", () => {
    expect(envelopeSuite.kem.encSize).toBe(32);
    expect(ENVELOPE_LENGTH).toBe(envelopeSuite.kem.encSize + PADDED_PLAINTEXT_LENGTH + 16);
    expect(ENVELOPE_LENGTH).toBe(1072);
    expect(ENVELOPE_TEXT_LENGTH).toBe(1430);
    expect(MAX_PASSPORT_LENGTH).toBe(PADDED_PLAINTEXT_LENGTH - 2);
  });

  it("envelopeInfo is the label, one zero byte, the canonical digits", () => {
    const info = envelopeInfo(TN);
    const label = new TextEncoder().encode(ENVELOPE_LABEL);
    expect(info.length).toBe(label.length + 1 + TN.length);
    expect(info.subarray(0, label.length)).toEqual(label);
    expect(info[label.length]).toBe(0);
    expect(new TextDecoder().decode(info.subarray(label.length + 1))).toBe("22225552222");
  });
});

describe("envelope v1: seal and open", () => {
  it("round-trips the RFC 8816 §9 example PASSporT", async () => {
    expect(await openPassport(bob.keyPair, TN, blob)).toBe(PASSPORT);
  });

  it("opens with the private key alone and with a public key given as a CryptoKey", async () => {
    expect(await openPassport(bob.keyPair.privateKey, TN, blob)).toBe(PASSPORT);
    const again = await sealPassport(bob.keyPair.publicKey, TN, PASSPORT);
    expect(await openPassport(bob.keyPair, TN, again)).toBe(PASSPORT);
  });

  it("round-trips through the base64url text form", async () => {
    const text = encodeEnvelope(blob);
    expect(text).toHaveLength(ENVELOPE_TEXT_LENGTH);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(await openPassport(bob.keyPair, TN, decodeEnvelope(text))).toBe(PASSPORT);
  });

  it("gives a fresh blob for every seal of the same PASSporT", async () => {
    const again = await sealPassport(bob.publicKey, TN, PASSPORT);
    expect(again).not.toEqual(blob);
    expect(again.subarray(0, 32)).not.toEqual(blob.subarray(0, 32));
  });

  it.each([
    ["empty", ""],
    ["one byte", "x"],
    ["the RFC 8816 §9 PASSporT", PASSPORT],
    ["MAX_PASSPORT_LENGTH ASCII bytes", "a".repeat(1022)],
    ["MAX_PASSPORT_LENGTH bytes of 2-byte UTF-8", "é".repeat(511)],
  ])(
    "every blob is exactly ENVELOPE_LENGTH bytes and ENVELOPE_TEXT_LENGTH chars: %s",
    async (_l, passport) => {
      const sealed = await sealPassport(bob.publicKey, TN, passport);
      expect(sealed).toHaveLength(ENVELOPE_LENGTH);
      expect(encodeEnvelope(sealed)).toHaveLength(ENVELOPE_TEXT_LENGTH);
      expect(await openPassport(bob.keyPair, TN, sealed)).toBe(passport);
    },
  );

  it("a PASSporT of MAX_PASSPORT_LENGTH bytes seals; one byte more is PASSPORT_TOO_LARGE", async () => {
    const max = "a".repeat(MAX_PASSPORT_LENGTH);
    expect(await openPassport(bob.keyPair, TN, await sealPassport(bob.publicKey, TN, max))).toBe(max);
    expect(await codeOf(sealPassport(bob.publicKey, TN, `${max}a`))).toBe("PASSPORT_TOO_LARGE");
    // Counted in UTF-8 bytes, not UTF-16 code units: 511 x 'é' is 1022 bytes, one more 'a' is 1023.
    expect(await codeOf(sealPassport(bob.publicKey, TN, `${"é".repeat(511)}a`))).toBe("PASSPORT_TOO_LARGE");
    expect(await codeOf(sealPassport(bob.publicKey, TN, "a".repeat(100_000)))).toBe("PASSPORT_TOO_LARGE");
  });
});

describe("envelope v1: refusals", () => {
  it("another key does not open it (ENVELOPE_OPEN_FAILED)", async () => {
    expect(await codeOf(openPassport(mallory.keyPair, TN, blob))).toBe("ENVELOPE_OPEN_FAILED");
  });

  it("RFC 8816 §7.4: a blob moved under another called number does not open", async () => {
    expect(await codeOf(openPassport(bob.keyPair, OTHER_TN, blob))).toBe("ENVELOPE_OPEN_FAILED");
    expect(await codeOf(openPassport(bob.keyPair, canonicalTn("122225552222"), blob))).toBe(
      "ENVELOPE_OPEN_FAILED",
    );
  });

  it.each([
    ["enc, first byte", 0, 0x01],
    ["enc, last byte", 31, 0x01],
    // X25519 ignores the top bit of the u-coordinate, but enc itself is hashed into the KEM context.
    ["enc, top bit of the last byte", 31, 0x80],
    ["ciphertext, length field", 32, 0x01],
    ["ciphertext, middle", 32 + 500, 0x40],
    ["ciphertext, last padding byte", ENVELOPE_LENGTH - 17, 0x01],
    ["tag, first byte", ENVELOPE_LENGTH - 16, 0x01],
    ["tag, last byte", ENVELOPE_LENGTH - 1, 0x80],
  ])("a tampered byte does not open: %s", async (_label, index, mask) => {
    const tampered = blob.slice();
    tampered[index] = (tampered[index] ?? 0) ^ mask;
    expect(await codeOf(openPassport(bob.keyPair, TN, tampered))).toBe("ENVELOPE_OPEN_FAILED");
  });

  it("every single-bit flip over the whole blob is refused (sampled)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ENVELOPE_LENGTH - 1 }),
        fc.integer({ min: 0, max: 7 }),
        async (i, bit) => {
          const tampered = blob.slice();
          tampered[i] = (tampered[i] ?? 0) ^ (1 << bit);
          expect(await codeOf(openPassport(bob.keyPair, TN, tampered))).toBe("ENVELOPE_OPEN_FAILED");
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a truncated or extended blob does not open, and decodeEnvelope refuses it with BLOB_SIZE", async () => {
    const shorter = blob.subarray(0, ENVELOPE_LENGTH - 1);
    const longer = new Uint8Array(ENVELOPE_LENGTH + 1);
    longer.set(blob);
    for (const b of [shorter, longer, blob.subarray(0, 32), new Uint8Array(0)]) {
      expect(await codeOf(openPassport(bob.keyPair, TN, b))).toBe("ENVELOPE_OPEN_FAILED");
      expect(await codeOf(() => decodeEnvelope(encodeEnvelope(b)))).toBe("BLOB_SIZE");
    }
  });

  /** Seals a hand-made padded plaintext with the raw suite, bypassing sealPassport's padding. */
  async function sealRaw(padded: Uint8Array): Promise<Uint8Array> {
    const { enc, ct } = await envelopeSuite.seal(
      { recipientPublicKey: bob.keyPair.publicKey, info: envelopeInfo(TN) },
      padded,
    );
    const out = new Uint8Array(ENVELOPE_LENGTH);
    out.set(new Uint8Array(enc), 0);
    out.set(new Uint8Array(ct), 32);
    return out;
  }

  function padded(body: Uint8Array, length = body.length): Uint8Array {
    const out = new Uint8Array(PADDED_PLAINTEXT_LENGTH);
    new DataView(out.buffer).setUint16(0, length);
    out.set(body, 2);
    return out;
  }

  it("a well-formed hand-made plaintext opens (control for the refusals below)", async () => {
    const body = new TextEncoder().encode(PASSPORT);
    expect(await openPassport(bob.keyPair, TN, await sealRaw(padded(body)))).toBe(PASSPORT);
  });

  it.each([
    ["just after the PASSporT", 2 + PASSPORT.length],
    ["in the middle of the padding", 600],
    ["in the last byte", PADDED_PLAINTEXT_LENGTH - 1],
  ])("non-zero padding is refused: %s", async (_label, at) => {
    const p = padded(new TextEncoder().encode(PASSPORT));
    p[at] = 0x41;
    expect(await codeOf(openPassport(bob.keyPair, TN, await sealRaw(p)))).toBe("ENVELOPE_OPEN_FAILED");
  });

  it.each([
    ["MAX_PASSPORT_LENGTH + 1", MAX_PASSPORT_LENGTH + 1],
    ["0xffff", 0xffff],
  ])("a length field beyond the maximum is refused: %s", async (_label, length) => {
    const p = padded(new Uint8Array(0), length);
    expect(await codeOf(openPassport(bob.keyPair, TN, await sealRaw(p)))).toBe("ENVELOPE_OPEN_FAILED");
  });

  it("a PASSporT that is not valid UTF-8 is refused", async () => {
    const p = padded(Uint8Array.of(0x61, 0xff, 0x62));
    expect(await codeOf(openPassport(bob.keyPair, TN, await sealRaw(p)))).toBe("ENVELOPE_OPEN_FAILED");
  });

  it("a padded plaintext of the wrong size is refused", async () => {
    const { enc, ct } = await envelopeSuite.seal(
      { recipientPublicKey: bob.keyPair.publicKey, info: envelopeInfo(TN) },
      padded(new Uint8Array(0)).subarray(0, PADDED_PLAINTEXT_LENGTH - 1),
    );
    const short = new Uint8Array(ENVELOPE_LENGTH - 1);
    short.set(new Uint8Array(enc), 0);
    short.set(new Uint8Array(ct), 32);
    expect(await codeOf(openPassport(bob.keyPair, TN, short))).toBe("ENVELOPE_OPEN_FAILED");
  });
});

describe("envelope v1: dummies (RFC 8816 §6.2)", () => {
  it("1,000 dummies: all ENVELOPE_LENGTH, all distinct, none opens with a key we hold", async () => {
    const dummies = await Promise.all(Array.from({ length: 1000 }, () => makeDummy(TN)));
    const texts = new Set<string>();
    const encs = new Set<string>();
    for (const d of dummies) {
      expect(d).toHaveLength(ENVELOPE_LENGTH);
      texts.add(encodeEnvelope(d));
      encs.add(encodeEnvelope(d.subarray(0, 32)));
    }
    expect(texts.size).toBe(1000);
    expect(encs.size).toBe(1000);
    const keys = [bob.keyPair, mallory.keyPair];
    const opened = await Promise.all(dummies.flatMap((d) => keys.map((k) => codeOf(openPassport(k, TN, d)))));
    expect(new Set(opened)).toEqual(new Set(["ENVELOPE_OPEN_FAILED"]));
  }, 30_000);

  it("a dummy has the same structure as a real blob: length, text length, enc top bit clear", async () => {
    const dummy = await makeDummy(TN);
    expect(dummy).toHaveLength(blob.length);
    expect(encodeEnvelope(dummy)).toHaveLength(encodeEnvelope(blob).length);
    // A serialised X25519 public key is < 2^255 - 19, so its last byte is below 0x80 (RFC 7748 §5).
    for (let i = 0; i < 50; i++) expect((await makeDummy(TN))[31]).toBeLessThan(0x80);
    expect(blob[31]).toBeLessThan(0x80);
    expect(decodeEnvelope(encodeEnvelope(dummy))).toEqual(dummy);
  });

  it("a decoy is the same bytes from the same seed (every isolate agrees), others from another seed or number", async () => {
    const seed = new Uint8Array(32).fill(7);
    const a = await makeDecoy(TN, seed);
    expect(await makeDecoy(TN, seed)).toEqual(a);
    expect(await makeDecoy(TN, new Uint8Array(32).fill(8))).not.toEqual(a);
    expect(await makeDecoy(canonicalTn("15550000001"), seed)).not.toEqual(a);
    expect(a).toHaveLength(blob.length);
    expect(a[31]).toBeLessThan(0x80);
    expect(await codeOf(openPassport(bob.keyPair, TN, a))).toBe("ENVELOPE_OPEN_FAILED");
  });
});

describe("envelope v1: keys", () => {
  it.each([0, 1, 31, 33, 64])("a %i-byte public key is INVALID_KEY", async (length) => {
    expect(await codeOf(sealPassport(new Uint8Array(length), TN, PASSPORT))).toBe("INVALID_KEY");
  });

  it.each([
    ["all zero (low order)", new Uint8Array(32)],
    ["u = 1 (low order)", Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))],
  ])("a 32-byte low-order public key is INVALID_KEY, not a library error: %s", async (_l, key) => {
    expect(await codeOf(sealPassport(key, TN, PASSPORT))).toBe("INVALID_KEY");
  });

  it.each([0, 31, 33, 48])("a %i-byte private key is INVALID_KEY", async (length) => {
    expect(await codeOf(importRecipientPrivateKey(new Uint8Array(length)))).toBe("INVALID_KEY");
  });

  it("generateRecipientKeyPair gives a 32-byte public key that seals to the pair", async () => {
    const pair = await generateRecipientKeyPair();
    expect(pair.publicKey).toHaveLength(32);
    expect(new Uint8Array(await envelopeSuite.kem.serializePublicKey(pair.keyPair.publicKey))).toEqual(
      pair.publicKey,
    );
  });

  it("export then import of a private key round-trips and still opens", async () => {
    const raw = await exportRecipientPrivateKey(bob.keyPair.privateKey);
    expect(raw).toHaveLength(32);
    const imported = await importRecipientPrivateKey(raw);
    expect(await exportRecipientPrivateKey(imported)).toEqual(raw);
    expect(await openPassport(imported, TN, blob)).toBe(PASSPORT);
    // The imported key is bob's, not some other: mallory's blob still does not open with it.
    const forMallory = await sealPassport(mallory.publicKey, TN, PASSPORT);
    expect(await codeOf(openPassport(imported, TN, forMallory))).toBe("ENVELOPE_OPEN_FAILED");
  });
});

describe("envelope v1: decodeEnvelope", () => {
  it("accepts the RFC 8816 §9 folded (multi-line, indented) body", async () => {
    const text = encodeEnvelope(blob);
    const lines = text.match(/.{1,64}/g) ?? [];
    expect(lines.length).toBeGreaterThan(1);
    for (const folded of [
      lines.join("\n"),
      lines.map((l) => `   ${l}`).join("\r\n"),
      `\n${lines.join("\n\t")}\n`,
    ]) {
      const decoded = decodeEnvelope(folded);
      expect(decoded).toEqual(blob);
      expect(await openPassport(bob.keyPair, TN, decoded)).toBe(PASSPORT);
    }
  });

  it.each([
    ["'=' padding", (t: string) => `${t}==`],
    ["one '='", (t: string) => `${t}=`],
    ["standard-alphabet '+'", (t: string) => `+${t.slice(1)}`],
    ["standard-alphabet '/'", (t: string) => `${t.slice(0, 100)}/${t.slice(101)}`],
    ["a dot", (t: string) => `${t.slice(0, 100)}.${t.slice(101)}`],
    ["a non-ASCII char", (t: string) => `${t.slice(0, 100)}é${t.slice(101)}`],
    ["NUL", (t: string) => `${t}\u0000`],
    ["length 1 mod 4", (t: string) => `${t}AAA`],
    // 1072 = 3 * 357 + 1: the last char carries 2 bits and 4 unused ones that must be zero.
    [
      "non-canonical last char",
      (t: string) => `${t.slice(0, -1)}${B64URL[B64URL.indexOf(t.at(-1) ?? "A") | 1]}`,
    ],
  ])("refuses %s with BLOB_ENCODING", (_label, mutate) => {
    expect(() => decodeEnvelope(mutate(encodeEnvelope(blob)))).toThrow(CpsError);
    try {
      decodeEnvelope(mutate(encodeEnvelope(blob)));
    } catch (err) {
      expect((err as CpsError).code).toBe("BLOB_ENCODING");
      expect((err as CpsError).status).toBe(400);
    }
  });

  it.each([
    ["empty", ""],
    ["whitespace only", " \r\n\t"],
    ["one byte short", "A".repeat(1428)],
    ["three bytes more", "A".repeat(1434)],
    ["twice a blob", "A".repeat(2 * 1428)],
  ])("refuses %s with BLOB_SIZE", async (_label, text) => {
    expect(await codeOf(() => decodeEnvelope(text))).toBe("BLOB_SIZE");
  });
});

describe("envelope v1: properties", () => {
  it("decodeEnvelope and decodeBase64url throw only CpsError, for any string", async () => {
    const { decodeBase64url } = await import("../../src/stir/base64url.js");
    const nearBlob = fc
      .tuple(fc.stringMatching(/^[A-Za-z0-9_-]{1420,1440}$/), fc.constantFrom("", "=", "\n", " ", "é", "+"))
      .map(([a, b]) => a + b);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary", maxLength: 1500 }), nearBlob), (s) => {
        for (const fn of [decodeEnvelope, decodeBase64url]) {
          try {
            fn(s);
          } catch (err) {
            expect(err).toBeInstanceOf(CpsError);
            expect(["BLOB_ENCODING", "BLOB_SIZE"]).toContain((err as CpsError).code);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it("open(seal(x)) === x for any PASSporT-like string up to MAX_PASSPORT_LENGTH bytes", async () => {
    const utf8 = new TextEncoder();
    const passportLike = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9_.-]{0,1022}$/),
      fc
        .string({ unit: "grapheme", maxLength: 300 })
        .filter((s) => utf8.encode(s).length <= MAX_PASSPORT_LENGTH),
      fc.integer({ min: 1000, max: MAX_PASSPORT_LENGTH }).map((n) => "x".repeat(n)),
    );
    await fc.assert(
      fc.asyncProperty(passportLike, async (x) => {
        const sealed = await sealPassport(bob.publicKey, TN, x);
        expect(sealed).toHaveLength(ENVELOPE_LENGTH);
        expect(await openPassport(bob.keyPair, TN, sealed)).toBe(x);
      }),
      { numRuns: 150 },
    );
  });
});
