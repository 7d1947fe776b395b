/**
 * Signed key records for tests (docs/key-directory.md "Signed key records"): registration bodies
 * signed with a test credential (src/stir/test-pki.ts, TEST ONLY keys), and raw JWS of any header
 * and payload for the bad-input tests, and a callee key registered at a CPS over HTTP. Works in Node
 * and in workerd.
 */
import type { CalleeKey } from "../../src/client/vs.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { KEY_RECORD_TYP, signKeyRecord } from "../../src/stir/signed-key-record.js";
import { bearerFor } from "./pki.js";

/** Anything that can sign as a STIR credential: a TestCredential or a WorkerCredential. */
export interface SigningCredential {
  readonly privateKey: CryptoKey;
  readonly der: readonly Uint8Array[];
}

export interface SignedKeyOptions {
  /** Number blocks the record names, first = the registration path (`12155551212`, `120255501xx`). */
  readonly blocks: readonly string[];
  readonly label?: string;
  /** `exp - nbf`, seconds (default 30 days). */
  readonly ttlSeconds?: number;
  /** Seconds since the epoch (default: now). */
  readonly nbf?: number;
  readonly iat?: number;
  /** Name the chain by this URL instead of carrying it in x5c. */
  readonly x5u?: string;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function rawKey(publicKey: Uint8Array | { readonly x: string }): Uint8Array {
  return publicKey instanceof Uint8Array ? publicKey : decodeBase64url(publicKey.x);
}

/** A record signed by `cred` for `publicKey` (raw X25519 bytes or a JWK with `x`). */
export async function signedKeyRecord(
  cred: SigningCredential,
  publicKey: Uint8Array | { readonly x: string },
  options: SignedKeyOptions,
): Promise<string> {
  const iat = options.iat ?? nowSeconds();
  const nbf = options.nbf ?? iat;
  return signKeyRecord({
    publicKey: rawKey(publicKey),
    blocks: options.blocks,
    label: options.label ?? "test",
    iat,
    nbf,
    exp: nbf + (options.ttlSeconds ?? 30 * 86_400),
    privateKey: cred.privateKey,
    ...(options.x5u === undefined ? { x5c: cred.der } : { x5u: options.x5u }),
  });
}

/** The body of `PUT /keys/{blocks[0]}`: `{ record }`. */
export async function signedKeyBody(
  cred: SigningCredential,
  publicKey: Uint8Array | { readonly x: string },
  options: SignedKeyOptions,
): Promise<{ record: string }> {
  return { record: await signedKeyRecord(cred, publicKey, options) };
}

function b64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The usual protected header of `cred` (x5c), for tests that change one member. */
export function recordHeader(cred: SigningCredential): Record<string, unknown> {
  return { alg: "ES256", typ: KEY_RECORD_TYP, x5c: cred.der.map(b64) };
}

/** The usual payload, for tests that change one member. */
export function recordPayload(
  publicKey: Uint8Array | { readonly x: string },
  blocks: readonly string[],
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = nowSeconds();
  return {
    v: 1,
    jwk: { kty: "OKP", crv: "X25519", x: encodeBase64url(rawKey(publicKey)) },
    blocks,
    label: "test",
    iat: now,
    nbf: now,
    exp: now + 86_400,
    ...overrides,
  };
}

/**
 * A JWS of any header and payload signed by `cred`, with WebCrypto directly (jose would refuse to
 * sign some of the bad headers, such as an unknown `crit`): for records that must be refused.
 */
export async function signRawRecord(
  cred: SigningCredential,
  header: Record<string, unknown>,
  payload: unknown,
): Promise<string> {
  const utf8 = new TextEncoder();
  const input = `${encodeBase64url(utf8.encode(JSON.stringify(header)))}.${encodeBase64url(
    utf8.encode(JSON.stringify(payload)),
  )}`;
  // WebCrypto's ECDSA signature is r || s, which is the JWS ES256 form (RFC 7518 §3.4).
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    cred.privateKey,
    utf8.encode(input),
  );
  return `${input}.${encodeBase64url(new Uint8Array(sig))}`;
}

/**
 * A fresh callee key pair for `tn`, registered at the CPS `cps` over HTTP (`PUT /keys/{tn}`, RFC 8816
 * §11) as a record signed by `operator`, who must cover `tn`; throws when the CPS refuses it.
 */
export async function registerCalleeKey(
  cps: string,
  operator: SigningCredential,
  tn: string,
  options: { readonly label: string; readonly nbf?: number },
): Promise<{ key: CalleeKey; publicKey: Uint8Array }> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  const res = await fetch(`${cps}/keys/${tn}`, {
    method: "PUT",
    headers: {
      "content-type": "application/json",
      authorization: await bearerFor(operator, "keys:put", { audience: cps }),
    },
    body: JSON.stringify(await signedKeyBody(operator, publicKey, { blocks: [tn], ...options })),
  });
  if (res.status >= 300) throw new Error(`PUT /keys/${tn}: ${res.status} ${await res.text()}`);
  return { key: { kid: options.label, privateKey: keyPair }, publicKey };
}
