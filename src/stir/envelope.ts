/**
 * The sealed PASSporT ("envelope"): a full-form PASSporT encrypted to one callee key with HPKE
 * (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, through @hpke/core.
 *
 * RFC 8816 §6.2: the CPS must return dummies nobody can tell from real blobs, so every blob has one
 * length (fixed-size padded plaintext) and carries no key id; RFC 8816 §7.4: the HPKE `info` binds the
 * canonical called number, so a blob replayed under another number does not open.
 * The exact layout is specified in docs/wire-format.md.
 */
import {
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
  type KemInterface,
  type RecipientContextParams,
  type SenderContextParams,
} from "@hpke/core";
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "./base64url.js";
import type { CanonicalTn } from "./tn.js";

/** Version label bound into every envelope's HPKE `info`. */
export const ENVELOPE_LABEL = "stir-oob envelope v1";
/** Size of the padded plaintext: a 2-byte length, the PASSporT, zero padding. */
export const PADDED_PLAINTEXT_LENGTH = 1024;
/** Longest full-form PASSporT that fits (bytes of its UTF-8 form). */
export const MAX_PASSPORT_LENGTH = PADDED_PLAINTEXT_LENGTH - 2;
const ENC_LENGTH = 32; // Nenc for DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1
const TAG_LENGTH = 16; // Nt for AES-128-GCM, RFC 9180 §7.3
/** Length in bytes of every sealed blob, real or dummy: enc || ciphertext. */
export const ENVELOPE_LENGTH = ENC_LENGTH + PADDED_PLAINTEXT_LENGTH + TAG_LENGTH;
/** Length of a blob's base64url text (no padding, no line breaks). */
export const ENVELOPE_TEXT_LENGTH = Math.ceil((ENVELOPE_LENGTH * 4) / 3);

/** The HPKE suite of envelope v1 (exported for the RFC 9180 known-answer tests). */
export const envelopeSuite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** HPKE `info` for a called number: label, one zero byte, the canonical digits (all ASCII). */
export function envelopeInfo(tn: CanonicalTn): Uint8Array {
  return utf8.encode(`${ENVELOPE_LABEL}\u0000${tn}`);
}

/** A callee's encryption key: raw 32-byte X25519 public key, or one already imported. */
export type RecipientPublicKey = Uint8Array | CryptoKey;

async function toPublicCryptoKey(key: RecipientPublicKey): Promise<CryptoKey> {
  if (!(key instanceof Uint8Array)) return key;
  if (key.length !== 32) throw new CpsError("INVALID_KEY", "An X25519 public key has 32 bytes");
  try {
    return await envelopeSuite.kem.deserializePublicKey(key);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The X25519 public key is not valid", { cause });
  }
}

function pad(passport: Uint8Array): Uint8Array {
  if (passport.length > MAX_PASSPORT_LENGTH) {
    throw new CpsError(
      "PASSPORT_TOO_LARGE",
      `A PASSporT longer than ${MAX_PASSPORT_LENGTH} bytes cannot be sealed`,
    );
  }
  const out = new Uint8Array(PADDED_PLAINTEXT_LENGTH);
  new DataView(out.buffer).setUint16(0, passport.length);
  out.set(passport, 2);
  return out;
}

function unpad(padded: Uint8Array): Uint8Array {
  if (padded.length !== PADDED_PLAINTEXT_LENGTH) throw openFailed();
  const length = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint16(0);
  if (length > MAX_PASSPORT_LENGTH) throw openFailed();
  // Padding must be zero: a sender cannot smuggle a second message past the length field.
  for (let i = 2 + length; i < padded.length; i++) if (padded[i] !== 0) throw openFailed();
  return padded.subarray(2, 2 + length);
}

function openFailed(cause?: unknown): CpsError {
  return new CpsError("ENVELOPE_OPEN_FAILED", "The blob does not open with this key for this number", {
    cause,
  });
}

/** Seals one padded plaintext; `ekm` fixes the HPKE ephemeral key pair (decoys), else it is fresh. */
async function sealPadded(
  recipient: CryptoKey,
  tn: CanonicalTn,
  padded: Uint8Array,
  ekm?: CryptoKeyPair,
): Promise<Uint8Array> {
  const { enc, ct } = await envelopeSuite.seal(
    { recipientPublicKey: recipient, info: envelopeInfo(tn), ekm },
    padded,
  );
  const blob = new Uint8Array(ENVELOPE_LENGTH);
  blob.set(new Uint8Array(enc), 0);
  blob.set(new Uint8Array(ct), ENC_LENGTH);
  return blob;
}

/**
 * Seals a full-form PASSporT (RFC 8816 §8.1 step 4) to one callee key for one called number.
 * @example
 * const blob = await sealPassport(bobPublicKey, canonicalTn("+2 222 555 2222"), jws);
 * await fetch(`${cps}/cps/22225552222/ppts`, { method: "POST", body: encodeEnvelope(blob), ... });
 */
export async function sealPassport(
  recipient: RecipientPublicKey,
  tn: CanonicalTn,
  passport: string,
): Promise<Uint8Array> {
  const key = await toPublicCryptoKey(recipient);
  const padded = pad(utf8.encode(passport));
  try {
    return await sealPadded(key, tn, padded);
  } catch (cause) {
    // A low-order point (e.g. 32 zero bytes) imports fine but its X25519 output is all zero, which
    // RFC 9180 §7.1.4 makes an encap failure: that is a bad key, not a server fault.
    throw new CpsError("INVALID_KEY", "The X25519 public key is not valid", { cause });
  }
}

/**
 * Opens a sealed blob with a callee's private key (RFC 8816 §8.2 step 1). Throws
 * `ENVELOPE_OPEN_FAILED` for a dummy, a blob for another key or number, or a tampered blob.
 * @example
 * const jws = await openPassport(bobKeyPair, canonicalTn("22225552222"), blob);
 */
export async function openPassport(
  recipientKey: CryptoKeyPair | CryptoKey,
  tn: CanonicalTn,
  blob: Uint8Array,
): Promise<string> {
  if (blob.length !== ENVELOPE_LENGTH) throw openFailed();
  let padded: ArrayBuffer;
  try {
    padded = await envelopeSuite.open(
      { recipientKey, enc: blob.subarray(0, ENC_LENGTH), info: envelopeInfo(tn) },
      blob.subarray(ENC_LENGTH),
    );
  } catch (cause) {
    throw openFailed(cause);
  }
  try {
    return utf8Strict.decode(unpad(new Uint8Array(padded)));
  } catch (cause) {
    throw cause instanceof CpsError ? cause : openFailed(cause);
  }
}

/** Bytes of seed material a decoy is sealed from: recipient IKM, ephemeral IKM, padded plaintext. */
const DECOY_MATERIAL_LENGTH = 32 + 32 + PADDED_PLAINTEXT_LENGTH;

/**
 * A decoy blob (RFC 8816 §6.2 dummy): pseudo-random padded plaintext sealed by the same code as a
 * real blob, to a throwaway X25519 key nobody holds, so it has the real blobs' length and structure
 * (an X25519 `enc` has its top bit clear, which plain random bytes would not) and never opens.
 *
 * Deterministic in `seed` (32 secret bytes): HKDF expands it into the throwaway recipient's private
 * key, the HPKE ephemeral private key (`ekm`) and the plaintext, so every isolate
 * that knows the seed seals the identical bytes. That is what lets a decoy persist for its lifetime
 * (GET by id, two polls) without being stored (src/dummies/decoys.ts). Distinct seeds give
 * independent, unlinkable decoys; the seed must stay secret, since it determines the blob.
 */
export async function makeDecoy(
  tn: CanonicalTn,
  seed: Uint8Array,
  recipientPublicKey?: CryptoKey,
): Promise<Uint8Array> {
  const hkdf = await crypto.subtle.importKey("raw", seed, "HKDF", false, ["deriveBits"]);
  const material = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: new Uint8Array(0),
        info: utf8.encode(`${ENVELOPE_LABEL} decoy`),
      },
      hkdf,
      DECOY_MATERIAL_LENGTH * 8,
    ),
  );
  const [recipient, ephemeral] = await Promise.all([
    recipientPublicKey ?? x25519KeyPair(material.slice(0, 32)).then((pair) => pair.publicKey),
    x25519KeyPair(material.slice(32, 64)),
  ]);
  return sealPadded(recipient, tn, material.slice(64), ephemeral);
}

/**
 * The public half of an X25519 key pair derived from 32 secret bytes: a decoy recipient nobody holds.
 * A CPS seals all its decoys to one such key (derived from DECOY_SECRET), as an AS seals to a callee's
 * one key: the ephemeral key and plaintext differ per decoy, and deriving the recipient once instead
 * of per decoy saves a third of a decoy's key work.
 */
export async function decoyRecipientKey(seed: Uint8Array): Promise<CryptoKey> {
  return (await x25519KeyPair(seed.subarray(0, 32))).publicKey;
}

/** PKCS #8 prefix of a raw X25519 private key (RFC 8410 §7). */
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * An X25519 key pair from 32 private-key bytes, with the platform's WebCrypto (RFC 7748 clamps them,
 * exactly as for a generated key). Native keys: @hpke's own DeriveKeyPair does the curve in JavaScript,
 * three times slower per decoy.
 */
async function x25519KeyPair(raw: Uint8Array): Promise<CryptoKeyPair> {
  const pkcs8 = new Uint8Array(48);
  pkcs8.set(X25519_PKCS8_PREFIX);
  pkcs8.set(raw, 16);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
  const { x } = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "X25519", x },
    { name: "X25519" },
    true,
    [],
  );
  return { privateKey, publicKey };
}

/**
 * A one-off dummy from a fresh random seed: the same sealing as {@link makeDecoy}. For authentication
 * services that store their own cover blobs (RFC 8816 §7.4) and for the statistics benchmarks.
 */
export async function makeDummy(tn: CanonicalTn): Promise<Uint8Array> {
  return makeDecoy(tn, crypto.getRandomValues(new Uint8Array(32)));
}

/** Base64url text of a blob, as it travels in `application/passport` bodies (RFC 8816 §9). */
export function encodeEnvelope(blob: Uint8Array): string {
  return encodeBase64url(blob);
}

/**
 * Decodes an `application/passport` body and checks it is exactly one envelope long; the CPS
 * refuses anything else with 400 `BLOB_ENCODING` or `BLOB_SIZE` before it reaches storage.
 */
export function decodeEnvelope(text: string): Uint8Array {
  const blob = decodeBase64url(text);
  if (blob.length !== ENVELOPE_LENGTH) {
    throw new CpsError("BLOB_SIZE", `A sealed PASSporT is exactly ${ENVELOPE_LENGTH} bytes`);
  }
  return blob;
}

/** A callee key pair; `publicKey` raw bytes are what the key directory publishes. */
export interface RecipientKeyPair {
  keyPair: CryptoKeyPair;
  publicKey: Uint8Array;
}

/** Generates a fresh X25519 key pair for a callee (extractable, so the CLI can save it). */
export async function generateRecipientKeyPair(): Promise<RecipientKeyPair> {
  const keyPair = await envelopeSuite.kem.generateKeyPair();
  const publicKey = new Uint8Array(await envelopeSuite.kem.serializePublicKey(keyPair.publicKey));
  return { keyPair, publicKey };
}

/** Imports a callee private key from its raw 32 bytes (RFC 7748 scalar). */
export async function importRecipientPrivateKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length !== 32) throw new CpsError("INVALID_KEY", "An X25519 private key has 32 bytes");
  try {
    return await envelopeSuite.kem.deserializePrivateKey(raw);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The X25519 private key is not valid", { cause });
  }
}

/** Raw 32 bytes of a callee private key, for storage by the CLI. */
export async function exportRecipientPrivateKey(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await envelopeSuite.kem.serializePrivateKey(key));
}

// ---- Feedback tags (RFC 8816 §7.5 feedback; docs/tokens.md "Feedback") ----

/** Label that opens the HPKE exporter context of a blob's feedback tag (RFC 9180 §5.3). */
export const FEEDBACK_TAG_LABEL = "stir-oob feedback tag v1";
/** Bytes of a feedback tag. */
export const FEEDBACK_TAG_LENGTH = 32;
/** Bytes of a blob's KEM shared secret (Nsecret of DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1). */
export const SHARED_SECRET_LENGTH = 32;

/**
 * A KEM that "decapsulates" to a shared secret it was given: the one piece that lets @hpke/core's own
 * key schedule run from a reported shared secret instead of a private key (the CPS checking a
 * feedback report). Everything else is the envelope suite's KEM. Tested against RFC 9180 A.1.1.
 */
class GivenSecretKem implements KemInterface {
  readonly #kem = envelopeSuite.kem;
  readonly #secret: Uint8Array;
  readonly id = this.#kem.id;
  readonly secretSize = this.#kem.secretSize;
  readonly encSize = this.#kem.encSize;
  readonly publicKeySize = this.#kem.publicKeySize;
  readonly privateKeySize = this.#kem.privateKeySize;

  constructor(secret: Uint8Array) {
    this.#secret = secret;
  }
  serializePublicKey(key: CryptoKey) {
    return this.#kem.serializePublicKey(key);
  }
  deserializePublicKey(key: ArrayBufferLike | ArrayBufferView) {
    return this.#kem.deserializePublicKey(key);
  }
  serializePrivateKey(key: CryptoKey) {
    return this.#kem.serializePrivateKey(key);
  }
  deserializePrivateKey(key: ArrayBufferLike | ArrayBufferView) {
    return this.#kem.deserializePrivateKey(key);
  }
  importKey(format: "raw" | "jwk", key: ArrayBuffer | JsonWebKey, isPublic?: boolean) {
    return this.#kem.importKey(format, key, isPublic);
  }
  generateKeyPair() {
    return this.#kem.generateKeyPair();
  }
  deriveKeyPair(ikm: ArrayBufferLike | ArrayBufferView) {
    return this.#kem.deriveKeyPair(ikm);
  }
  encap(params: SenderContextParams) {
    return this.#kem.encap(params);
  }
  /**
   * The given secret, whatever `enc` is: AEAD proves the secret opens the ciphertext, not that `enc`
   * belongs to it, which is why the feedback tag hashes the whole blob (`feedbackTagOf`).
   */
  async decap(_params: RecipientContextParams): Promise<ArrayBuffer> {
    return this.#secret.slice().buffer as ArrayBuffer;
  }
}

/** The envelope suite with its KEM replaced by one that yields `secret` (RFC 9180 base mode). */
export function suiteForSharedSecret(secret: Uint8Array): CipherSuite {
  if (secret.length !== SHARED_SECRET_LENGTH) {
    throw new CpsError("INVALID_KEY", `A shared secret has ${SHARED_SECRET_LENGTH} bytes`);
  }
  return new CipherSuite({ kem: new GivenSecretKem(secret), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
}

/**
 * A placeholder recipient key for `suiteForSharedSecret` contexts: @hpke/core hands it to the KEM's
 * decap, which ignores it. Made once per isolate.
 */
let placeholderKey: Promise<CryptoKeyPair> | undefined;

/**
 * The feedback tag of `blob` from its HPKE context: `Export(ctx, label || SHA-256(enc || ct), 32)`.
 * The digest is there because a shared secret alone fixes the key schedule (base mode: the secret and
 * info, not enc): a callee holding a genuine blob's secret can seal anything under it with another enc,
 * and without the digest that blob would export the genuine blob's tag and a report of it would revoke
 * the honest token. With it, only the very blob the sender stored has the stored tag.
 */
async function feedbackTagOf(
  ctx: { export(context: Uint8Array, length: number): Promise<ArrayBuffer> },
  blob: Uint8Array,
): Promise<Uint8Array> {
  const label = utf8.encode(FEEDBACK_TAG_LABEL);
  const context = new Uint8Array(label.length + 32);
  context.set(label);
  context.set(new Uint8Array(await crypto.subtle.digest("SHA-256", blob)), label.length);
  return new Uint8Array(await ctx.export(context, FEEDBACK_TAG_LENGTH));
}

/** A sealed blob and its feedback tag (HPKE Export of the sender context, 32 bytes). */
export interface TaggedBlob {
  readonly blob: Uint8Array;
  readonly tag: Uint8Array;
}

/**
 * `sealPassport`, also returning the blob's feedback tag
 * `Export(ctx, "stir-oob feedback tag v1" || SHA-256(blob), 32)` (RFC 9180 §5.3), taken after sealing.
 * The blob is byte for byte an envelope v1 (one context seals once, sequence 0, as the single-shot
 * seal does). Only the sender and the recipient can derive the tag; the AS sends it
 * with the store (`CPS-Feedback-Tag`) so a VS can later report the blob (docs/tokens.md "Feedback").
 */
export async function sealPassportWithTag(
  recipient: RecipientPublicKey,
  tn: CanonicalTn,
  passport: string,
): Promise<TaggedBlob> {
  const key = await toPublicCryptoKey(recipient);
  const padded = pad(utf8.encode(passport));
  try {
    const ctx = await envelopeSuite.createSenderContext({ recipientPublicKey: key, info: envelopeInfo(tn) });
    const ct = new Uint8Array(await ctx.seal(padded));
    const blob = new Uint8Array(ENVELOPE_LENGTH);
    blob.set(new Uint8Array(ctx.enc), 0);
    blob.set(ct, ENC_LENGTH);
    return { blob, tag: await feedbackTagOf(ctx, blob) };
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The X25519 public key is not valid", { cause });
  }
}

/** What opening a blob from its shared secret gives: the PASSporT and the blob's feedback tag. */
export interface OpenedWithSecret {
  readonly passport: string;
  readonly tag: Uint8Array;
}

/**
 * Opens a blob from its KEM shared secret alone, through @hpke/core's key schedule (no private key):
 * what the CPS does with a feedback report. Throws `ENVELOPE_OPEN_FAILED` when the blob does not open
 * with this secret for this number (AEAD: the reporter did not know the blob's secret). The tag binds
 * the whole blob (`feedbackTagOf`): a blob someone else sealed under the same secret has another tag.
 */
export async function openWithSharedSecret(
  secret: Uint8Array,
  tn: CanonicalTn,
  blob: Uint8Array,
): Promise<OpenedWithSecret> {
  if (blob.length !== ENVELOPE_LENGTH) throw openFailed();
  const suite = suiteForSharedSecret(secret);
  placeholderKey ??= envelopeSuite.kem.generateKeyPair();
  let padded: ArrayBuffer;
  let tag: Uint8Array;
  try {
    const ctx = await suite.createRecipientContext({
      recipientKey: await placeholderKey,
      enc: blob.subarray(0, ENC_LENGTH),
      info: envelopeInfo(tn),
    });
    padded = await ctx.open(blob.subarray(ENC_LENGTH));
    tag = await feedbackTagOf(ctx, blob);
  } catch (cause) {
    throw openFailed(cause);
  }
  try {
    return { passport: utf8Strict.decode(unpad(new Uint8Array(padded))), tag };
  } catch (cause) {
    throw cause instanceof CpsError ? cause : openFailed(cause);
  }
}

/** What a callee gets from opening a blob for a possible report: the PASSporT, tag and shared secret. */
export interface OpenedForReport extends OpenedWithSecret {
  /** The blob's KEM shared secret (32 bytes): what a feedback report discloses about this one blob. */
  readonly secret: Uint8Array;
}

/**
 * Opens a blob with a callee's private key like `openPassport`, keeping the KEM shared secret
 * (@hpke/core's `kem.decap`) so the callee can report the blob (`POST /feedback`). The secret opens
 * this blob only: it says nothing about the callee's key or any other blob.
 */
export async function openPassportForReport(
  recipientKey: CryptoKeyPair | CryptoKey,
  tn: CanonicalTn,
  blob: Uint8Array,
): Promise<OpenedForReport> {
  if (blob.length !== ENVELOPE_LENGTH) throw openFailed();
  let secret: Uint8Array;
  try {
    secret = new Uint8Array(
      await envelopeSuite.kem.decap({ recipientKey, enc: blob.subarray(0, ENC_LENGTH) }),
    );
  } catch (cause) {
    throw openFailed(cause);
  }
  return { ...(await openWithSharedSecret(secret, tn, blob)), secret };
}
