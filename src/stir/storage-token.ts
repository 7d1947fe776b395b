/**
 * Storage tokens (RFC 8816 §7.5) as blind RSA signatures (RFC 9474, RSABSSA-SHA384-PSS-Randomized):
 * the byte formats and the signing/verification steps shared by the CPS and the client wallet.
 * Pure: no bindings, no I/O. The wire format is specified in docs/tokens.md; keep the two in step.
 *
 * Flow: the client makes a fresh key pair K_temp, builds `tokenMessage(keyId, spki(K_temp))`, prepares
 * it with a random 32-byte nonce (RFC 9474 §4.1), blinds it and has the CPS sign the blinded message
 * after credential auth. It unblinds the answer into an RSA-PSS signature over `nonce || message`.
 * To store, it sends that token and its own K_temp signature over `storeSignatureInput(tn, blob)`.
 */

import { RSABSSA } from "@cloudflare/blindrsa-ts";
import { p256 } from "@noble/curves/nist.js";
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "./base64url.js";
import { concatBytes } from "./bytes.js";
import type { CanonicalTn } from "./tn.js";

/** The RFC 9474 variant every issuer key uses. */
export const TOKEN_SUITE = "RSABSSA-SHA384-PSS-Randomized";
/** Header carrying the token (K_temp public key and the unblinded CPS signature). */
export const TOKEN_HEADER = "CPS-Token";
/** Header carrying the K_temp signature over (called number || blob). */
export const TOKEN_SIGNATURE_HEADER = "CPS-Token-Signature";
/** Version prefix of the `CPS-Token` value. */
export const TOKEN_VERSION = "v1";
/** Domain-separation labels: a token message can never pass as a store signature input and back. */
export const TOKEN_MESSAGE_LABEL = "stir-oob storage token v1";
export const STORE_SIGNATURE_LABEL = "stir-oob store v1";
/** Domain-separation label of the retry receipt (docs/tokens.md "Retried stores"). */
export const STORE_RECEIPT_LABEL = "stir-oob store receipt v1";
/** RFC 9474 Randomized prepare: 32 random bytes in front of the message. */
export const TOKEN_NONCE_LENGTH = 32;
/** Issuer key ids: short, URL- and header-safe, no dots (the token is dot-separated). */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Smallest issuer modulus accepted (RFC 9474 §7: 2048 bits or more). */
export const MIN_MODULUS_BITS = 2048;

export type TempKeyAlgorithm = "Ed25519" | "P-256";

// Fixed SPKI DER prefixes: the whole SPKI is this prefix plus the raw public key.
const ED25519_SPKI_PREFIX = hex("302a300506032b6570032100"); // + 32 bytes
const P256_SPKI_PREFIX = hex("3059301306072a8648ce3d020106082a8648ce3d03010703420004"); // + 64 bytes

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}

const ascii = new TextEncoder();

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Which K_temp algorithm an SPKI holds, or undefined when it is neither Ed25519 nor P-256. */
export function tempKeyAlgorithmOf(spki: Uint8Array): TempKeyAlgorithm | undefined {
  if (spki.length === 44 && startsWith(spki, ED25519_SPKI_PREFIX)) return "Ed25519";
  if (spki.length === 91 && startsWith(spki, P256_SPKI_PREFIX)) return "P-256";
  return undefined;
}

// Ed25519 (RFC 8032 §5.1.3): y is the low 255 bits, little-endian; the top bit is the sign of x.
// p = 2^255 - 19. The small-order points (the torsion subgroup, order 8) have y in {1, p-1, 0, Y8A, Y8B};
// an encoding with one of these y is a small-order point, or with the sign bit on x = 0 (y = +-1) a
// non-canonical one: refused with either sign bit.
const ED25519_WEAK_Y = [
  "0100000000000000000000000000000000000000000000000000000000000000", // identity (0, 1)
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2 (0, -1)
  "0000000000000000000000000000000000000000000000000000000000000000", // order 4 (+-sqrt(-1), 0)
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
].map(hex);

/** y >= p in a 32-byte Ed25519 encoding (sign bit ignored): the non-canonical y = p + k, k < 19. */
function ed25519YAtLeastP(point: Uint8Array): boolean {
  if (((point[31] ?? 0) & 0x7f) !== 0x7f) return false;
  for (let i = 30; i >= 1; i--) if (point[i] !== 0xff) return false;
  return (point[0] ?? 0) >= 0xed;
}

function ed25519YIs(point: Uint8Array, y: Uint8Array): boolean {
  for (let i = 0; i < 31; i++) if (point[i] !== y[i]) return false;
  return ((point[31] ?? 0) & 0x7f) === y[31];
}

/**
 * Checks that a K_temp SPKI is a usable public key and returns its algorithm; throws 400
 * TOKEN_MALFORMED otherwise (docs/tokens.md "K_temp keys"). Refused: anything but the two SPKI
 * shapes; for Ed25519 the eight small-order points (identity included: under it one signature
 * verifies for every message) in every encoding, and every non-canonical encoding (y >= p, or the
 * sign bit set with x = 0); for P-256 coordinates >= p and points off the curve (P-256 has cofactor 1,
 * so on-curve points other than the identity, which has no uncompressed encoding, have prime order).
 *
 * Ed25519 is checked on the bytes alone (about a microsecond): a canonical encoding names a
 * small-order point exactly when its y is one of five values, so a blocklist plus the y < p check is
 * complete, and decoding the point (a field square root, ~0.3 ms in JS) is left to the signature check,
 * where an encoding that is no point fails as 401 TOKEN_INVALID. P-256 uses @noble/curves' point
 * decoding, which checks the coordinate range and the curve equation (~20 us).
 */
export function checkTempKey(spki: Uint8Array): TempKeyAlgorithm {
  const alg = tempKeyAlgorithmOf(spki);
  if (alg === "Ed25519") {
    const point = spki.subarray(ED25519_SPKI_PREFIX.length);
    if (!ed25519YAtLeastP(point) && !ED25519_WEAK_Y.some((y) => ed25519YIs(point, y))) return alg;
  } else if (alg === "P-256") {
    try {
      // fromBytes refuses coordinates >= p (Fp.fromBytes) and points off the curve (assertValidity)
      p256.Point.fromBytes(spki.subarray(P256_SPKI_PREFIX.length - 1));
      return alg;
    } catch {
      // non-canonical or off the curve: refused below
    }
  }
  throw new CpsError(
    "TOKEN_MALFORMED",
    "K_temp is not a valid public key (an identity, small-order, off-curve or non-canonical point)",
  );
}

/**
 * The message that is prepared and blinded (docs/tokens.md "Token message"):
 * `label || 0x00 || u8(len(keyId)) || keyId || u16be(len(spki)) || spki`. Refuses a K_temp that
 * `checkTempKey` refuses: the issuer cannot see K_temp, so the client library must not build such a token.
 */
export function tokenMessage(keyId: string, kTempSpki: Uint8Array): Uint8Array {
  if (!KEY_ID_PATTERN.test(keyId)) throw new CpsError("TOKEN_MALFORMED", "Bad issuer key id");
  checkTempKey(kTempSpki);
  const id = ascii.encode(keyId);
  return concatBytes(
    ascii.encode(TOKEN_MESSAGE_LABEL),
    Uint8Array.of(0, id.length),
    id,
    Uint8Array.of(kTempSpki.length >> 8, kTempSpki.length & 0xff),
    kTempSpki,
  );
}

/** What K_temp signs at store time: `label || 0x00 || u8(len(tn)) || tn || blob`. */
export function storeSignatureInput(tn: CanonicalTn, blob: Uint8Array): Uint8Array {
  const digits = ascii.encode(tn);
  return concatBytes(ascii.encode(STORE_SIGNATURE_LABEL), Uint8Array.of(0, digits.length), digits, blob);
}

/** A finalized storage token: everything the `CPS-Token` header carries. */
export interface StorageToken {
  keyId: string;
  /** The RFC 9474 prepare nonce (32 bytes). */
  nonce: Uint8Array;
  /** K_temp public key, SPKI DER. */
  kTempSpki: Uint8Array;
  /** The unblinded RSA-PSS signature by the issuer key over `nonce || tokenMessage`. */
  signature: Uint8Array;
}

/** `v1.<keyId>.<b64u nonce>.<b64u spki>.<b64u signature>` */
export function encodeStorageToken(token: StorageToken): string {
  return [
    TOKEN_VERSION,
    token.keyId,
    encodeBase64url(token.nonce),
    encodeBase64url(token.kTempSpki),
    encodeBase64url(token.signature),
  ].join(".");
}

function b64u(text: string): Uint8Array {
  if (text.length === 0 || /\s/.test(text)) throw new CpsError("TOKEN_MALFORMED", "Malformed token");
  try {
    return decodeBase64url(text);
  } catch {
    throw new CpsError("TOKEN_MALFORMED", "Malformed token");
  }
}

/** Parses a `CPS-Token` value; throws 400 TOKEN_MALFORMED on anything but the exact format. */
export function parseStorageToken(text: string): StorageToken {
  if (text.length > 2048) throw new CpsError("TOKEN_MALFORMED", "Malformed token");
  const parts = text.trim().split(".");
  const [version, keyId, nonce, spki, signature] = parts;
  if (parts.length !== 5 || version !== TOKEN_VERSION || !keyId || !KEY_ID_PATTERN.test(keyId)) {
    throw new CpsError("TOKEN_MALFORMED", "Malformed token");
  }
  const token = {
    keyId,
    nonce: b64u(nonce ?? ""),
    kTempSpki: b64u(spki ?? ""),
    signature: b64u(signature ?? ""),
  };
  if (token.nonce.length !== TOKEN_NONCE_LENGTH || !tempKeyAlgorithmOf(token.kTempSpki)) {
    throw new CpsError("TOKEN_MALFORMED", "Malformed token");
  }
  checkTempKey(token.kTempSpki);
  return token;
}

/** Parses a `CPS-Token-Signature` value (base64url of 64 bytes for both K_temp algorithms). */
export function parseStoreSignature(text: string): Uint8Array {
  const sig = b64u(text.trim());
  if (sig.length !== 64) throw new CpsError("TOKEN_MALFORMED", "Malformed token signature");
  return sig;
}

function tempAlgorithm(alg: TempKeyAlgorithm) {
  return alg === "Ed25519"
    ? { key: { name: "Ed25519" }, sign: { name: "Ed25519" } }
    : { key: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } };
}

/** A fresh K_temp (one per token). Ed25519 by default; P-256 where Ed25519 is unavailable. */
export async function generateTempKey(
  alg: TempKeyAlgorithm = "Ed25519",
): Promise<{ privateKey: CryptoKey; spki: Uint8Array }> {
  const pair = (await crypto.subtle.generateKey(tempAlgorithm(alg).key, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer);
  return { privateKey: pair.privateKey, spki };
}

/**
 * A token the issuer mints for itself, without blinding: the RSASSA-PSS signature over
 * (nonce || token message) that RSABSSA's finalize would yield (RFC 9474 §4.5), so the CPS cannot
 * tell it from a blind-issued one. For an issuer's own AS, tests and benchmarks; other callers get
 * theirs through `POST /tokens`, which is what keeps their stores unlinkable to them.
 */
export async function mintToken(
  issuerPrivateKey: CryptoKey,
  keyId: string,
  alg: TempKeyAlgorithm = "Ed25519",
): Promise<{ token: StorageToken; privateKey: CryptoKey }> {
  const kTemp = await generateTempKey(alg);
  const nonce = crypto.getRandomValues(new Uint8Array(TOKEN_NONCE_LENGTH));
  const prepared = concatBytes(nonce, tokenMessage(keyId, kTemp.spki));
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: "RSA-PSS", saltLength: 48 }, issuerPrivateKey, prepared),
  );
  return { token: { keyId, nonce, kTempSpki: kTemp.spki, signature }, privateKey: kTemp.privateKey };
}

/** K_temp's private key as PKCS#8 (a wallet that saves or hands over its tokens). */
export async function exportTempKey(privateKey: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array((await crypto.subtle.exportKey("pkcs8", privateKey)) as ArrayBuffer);
}

/** The inverse of {@link exportTempKey}; extractable, so it can be saved again. */
export function importTempKey(pkcs8: Uint8Array, alg: TempKeyAlgorithm): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", pkcs8, tempAlgorithm(alg).key, true, ["sign"]);
}

/** The K_temp signature a store carries in `CPS-Token-Signature`. */
export async function signStore(
  privateKey: CryptoKey,
  tn: CanonicalTn,
  blob: Uint8Array,
): Promise<Uint8Array> {
  const alg = privateKey.algorithm.name === "Ed25519" ? "Ed25519" : "P-256";
  const sig = await crypto.subtle.sign(tempAlgorithm(alg).sign, privateKey, storeSignatureInput(tn, blob));
  return new Uint8Array(sig);
}

/** True when `signature` is K_temp's signature over (tn, blob). */
export async function verifyStoreSignature(
  kTempSpki: Uint8Array,
  signature: Uint8Array,
  tn: CanonicalTn,
  blob: Uint8Array,
): Promise<boolean> {
  const alg = tempKeyAlgorithmOf(kTempSpki);
  if (!alg) return false;
  try {
    const { key, sign } = tempAlgorithm(alg);
    const pub = await crypto.subtle.importKey("spki", kTempSpki, key, false, ["verify"]);
    return await crypto.subtle.verify(sign, pub, signature, storeSignatureInput(tn, blob));
  } catch {
    // An SPKI with the right prefix but a point off the curve fails to import: not a valid token.
    return false;
  }
}

/** RSA-PSS (SHA-384, 48-byte salt) public key of an issuer, from SPKI DER. */
export function importIssuerPublicKey(spki: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("spki", spki, { name: "RSA-PSS", hash: "SHA-384" }, true, ["verify"]);
}

/** True when the token's signature is the issuer key's RSA-PSS signature over `nonce || message`. */
export async function verifyTokenSignature(
  issuerPublicKey: CryptoKey,
  token: StorageToken,
): Promise<boolean> {
  const prepared = concatBytes(token.nonce, tokenMessage(token.keyId, token.kTempSpki));
  try {
    return await suite().verify(issuerPublicKey, token.signature, prepared);
  } catch {
    return false;
  }
}

// Client side: Node has no RSA-RAW, so blinding and finalizing use the library's default path.
function suite() {
  return RSABSSA.SHA384.PSS.Randomized({ supportsRSARAW: false });
}

/** A token request in flight: send `blindedMessage`, keep the rest private until finalize. */
export interface PendingToken {
  keyId: string;
  kTempSpki: Uint8Array;
  kTempPrivateKey: CryptoKey;
  nonce: Uint8Array;
  prepared: Uint8Array;
  inv: Uint8Array;
  blindedMessage: Uint8Array;
}

/** Makes K_temp and blinds its token message for issuer key `keyId` (client side). */
export async function blindTokenRequest(
  issuerPublicKey: CryptoKey,
  keyId: string,
  alg: TempKeyAlgorithm = "Ed25519",
): Promise<PendingToken> {
  const kTemp = await generateTempKey(alg);
  const prepared = suite().prepare(tokenMessage(keyId, kTemp.spki));
  const { blindedMsg, inv } = await suite().blind(issuerPublicKey, prepared);
  return {
    keyId,
    kTempSpki: kTemp.spki,
    kTempPrivateKey: kTemp.privateKey,
    nonce: prepared.slice(0, TOKEN_NONCE_LENGTH),
    prepared,
    inv,
    blindedMessage: blindedMsg,
  };
}

/** Unblinds the issuer's answer into a token; throws TOKEN_INVALID when the signature does not verify. */
export async function finalizeToken(
  issuerPublicKey: CryptoKey,
  pending: PendingToken,
  blindSignature: Uint8Array,
): Promise<StorageToken> {
  let signature: Uint8Array;
  try {
    signature = await suite().finalize(issuerPublicKey, pending.prepared, blindSignature, pending.inv);
  } catch (cause) {
    throw new CpsError("TOKEN_INVALID", "The issuer's blind signature does not verify", { cause });
  }
  return { keyId: pending.keyId, nonce: pending.nonce, kTempSpki: pending.kTempSpki, signature };
}

/** Stable id of a token for counting: SHA-256 of K_temp's SPKI (RFC 8816 §7.5 counts K_temp). */
export async function tokenIdOf(kTempSpki: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", kTempSpki));
}

/**
 * The retry receipt of a store (docs/tokens.md "Retried stores"): SHA-256 over
 * `label || 0x00 || tokenId (32) || u8(len(tn)) || tn || signature (64) || blob`, so two stores share
 * it only when they are the same request (same token, number, blob and K_temp signature). The first
 * 16 bytes are the TokenLedger's receipt, the last 16 the PassportQueue's retry key: two halves of one
 * hash, so the ledger's row and the queue's row hold no common value. Neither can be recomputed from
 * stored state, since the signature is dropped after the check.
 */
export async function storeReceipt(
  tokenId: Uint8Array,
  tn: CanonicalTn,
  blob: Uint8Array,
  signature: Uint8Array,
): Promise<{ ledger: Uint8Array; queue: Uint8Array }> {
  const digits = ascii.encode(tn);
  const input = concatBytes(
    ascii.encode(STORE_RECEIPT_LABEL),
    Uint8Array.of(0),
    tokenId,
    Uint8Array.of(digits.length),
    digits,
    signature,
    blob,
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  return { ledger: digest.subarray(0, 16), queue: digest.subarray(16, 32) };
}
