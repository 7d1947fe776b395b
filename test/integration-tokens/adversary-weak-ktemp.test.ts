/**
 * Issue 13, finding #1: one storage token bought unlimited stores. A client chose K_temp as the
 * Ed25519 identity point (or another small-order point): one fixed signature (R = identity, S = 0)
 * then verifies for every number and blob, and the ledger's retry check, which matched the hash of
 * the signature alone, counted every store after the first as a retry.
 *
 * These tests speak the wire format of docs/tokens.md directly (the token message is built here, not
 * with `tokenMessage`, which refuses such keys on the client side): the issuer signature is a real
 * RSA-PSS signature by the configured test issuer key, as a finalized blind signature would be, so only
 * the K_temp checks stand between the forged store and the queue. Real store route, in workerd.
 */
import { env } from "cloudflare:test";
import { p256 } from "@noble/curves/nist.js";
import { beforeAll, describe, expect, it } from "vitest";
import { ledgerShard, type TokenLedger } from "../../src/durable-objects/token-ledger.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { storeReceipt, tokenIdOf } from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { directToken, issuerPrivateKey, liveCount, sealedFor, store, tokenHeaders } from "./helpers.js";

const hex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const ascii = new TextEncoder();

const ED25519_SPKI_PREFIX = hex("302a300506032b6570032100");
const P256_SPKI_PREFIX = hex("3059301306072a8648ce3d020106082a8648ce3d03010703420004");

/** Little-endian 32-byte encoding of `y` with the x sign bit `sign` (RFC 8032 §5.1.2). */
function edEncoding(y: bigint, sign: 0 | 1): Uint8Array {
  const out = new Uint8Array(32);
  let v = y;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[31] = ((out[31] ?? 0) & 0x7f) | (sign << 7);
  return out;
}
const P = 2n ** 255n - 19n;

/** The eight small-order points of edwards25519, canonical encodings (RFC 8032; "Taming the many EdDSAs"). */
const SMALL_ORDER: [string, string][] = [
  ["identity (0, 1)", "0100000000000000000000000000000000000000000000000000000000000000"],
  ["order 2 (0, -1)", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"],
  ["order 4 (+sqrt(-1), 0)", "0000000000000000000000000000000000000000000000000000000000000000"],
  ["order 4 (-sqrt(-1), 0)", "0000000000000000000000000000000000000000000000000000000000000080"],
  ["order 8 a+", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"],
  ["order 8 a-", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"],
  ["order 8 b+", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"],
  ["order 8 b-", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"],
];

/** Non-canonical encodings: y = p + k (k = 0..18, both signs; y = p and p + 1 are small-order), and x = 0 with the sign bit set. */
const NON_CANONICAL: [string, Uint8Array][] = [
  ...Array.from({ length: 19 }, (_, k) =>
    ([0, 1] as const).map((s): [string, Uint8Array] => [
      `y = p + ${k}, sign ${s}`,
      edEncoding(P + BigInt(k), s),
    ]),
  ).flat(),
  ["identity with the sign bit (-0, 1)", edEncoding(1n, 1)],
  ["order 2 with the sign bit (-0, -1)", edEncoding(P - 1n, 1)],
];

/** A P-256 point with a small x (found by search), so that x + p still fits in 32 bytes. */
function smallXPoint(): { x: bigint; y: bigint } {
  const Fp = p256.Point.Fp;
  const b = p256.Point.CURVE().b;
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.sub(Fp.mul(Fp.mul(x, x), x), Fp.mul(3n, x)), b);
    try {
      const y = Fp.sqrt(rhs);
      if (Fp.eql(Fp.mul(y, y), rhs)) return { x, y };
    } catch {
      // not a square: try the next x
    }
  }
}
const be32 = (v: bigint) => hex(v.toString(16).padStart(64, "0"));

let issuer: CryptoKey;
beforeAll(async () => {
  issuer = await issuerPrivateKey("test-current");
});

/**
 * A `CPS-Token` value for `spki`, signed by the configured issuer key exactly as docs/tokens.md §2
 * says (RSA-PSS SHA-384, salt 48, over nonce || msg): the issuer never sees K_temp, so it signs these.
 */
async function tokenFor(spki: Uint8Array, keyId = "test-current"): Promise<string> {
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const id = ascii.encode(keyId);
  const msg = cat(
    ascii.encode("stir-oob storage token v1"),
    Uint8Array.of(0, id.length),
    id,
    Uint8Array.of(spki.length >> 8, spki.length & 0xff),
    spki,
  );
  const sig = new Uint8Array(
    await crypto.subtle.sign({ name: "RSA-PSS", saltLength: 48 }, issuer, cat(nonce, msg)),
  );
  return ["v1", keyId, encodeBase64url(nonce), encodeBase64url(spki), encodeBase64url(sig)].join(".");
}

/** The Ed25519 signature (R = identity, S = 0): valid for every message under the identity K_temp. */
const UNIVERSAL_SIGNATURE = encodeBase64url(cat(hex(SMALL_ORDER[0]?.[1] ?? ""), new Uint8Array(32)));

let n = 0;
const freshTn = () => `1303555${String(1000 + n++).padStart(4, "0")}`;

async function storeWith(token: string, signature: string) {
  const tn = freshTn();
  const { text } = await sealedFor(tn);
  const res = await store(tn, text, { "CPS-Token": token, "CPS-Token-Signature": signature });
  return { ...res, tn };
}

describe("adversary #1: one storage token buys unlimited stores", () => {
  it("the Ed25519 identity as K_temp: one fixed signature over 30 numbers and blobs stores nothing", async () => {
    const token = await tokenFor(cat(ED25519_SPKI_PREFIX, hex(SMALL_ORDER[0]?.[1] ?? "")));
    const results = [];
    for (let i = 0; i < 30; i++) results.push(await storeWith(token, UNIVERSAL_SIGNATURE));
    const accepted = results.filter((r) => r.status === 201).length;
    expect(accepted, "stores paid by the identity-point token").toBe(0);
    for (const r of results) {
      expect(r.status).toBe(400);
      expect(r.body.code).toBe("TOKEN_MALFORMED");
    }
    expect(await liveCount(results[0]?.tn ?? "")).toBe(0);
  });

  it.each(SMALL_ORDER)(
    "refuses the small-order Ed25519 K_temp %s: 400 TOKEN_MALFORMED",
    async (_name, point) => {
      const token = await tokenFor(cat(ED25519_SPKI_PREFIX, hex(point)));
      const res = await storeWith(token, UNIVERSAL_SIGNATURE);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe("TOKEN_MALFORMED");
      expect(res.headers.get("Content-Type")).toContain("application/problem+json");
      expect(await liveCount(res.tn)).toBe(0);
    },
  );

  it.each(NON_CANONICAL)(
    "refuses the non-canonical Ed25519 K_temp %s: 400 TOKEN_MALFORMED",
    async (_name, point) => {
      const token = await tokenFor(cat(ED25519_SPKI_PREFIX, point));
      const res = await storeWith(token, UNIVERSAL_SIGNATURE);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe("TOKEN_MALFORMED");
      expect(await liveCount(res.tn)).toBe(0);
    },
  );

  const small = smallXPoint();
  const P256_BAD: [string, Uint8Array][] = [
    ["off the curve (x, y + 1)", cat(be32(small.x), be32((small.y + 1n) % p256.Point.Fp.ORDER))],
    [
      "the point (0, 0) (P-256 has no encoding of the identity; this is its usual stand-in)",
      new Uint8Array(64),
    ],
    [
      "x >= p (x + p, y: the same point, non-canonical)",
      cat(be32(small.x + p256.Point.Fp.ORDER), be32(small.y)),
    ],
    [
      "y >= p (x, y + p: the same point, non-canonical) when it fits",
      cat(
        be32(small.x),
        be32(small.y + p256.Point.Fp.ORDER < 2n ** 256n ? small.y + p256.Point.Fp.ORDER : 2n ** 256n - 1n),
      ),
    ],
  ];
  it.each(P256_BAD)("refuses the P-256 K_temp %s: 400 TOKEN_MALFORMED", async (_name, xy) => {
    const token = await tokenFor(cat(P256_SPKI_PREFIX, xy));
    const res = await storeWith(token, encodeBase64url(new Uint8Array(64).fill(1)));
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("TOKEN_MALFORMED");
    expect(await liveCount(res.tn)).toBe(0);
  });

  it("the canonical P-256 point used above is valid: a real K_temp of both algorithms still stores", async () => {
    expect(() => p256.Point.fromAffine(small).assertValidity()).not.toThrow();
    for (const alg of ["Ed25519", "P-256"] as const) {
      const { token, privateKey } = await directToken("test-current", issuer, alg);
      const tn = freshTn();
      const { text } = await sealedFor(tn);
      expect((await store(tn, text, await tokenHeaders(token, privateKey, tn, text))).status).toBe(201);
    }
  });

  // The second half: a store is a retry only when it is the same request. The ledger's receipt is a
  // hash of (token, number, blob, K_temp signature), so one signature replayed over other numbers or
  // blobs (which only a weak K_temp could make verify) is counted, never waved through as a retry.
  it("the retry receipt binds number and blob: one signature replayed over another (number, blob) is counted", async () => {
    const { token, privateKey } = await directToken("test-current", issuer);
    const tn = freshTn();
    const { text } = await sealedFor(tn);
    const headers = await tokenHeaders(token, privateKey, tn, text);
    expect((await store(tn, text, headers)).status).toBe(201);
    const signature = Uint8Array.from(
      atob((headers["CPS-Token-Signature"] ?? "").replace(/-/g, "+").replace(/_/g, "/")),
      (c) => c.charCodeAt(0),
    );
    const tokenId = await tokenIdOf(token.kTempSpki);
    const ns = env.TOKEN_LEDGER as DurableObjectNamespace<TokenLedger>;
    const ledger = ns.get(ns.idFromName(`token-shard-${ledgerShard(tokenId)}`));
    const pair = encodeBase64url(new Uint8Array(16));
    const spend = async (number: string, blob: Uint8Array) => {
      const receipt = await storeReceipt(tokenId, canonicalTn(number), blob, signature);
      return ledger.spend(
        encodeBase64url(tokenId),
        pair,
        Date.now() + 3_600_000,
        encodeBase64url(receipt.ledger),
      );
    };
    const blob = decodeEnvelope(text);
    // The same request again: a retry, not counted (uses stays 1).
    expect(await spend(tn, blob)).toEqual({ ok: true, uses: 1 });
    // The same signature with another number, or another blob: a new use each time.
    const otherTn = freshTn();
    expect(await spend(otherTn, blob)).toEqual({ ok: true, uses: 2 });
    const otherBlob = decodeEnvelope((await sealedFor(tn)).text);
    expect(await spend(tn, otherBlob)).toEqual({ ok: true, uses: 3 });
  });
});
