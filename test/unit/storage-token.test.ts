// Storage-token protocol code (src/stir/storage-token.ts; docs/tokens.md): encodings, K_temp
// signatures and the client blind/finalize steps on Node (the issuer's BlindSign here is the library's
// big-number path, as Node has no RSA-RAW; the server path is tested in workerd).
import { RSABSSA } from "@cloudflare/blindrsa-ts";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { CpsError } from "../../src/errors.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import {
  blindTokenRequest,
  checkTempKey,
  encodeStorageToken,
  exportTempKey,
  finalizeToken,
  generateTempKey,
  parseStorageToken,
  parseStoreSignature,
  signStore,
  storeReceipt,
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

// Issue 13 finding #1: the issuer only sees blinded messages and cannot see K_temp, so the client
// library is where a token with a weak K_temp is refused "at issuance": `tokenMessage` will not build
// one, and `parseStorageToken` (the store check and the wallet's import) will not accept one.
describe("adversary #1: weak K_temp keys are refused on the client", () => {
  const ED_PREFIX = "302a300506032b6570032100";
  const P256_PREFIX = "3059301306072a8648ce3d020106082a8648ce3d03010703420004";
  const fromHex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
  const P = 2n ** 255n - 19n;
  const edEncoding = (y: bigint, sign: 0 | 1) => {
    const out = new Uint8Array(32);
    for (let i = 0, v = y; i < 32; i++, v >>= 8n) out[i] = Number(v & 0xffn);
    out[31] = ((out[31] ?? 0) & 0x7f) | (sign << 7);
    return out;
  };
  const edSpki = (point: Uint8Array) => new Uint8Array([...fromHex(ED_PREFIX), ...point]);
  const refused = (spki: Uint8Array) => {
    expect(() => checkTempKey(spki)).toThrowError(
      expect.objectContaining({ code: "TOKEN_MALFORMED" }) as unknown as Error,
    );
    expect(() => tokenMessage("k1", spki)).toThrowError(
      expect.objectContaining({ code: "TOKEN_MALFORMED" }) as unknown as Error,
    );
  };

  /**
   * All eight points of the torsion subgroup, found with @noble/curves and no list: [L]X for a random
   * point X lies in the torsion subgroup (L the prime group order); one of order 8 generates it.
   */
  function torsionPoints(): Uint8Array[] {
    const Point = ed25519.Point;
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const times = (q: InstanceType<typeof Point>, k: bigint) => {
      let acc = Point.ZERO;
      for (let bit = BigInt(k.toString(2).length - 1); bit >= 0n; bit--) {
        acc = acc.double();
        if ((k >> bit) & 1n) acc = acc.add(q);
      }
      return acc;
    };
    for (;;) {
      let x: InstanceType<typeof Point>;
      try {
        x = Point.fromBytes(crypto.getRandomValues(new Uint8Array(32)));
      } catch {
        continue; // not a point
      }
      const t = times(x, L);
      if (t.double().double().is0()) continue; // order below 8
      const multiples = [Point.ZERO];
      for (let k = 1; k < 8; k++) multiples.push((multiples[k - 1] ?? Point.ZERO).add(t));
      return multiples.map((m) => m.toBytes());
    }
  }

  it("the eight small-order points, as @noble/curves enumerates them, are all refused, with either sign bit", () => {
    const points = torsionPoints();
    expect(points).toHaveLength(8);
    for (const point of points) {
      expect(ed25519.Point.fromBytes(point).isSmallOrder()).toBe(true);
      refused(edSpki(point));
      const flipped = point.slice();
      flipped[31] = (flipped[31] ?? 0) ^ 0x80;
      refused(edSpki(flipped));
    }
  });

  it("every encoding with y >= p is refused (both sign bits)", () => {
    for (let k = 0n; k < 19n; k++) {
      for (const s of [0, 1] as const) refused(edSpki(edEncoding(P + k, s)));
    }
    // The largest 255-bit value, and the canonical neighbour p - 1 (order 2) for contrast.
    refused(edSpki(new Uint8Array(32).fill(0xff)));
    refused(edSpki(edEncoding(P - 1n, 0)));
  });

  it("P-256: off the curve, (0, 0) and coordinates >= p are refused", async () => {
    const { spki } = await generateTempKey("P-256");
    const xy = spki.subarray(27);
    const offCurve = spki.slice();
    offCurve[90] = (offCurve[90] ?? 0) ^ 1;
    refused(offCurve);
    refused(new Uint8Array([...fromHex(P256_PREFIX), ...new Uint8Array(64)]));
    const p = fromHex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    refused(new Uint8Array([...fromHex(P256_PREFIX), ...p, ...xy.subarray(32)]));
    refused(
      new Uint8Array([...fromHex(P256_PREFIX), ...xy.subarray(0, 32), ...new Uint8Array(32).fill(0xff)]),
    );
  });

  it.each(["Ed25519", "P-256"] as const)("fresh %s keys are accepted (200 of them)", async (alg) => {
    for (let i = 0; i < 200; i++) {
      const { spki } = await generateTempKey(alg);
      expect(checkTempKey(spki)).toBe(alg);
    }
  });

  it("the wallet will not import a saved token whose K_temp is the identity", async () => {
    const kTemp = await generateTempKey();
    const token = encodeStorageToken({
      keyId: "k1",
      nonce: new Uint8Array(32).fill(1),
      kTempSpki: edSpki(edEncoding(1n, 0)),
      signature: new Uint8Array(256).fill(2),
    });
    const wallet = new TokenWallet({ cpsUrl: "https://cps.test", authorization: async () => "" });
    await expect(
      wallet.importTokens([
        {
          token,
          kTemp: encodeBase64url(await exportTempKey(kTemp.privateKey)),
          alg: "Ed25519",
          notAfter: Date.now() + 60_000,
          usesLeft: 1,
        },
      ]),
    ).rejects.toMatchObject({ code: "TOKEN_MALFORMED" });
    expect(wallet.size).toBe(0);
  });

  it.each([["Ed25519", 20] as const, ["P-256", 200] as const])(
    "checking a %s K_temp is cheap (under %i us; the store hot path)",
    async (alg, budgetUs) => {
      const keys = await Promise.all(Array.from({ length: 100 }, () => generateTempKey(alg)));
      for (const k of keys) checkTempKey(k.spki); // warm up
      const runs = 5_000;
      const start = performance.now();
      for (let i = 0; i < runs; i++) checkTempKey(keys[i % 100]?.spki ?? new Uint8Array());
      const perCheckUs = ((performance.now() - start) / runs) * 1000;
      console.log(`checkTempKey ${alg}: ${perCheckUs.toFixed(2)} us per key`);
      expect(perCheckUs).toBeLessThan(budgetUs);
    },
  );
});

describe("adversary #1: the retry receipt is one request's", () => {
  it("differs when the number, the blob, the signature or the token differs", async () => {
    const id = new Uint8Array(32).fill(3);
    const sig = new Uint8Array(64).fill(4);
    const base = await storeReceipt(id, tn, blob, sig);
    expect(base.ledger).toHaveLength(16);
    expect(base.queue).toHaveLength(16);
    expect(toHexU(base.ledger)).not.toBe(toHexU(base.queue));
    expect(toHexU((await storeReceipt(id, tn, blob, sig)).ledger)).toBe(toHexU(base.ledger));
    const other = blob.slice();
    other[0] = (other[0] ?? 0) ^ 1;
    const variants = [
      await storeReceipt(id, canonicalTn("12025550124"), blob, sig),
      await storeReceipt(id, tn, other, sig),
      await storeReceipt(id, tn, blob, new Uint8Array(64).fill(5)),
      await storeReceipt(new Uint8Array(32).fill(6), tn, blob, sig),
    ];
    for (const v of variants) {
      expect(toHexU(v.ledger)).not.toBe(toHexU(base.ledger));
      expect(toHexU(v.queue)).not.toBe(toHexU(base.queue));
    }
  });
});

function toHexU(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

describe("adversary #2: the shipped limits are the defaults the bound is computed from", () => {
  it("wrangler.toml [vars] and [env.production] carry src/config.ts's token and queue defaults", async () => {
    const { readFileSync } = await import("node:fs");
    const { readConfig } = await import("../../src/config.js");
    const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
    const d = readConfig({} as Env);
    const expected: Record<string, number> = {
      PASSPORT_TTL_SECONDS: d.ttlSeconds,
      MAX_LIVE_PER_NUMBER: d.maxLivePerNumber,
      TOKEN_MAX_USES: d.tokenMaxUses,
      TOKEN_MAX_USES_PER_NUMBER: d.tokenMaxUsesPerNumber,
      TOKEN_DAILY_QUOTA: d.tokenDailyQuota,
    };
    const production = toml.slice(toml.indexOf("[env.production]"));
    for (const [name, value] of Object.entries(expected)) {
      const pattern = new RegExp(`(^|[\\s{,])${name} = "(\\d+)"`, "gm");
      const found = [...toml.matchAll(pattern)].map((m) => Number(m[2]));
      expect(found.length, `${name} in wrangler.toml`).toBeGreaterThanOrEqual(2);
      expect(new Set(found), name).toEqual(new Set([value]));
      expect(production).toContain(`${name} = "${value}"`);
    }
    // One credential's quota x uses x TTL / cap: at most one minute of a full queue a day.
    expect((d.tokenDailyQuota * d.tokenMaxUses * d.ttlSeconds) / d.maxLivePerNumber).toBeLessThanOrEqual(60);
  });
});
