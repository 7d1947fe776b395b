// Storage-token protocol code (src/stir/storage-token.ts; docs/tokens.md): encodings, K_temp
// signatures and the client blind/finalize steps on Node (the issuer's BlindSign here is the library's
// big-number path, as Node has no RSA-RAW; the server path is tested in workerd).
import { RSABSSA } from "@cloudflare/blindrsa-ts";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  blindTokenRequest,
  encodeStorageToken,
  finalizeToken,
  generateTempKey,
  parseStorageToken,
  parseStoreSignature,
  signStore,
  storeSignatureInput,
  tempKeyAlgorithmOf,
  tokenMessage,
  verifyStoreSignature,
  verifyTokenSignature,
} from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";

const tn = canonicalTn("12025550123");
const blob = crypto.getRandomValues(new Uint8Array(64));

describe("token message and store signature input (docs/tokens.md)", () => {
  it("lays out label || 0 || u8 len || keyId || u16 len || spki", async () => {
    const { spki } = await generateTempKey();
    const m = tokenMessage("k1", spki);
    const label = new TextEncoder().encode("stir-oob storage token v1");
    expect(m.subarray(0, label.length)).toEqual(label);
    expect(Array.from(m.subarray(label.length, label.length + 4))).toEqual([0, 2, 0x6b, 0x31]);
    expect(Array.from(m.subarray(label.length + 4, label.length + 6))).toEqual([0, 44]);
    expect(m.subarray(label.length + 6)).toEqual(spki);
  });

  it("store input is label || 0 || u8 len || tn || blob", () => {
    const input = storeSignatureInput(tn, blob);
    const label = new TextEncoder().encode("stir-oob store v1");
    expect(input.subarray(0, label.length)).toEqual(label);
    expect(input[label.length]).toBe(0);
    expect(input[label.length + 1]).toBe(11);
    expect(new TextDecoder().decode(input.subarray(label.length + 2, label.length + 13))).toBe(tn);
    expect(input.subarray(label.length + 13)).toEqual(blob);
  });
});

describe("K_temp signatures", () => {
  it.each(["Ed25519", "P-256"] as const)("%s: verifies over (tn, blob) and nothing else", async (alg) => {
    const k = await generateTempKey(alg);
    expect(tempKeyAlgorithmOf(k.spki)).toBe(alg);
    const sig = await signStore(k.privateKey, tn, blob);
    expect(sig).toHaveLength(64);
    expect(await verifyStoreSignature(k.spki, sig, tn, blob)).toBe(true);
    expect(await verifyStoreSignature(k.spki, sig, canonicalTn("12025550124"), blob)).toBe(false);
    const other = blob.slice();
    other[0] = (other[0] ?? 0) ^ 1;
    expect(await verifyStoreSignature(k.spki, sig, tn, other)).toBe(false);
    const k2 = await generateTempKey(alg);
    expect(await verifyStoreSignature(k2.spki, sig, tn, blob)).toBe(false);
  });
});

describe("CPS-Token encoding", () => {
  it("round-trips", async () => {
    const { spki } = await generateTempKey();
    const t = {
      keyId: "key-1",
      nonce: new Uint8Array(32).fill(7),
      kTempSpki: spki,
      signature: new Uint8Array(256).fill(9),
    };
    const parsed = parseStorageToken(encodeStorageToken(t));
    expect(parsed).toEqual(t);
  });

  it.each([
    "",
    "v1",
    "v2.k.AAAA.AAAA.AAAA",
    "v1..AAAA.AAAA.AAAA",
    "v1.k.AAAA.AAAA.AAAA",
    "v1.k!.AAAA.AAAA.AAAA",
    "v1.k.AAAA.AAAA.AAAA.AAAA",
    `v1.k.${"A".repeat(43)}.${"A".repeat(59)}.AAAA`,
    "v1.k.*.*.*",
    "x".repeat(3000),
  ])("refuses %j with TOKEN_MALFORMED", (value) => {
    expect(() => parseStorageToken(value)).toThrowError(
      expect.objectContaining({ code: "TOKEN_MALFORMED" }) as unknown as Error,
    );
  });

  it.each(["", "AAAA", "A".repeat(87), "*".repeat(86)])("refuses signature %j", (value) => {
    expect(() => parseStoreSignature(value)).toThrow(CpsError);
  });
});

describe("client blind / issuer sign / finalize on Node", { timeout: 60_000 }, () => {
  it("produces a token that verifies; a tampered blind signature is TOKEN_INVALID", async () => {
    const issuer = RSABSSA.SHA384.PSS.Randomized({ supportsRSARAW: false });
    const { publicKey, privateKey } = await RSABSSA.SHA384.generateKey({
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    });
    const pending = await blindTokenRequest(publicKey, "k1");
    const blindSig = await issuer.blindSign(privateKey, pending.blindedMessage);
    const token = await finalizeToken(publicKey, pending, blindSig);
    expect(await verifyTokenSignature(publicKey, token)).toBe(true);
    expect(await verifyTokenSignature(publicKey, { ...token, keyId: "k2" })).toBe(false);
    const { spki } = await generateTempKey();
    expect(await verifyTokenSignature(publicKey, { ...token, kTempSpki: spki })).toBe(false);
    const bad = blindSig.slice();
    bad[10] = (bad[10] ?? 0) ^ 1;
    await expect(finalizeToken(publicKey, pending, bad)).rejects.toMatchObject({ code: "TOKEN_INVALID" });
  });
});
