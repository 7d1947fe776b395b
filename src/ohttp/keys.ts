/**
 * OHTTP key configurations (RFC 9458 §3) and the gateway's keys.
 *
 * A key configuration names one HPKE public key by a one-byte id and lists the KDF/AEAD pairs the gateway
 * accepts with it (§3.1); `application/ohttp-keys` is a list of them, each behind a two-byte length
 * (§3.2). The gateway's private keys come from the OHTTP_KEYS secret; each may carry a validity window so
 * a new key is published before it is used and an old one kept until cached configurations expire.
 */
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import { concatBytes, Reader, uint16 } from "./bytes.js";
import { OhttpError } from "./errors.js";

/** HPKE identifiers (RFC 9180 §7): the one suite this project speaks, plus ChaCha20 for parsing. */
export const KEM_X25519_HKDF_SHA256 = 0x0020;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_CHACHA20_POLY1305 = 0x0003;

/** Media types of RFC 9458 §9. */
export const MEDIA_TYPE_KEYS = "application/ohttp-keys";
export const MEDIA_TYPE_REQUEST = "message/ohttp-req";
export const MEDIA_TYPE_RESPONSE = "message/ohttp-res";

/** Npk of the KEMs we can parse a configuration for (RFC 9180 §7.1). */
const PUBLIC_KEY_LENGTH: Readonly<Record<number, number>> = { [KEM_X25519_HKDF_SHA256]: 32 };
const X25519_KEY_LENGTH = 32;

export interface SymmetricAlgorithm {
  kdfId: number;
  aeadId: number;
}

export interface KeyConfig {
  keyId: number;
  kemId: number;
  publicKey: Uint8Array;
  symmetric: SymmetricAlgorithm[];
}

/** RFC 9458 §3.1: key id, KEM id, public key, then the 4-byte KDF/AEAD pairs behind a 2-byte length. */
export function encodeKeyConfig(config: KeyConfig): Uint8Array {
  const npk = PUBLIC_KEY_LENGTH[config.kemId];
  if (npk === undefined) throw new OhttpError("UNSUPPORTED_SUITE", "Unsupported KEM");
  if (
    !Number.isInteger(config.keyId) ||
    config.keyId < 0 ||
    config.keyId > 255 ||
    config.publicKey.length !== npk ||
    config.symmetric.length === 0 ||
    config.symmetric.length > 0x3fff
  ) {
    throw new OhttpError("MALFORMED", "Not a valid key configuration");
  }
  const symmetric = config.symmetric.map((s) => concatBytes(uint16(s.kdfId), uint16(s.aeadId)));
  return concatBytes(
    Uint8Array.of(config.keyId),
    uint16(config.kemId),
    config.publicKey,
    uint16(symmetric.length * 4),
    ...symmetric,
  );
}

function readKeyConfig(r: Reader): KeyConfig {
  const keyId = r.u8();
  const kemId = r.u16();
  const npk = PUBLIC_KEY_LENGTH[kemId];
  if (npk === undefined) throw new OhttpError("UNSUPPORTED_SUITE", "Unsupported KEM in key configuration");
  const publicKey = r.take(npk).slice();
  const length = r.u16();
  // §3.1: at least one pair, and whole 4-byte pairs only.
  if (length === 0 || length % 4 !== 0) throw new OhttpError("MALFORMED", "Bad symmetric algorithm list");
  const list = new Reader(r.take(length), "key configuration");
  const symmetric: SymmetricAlgorithm[] = [];
  while (list.remaining > 0) symmetric.push({ kdfId: list.u16(), aeadId: list.u16() });
  return { keyId, kemId, publicKey, symmetric };
}

/** Exactly one key configuration (§3.1), nothing after it. */
export function parseKeyConfig(bytes: Uint8Array): KeyConfig {
  const r = new Reader(bytes, "key configuration");
  const config = readKeyConfig(r);
  if (r.remaining !== 0) throw new OhttpError("MALFORMED", "Bytes after the key configuration");
  return config;
}

/** `application/ohttp-keys` (§3.2): every configuration behind its 2-byte length. */
export function encodeKeyConfigs(configs: readonly KeyConfig[]): Uint8Array {
  return concatBytes(
    ...configs.map((c) => {
      const one = encodeKeyConfig(c);
      return concatBytes(uint16(one.length), one);
    }),
  );
}

/**
 * Parses `application/ohttp-keys` (§3.2). A configuration with a KEM we do not know is skipped (its
 * length prefix lets us step over it; §3.2 lets a client ignore what it does not support); any other
 * defect, or a list with nothing usable left, is MALFORMED / UNSUPPORTED_SUITE.
 */
export function parseKeyConfigs(bytes: Uint8Array): KeyConfig[] {
  const r = new Reader(bytes, "key configuration list");
  const configs: KeyConfig[] = [];
  let skipped = 0;
  while (r.remaining > 0) {
    const one = r.take(r.u16());
    try {
      configs.push(parseKeyConfig(one));
    } catch (err) {
      if (!(err instanceof OhttpError) || err.code !== "UNSUPPORTED_SUITE") throw err;
      skipped++;
    }
  }
  if (configs.length === 0) {
    throw skipped > 0
      ? new OhttpError("UNSUPPORTED_SUITE", "No key configuration with a supported KEM")
      : new OhttpError("MALFORMED", "The key configuration list is empty");
  }
  return configs;
}

/** Whether a configuration offers the one suite we speak (X25519, HKDF-SHA256, AES-128-GCM). */
export function supportsOurSuite(config: KeyConfig): boolean {
  return (
    config.kemId === KEM_X25519_HKDF_SHA256 &&
    config.symmetric.some((s) => s.kdfId === KDF_HKDF_SHA256 && s.aeadId === AEAD_AES_128_GCM)
  );
}

/** Client side: the first configuration offering our suite; UNSUPPORTED_SUITE when none does. */
export function selectKeyConfig(configs: readonly KeyConfig[]): KeyConfig {
  const config = configs.find(supportsOurSuite);
  if (config === undefined) throw new OhttpError("UNSUPPORTED_SUITE", "No key configuration we can use");
  return config;
}

/** A gateway key from OHTTP_KEYS, with the configuration it is published under. */
export interface GatewayKey {
  keyId: number;
  privateKey: CryptoKey;
  publicKey: Uint8Array;
  config: KeyConfig;
  /** Milliseconds since the epoch, inclusive. */
  notBefore?: number;
  /** Milliseconds since the epoch, exclusive. */
  notAfter?: number;
}

/** PKCS #8 prefix of a raw X25519 private key (RFC 8410 §7). */
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * An X25519 private key (for @hpke/core's recipient context) and its raw public key, from 32 secret
 * bytes, through the platform's WebCrypto: workerd and Node 20 both implement X25519 there. The public
 * key comes out of the JWK export (`x`), so no curve arithmetic of our own.
 */
export async function x25519FromPrivate(
  raw: Uint8Array,
): Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }> {
  if (raw.length !== X25519_KEY_LENGTH)
    throw new OhttpError("KEYS_INVALID", "An X25519 private key has 32 bytes");
  const pkcs8 = new Uint8Array(X25519_PKCS8_PREFIX.length + X25519_KEY_LENGTH);
  pkcs8.set(X25519_PKCS8_PREFIX);
  pkcs8.set(raw, X25519_PKCS8_PREFIX.length);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
  const { x } = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  if (typeof x !== "string") throw new OhttpError("KEYS_INVALID", "X25519 key export failed");
  return { privateKey, publicKey: decodeBase64url(x) };
}

function keysInvalid(message: string): OhttpError {
  return new OhttpError("KEYS_INVALID", `OHTTP_KEYS: ${message}`);
}

function optionalTime(entry: Record<string, unknown>, name: "notBefore" | "notAfter"): number | undefined {
  const value = entry[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw keysInvalid(`${name} must be milliseconds since the epoch`);
  }
  return value;
}

/**
 * Reads the OHTTP_KEYS secret: a JSON array of `{ id, privateKey, notBefore?, notAfter? }`, `id` 0..255
 * and unique, `privateKey` the base64url of 32 X25519 private-key bytes, the window in milliseconds.
 * Any defect is KEYS_INVALID; messages never quote key material.
 */
export async function parseGatewayKeys(secret: string): Promise<GatewayKey[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(secret);
  } catch {
    throw keysInvalid("not JSON");
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > 256) {
    throw keysInvalid("must be a non-empty JSON array of at most 256 keys");
  }
  const seen = new Set<number>();
  const keys: GatewayKey[] = [];
  for (const item of parsed as unknown[]) {
    if (typeof item !== "object" || item === null || Array.isArray(item))
      throw keysInvalid("entries are objects");
    const entry = item as Record<string, unknown>;
    const { id, privateKey } = entry;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 255) {
      throw keysInvalid("id must be an integer 0..255");
    }
    // RFC 9458 §3: the key id selects the key, so two keys under one id would be ambiguous.
    if (seen.has(id)) throw keysInvalid(`id ${id} appears twice`);
    seen.add(id);
    if (typeof privateKey !== "string") throw keysInvalid(`key ${id}: privateKey must be base64url text`);
    let raw: Uint8Array;
    try {
      raw = decodeBase64url(privateKey);
    } catch {
      throw keysInvalid(`key ${id}: privateKey is not base64url`);
    }
    if (raw.length !== X25519_KEY_LENGTH) throw keysInvalid(`key ${id}: privateKey must be 32 bytes`);
    const notBefore = optionalTime(entry, "notBefore");
    const notAfter = optionalTime(entry, "notAfter");
    if (notBefore !== undefined && notAfter !== undefined && notBefore >= notAfter) {
      throw keysInvalid(`key ${id}: notBefore must be before notAfter`);
    }
    let pair: { privateKey: CryptoKey; publicKey: Uint8Array };
    try {
      pair = await x25519FromPrivate(raw);
    } catch {
      throw keysInvalid(`key ${id}: not a usable X25519 private key`);
    }
    keys.push({
      keyId: id,
      privateKey: pair.privateKey,
      publicKey: pair.publicKey,
      config: {
        keyId: id,
        kemId: KEM_X25519_HKDF_SHA256,
        publicKey: pair.publicKey,
        symmetric: [{ kdfId: KDF_HKDF_SHA256, aeadId: AEAD_AES_128_GCM }],
      },
      ...(notBefore === undefined ? {} : { notBefore }),
      ...(notAfter === undefined ? {} : { notAfter }),
    });
  }
  return keys;
}

/** The keys whose window contains `now`: the ones the configuration lists and that decapsulate. */
export function liveKeys(keys: readonly GatewayKey[], now: number): GatewayKey[] {
  return keys.filter(
    (k) =>
      (k.notBefore === undefined || now >= k.notBefore) && (k.notAfter === undefined || now < k.notAfter),
  );
}

export interface GatewayKeyEntry {
  id: number;
  privateKey: string;
  notBefore?: number;
  notAfter?: number;
}

/**
 * A fresh OHTTP_KEYS entry (dev and tests). Any 32 random bytes are a valid X25519 private key
 * (RFC 7748 §5 clamps them), so no key generation API is needed.
 */
export function generateGatewayKeyEntry(
  id: number,
  window: { notBefore?: number; notAfter?: number } = {},
): GatewayKeyEntry {
  return { id, privateKey: encodeBase64url(crypto.getRandomValues(new Uint8Array(32))), ...window };
}
