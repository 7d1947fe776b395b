/**
 * Encapsulated requests and responses of Oblivious HTTP (RFC 9458 §4), with HPKE (RFC 9180) base mode
 * through @hpke/core and the response key schedule through WebCrypto (HMAC for HKDF, AES-GCM).
 *
 * Request (§4.3): header = key_id(1) | kem_id(2) | kdf_id(2) | aead_id(2); the HPKE `info` is the
 * label "message/bhttp request", one zero byte and the header; the message is header | enc | ciphertext.
 * Response (§4.4): a secret exported from the request's HPKE context under "message/bhttp response",
 * max(Nn, Nk) bytes; a fresh response_nonce of the same length; HKDF-Extract(salt = enc | response_nonce,
 * secret), then Expand to the AEAD key ("key", Nk) and nonce ("nonce", Nn); the message is
 * response_nonce | AEAD ciphertext. Only DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM is
 * implemented (COMMON decision); anything else is UNSUPPORTED_SUITE.
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { concatBytes, Reader, uint16 } from "./bytes.js";
import { OhttpError } from "./errors.js";
import {
  AEAD_AES_128_GCM,
  type GatewayKey,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  type KeyConfig,
  supportsOurSuite,
  x25519FromPrivate,
} from "./keys.js";
import { MAX_BHTTP_REQUEST_LENGTH, MAX_BHTTP_RESPONSE_LENGTH } from "./messages.js";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

const HEADER_LENGTH = 7; // key_id, kem_id, kdf_id, aead_id (§4.1)
const NENC = 32; // DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1
const NK = 16; // AES-128-GCM key, RFC 9180 §7.3
const NN = 12; // AES-128-GCM nonce
const NT = 16; // AES-128-GCM tag
/** §4.4: the exported secret and the response nonce are max(Nn, Nk) bytes. */
const RESPONSE_NONCE_LENGTH = Math.max(NN, NK);

/** Largest request and response accepted, checked before any crypto. */
export const MAX_ENCAPSULATED_REQUEST_LENGTH = HEADER_LENGTH + NENC + MAX_BHTTP_REQUEST_LENGTH + NT;
export const MAX_ENCAPSULATED_RESPONSE_LENGTH = RESPONSE_NONCE_LENGTH + MAX_BHTTP_RESPONSE_LENGTH + NT;

const utf8 = new TextEncoder();
const REQUEST_LABEL = utf8.encode("message/bhttp request");
const RESPONSE_LABEL = utf8.encode("message/bhttp response");

function requestHeader(keyId: number): Uint8Array {
  return concatBytes(
    Uint8Array.of(keyId),
    uint16(KEM_X25519_HKDF_SHA256),
    uint16(KDF_HKDF_SHA256),
    uint16(AEAD_AES_128_GCM),
  );
}

/** §4.3: info = "message/bhttp request" | 0x00 | header. */
function requestInfo(header: Uint8Array): Uint8Array {
  return concatBytes(REQUEST_LABEL, Uint8Array.of(0), header);
}

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

/** §4.4 key schedule: HKDF-SHA256 (RFC 5869) Extract, then one-block Expands (Nk, Nn <= 32). */
async function responseKeys(
  secret: Uint8Array,
  enc: Uint8Array,
  responseNonce: Uint8Array,
): Promise<{ key: CryptoKey; iv: Uint8Array }> {
  const prk = await hmac(concatBytes(enc, responseNonce), secret);
  const keyBytes = (await hmac(prk, concatBytes(utf8.encode("key"), Uint8Array.of(1)))).subarray(0, NK);
  const iv = (await hmac(prk, concatBytes(utf8.encode("nonce"), Uint8Array.of(1)))).subarray(0, NN);
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "AES-GCM" }, false, [
    "encrypt",
    "decrypt",
  ]);
  return { key, iv };
}

async function exportSecret(context: { export(c: Uint8Array, l: number): Promise<ArrayBuffer> }) {
  return new Uint8Array(await context.export(RESPONSE_LABEL, RESPONSE_NONCE_LENGTH));
}

export interface ClientContext {
  /** A `message/ohttp-res` body back to the Binary HTTP response bytes. */
  decapsulateResponse(encapsulatedResponse: Uint8Array): Promise<Uint8Array>;
}

export interface GatewayContext {
  readonly keyId: number;
  /** Binary HTTP response bytes to a `message/ohttp-res` body. */
  encapsulateResponse(response: Uint8Array, options?: { responseNonce?: Uint8Array }): Promise<Uint8Array>;
}

/**
 * Client side of §4.3: seals `request` (Binary HTTP bytes, already padded) to `config`'s key.
 * `ephemeralPrivateKey` exists only to reproduce RFC 9458 Appendix A; real calls leave it unset.
 */
export async function encapsulateRequest(
  config: KeyConfig,
  request: Uint8Array,
  options: { ephemeralPrivateKey?: Uint8Array } = {},
): Promise<{ encapsulatedRequest: Uint8Array; context: ClientContext }> {
  if (!supportsOurSuite(config))
    throw new OhttpError("UNSUPPORTED_SUITE", "The key configuration lacks our suite");
  if (request.length > MAX_BHTTP_REQUEST_LENGTH)
    throw new OhttpError("TOO_LARGE", "The request is too large");
  let recipientPublicKey: CryptoKey;
  try {
    recipientPublicKey = await suite.kem.deserializePublicKey(config.publicKey);
  } catch (cause) {
    throw new OhttpError("MALFORMED", "The key configuration's public key is not valid", { cause });
  }
  let ekm: CryptoKeyPair | undefined;
  if (options.ephemeralPrivateKey !== undefined) {
    const pair = await x25519FromPrivate(options.ephemeralPrivateKey);
    ekm = { privateKey: pair.privateKey, publicKey: await suite.kem.deserializePublicKey(pair.publicKey) };
  }
  const header = requestHeader(config.keyId);
  const sender = await suite.createSenderContext({
    recipientPublicKey,
    info: requestInfo(header),
    ...(ekm === undefined ? {} : { ekm }),
  });
  const enc = new Uint8Array(sender.enc);
  const ciphertext = new Uint8Array(await sender.seal(request));
  const secret = await exportSecret(sender);
  return {
    encapsulatedRequest: concatBytes(header, enc, ciphertext),
    context: {
      async decapsulateResponse(encapsulatedResponse) {
        if (encapsulatedResponse.length > MAX_ENCAPSULATED_RESPONSE_LENGTH) {
          throw new OhttpError("TOO_LARGE", "The encapsulated response is too large");
        }
        if (encapsulatedResponse.length < RESPONSE_NONCE_LENGTH + NT) {
          throw new OhttpError("MALFORMED", "The encapsulated response is truncated");
        }
        const nonce = encapsulatedResponse.subarray(0, RESPONSE_NONCE_LENGTH);
        const { key, iv } = await responseKeys(secret, enc, nonce);
        try {
          return new Uint8Array(
            await crypto.subtle.decrypt(
              { name: "AES-GCM", iv },
              key,
              encapsulatedResponse.subarray(RESPONSE_NONCE_LENGTH),
            ),
          );
        } catch (cause) {
          throw new OhttpError("DECRYPT_FAILED", "The encapsulated response does not open", { cause });
        }
      },
    },
  };
}

/**
 * Gateway side of §4.3: finds the key by id among `keys` (the live ones), checks the suite is one that
 * key's configuration offers, and opens the request. Errors: TOO_LARGE, MALFORMED, KEY_ID_UNKNOWN,
 * UNSUPPORTED_SUITE, DECRYPT_FAILED (§5.2/§5.3 answers are the caller's).
 */
export async function decapsulateRequest(
  keys: readonly GatewayKey[],
  encapsulatedRequest: Uint8Array,
): Promise<{ request: Uint8Array; context: GatewayContext }> {
  if (encapsulatedRequest.length > MAX_ENCAPSULATED_REQUEST_LENGTH) {
    throw new OhttpError("TOO_LARGE", "The encapsulated request is too large");
  }
  const r = new Reader(encapsulatedRequest, "encapsulated request");
  const header = r.take(HEADER_LENGTH);
  const h = new Reader(header, "encapsulated request");
  const keyId = h.u8();
  const kemId = h.u16();
  const kdfId = h.u16();
  const aeadId = h.u16();
  const key = keys.find((k) => k.keyId === keyId);
  if (key === undefined) throw new OhttpError("KEY_ID_UNKNOWN", "No current key has this key id");
  const offered =
    kemId === key.config.kemId && key.config.symmetric.some((s) => s.kdfId === kdfId && s.aeadId === aeadId);
  const ours = kemId === KEM_X25519_HKDF_SHA256 && kdfId === KDF_HKDF_SHA256 && aeadId === AEAD_AES_128_GCM;
  if (!offered || !ours) throw new OhttpError("UNSUPPORTED_SUITE", "This key does not take this suite");
  if (r.remaining < NENC + NT) throw new OhttpError("MALFORMED", "The encapsulated request is truncated");
  const enc = r.take(NENC).slice();
  const ciphertext = r.rest();
  let request: Uint8Array;
  let secret: Uint8Array;
  try {
    // A bad `enc` (e.g. a low-order point, RFC 9180 §7.1.4) fails here, like a bad tag: one code.
    const recipient = await suite.createRecipientContext({
      recipientKey: key.privateKey,
      enc,
      info: requestInfo(header),
    });
    request = new Uint8Array(await recipient.open(ciphertext));
    secret = await exportSecret(recipient);
  } catch (cause) {
    throw new OhttpError("DECRYPT_FAILED", "The encapsulated request does not open", { cause });
  }
  return {
    request,
    context: {
      keyId,
      async encapsulateResponse(response, options = {}) {
        const nonce = options.responseNonce ?? crypto.getRandomValues(new Uint8Array(RESPONSE_NONCE_LENGTH));
        if (nonce.length !== RESPONSE_NONCE_LENGTH) {
          throw new OhttpError("MALFORMED", "A response nonce has max(Nn, Nk) bytes");
        }
        const { key: aeadKey, iv } = await responseKeys(secret, enc, nonce);
        const sealed = new Uint8Array(
          await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aeadKey, response),
        );
        return concatBytes(nonce, sealed);
      },
    },
  };
}
