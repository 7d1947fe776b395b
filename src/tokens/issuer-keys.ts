/**
 * Storage-token issuer keys (RFC 9474 RSABSSA-SHA384-PSS-Randomized) from `TOKEN_ISSUER_KEYS`, a
 * Worker secret in production: a JSON list of `{id, privateKeyPkcs8 (base64), notBefore, notAfter}`.
 * Read through src/config.ts; parsed and imported once per isolate (per distinct secret value).
 *
 * Rotation: a key signs and is accepted while `notBefore <= now < notAfter`. The *current* key is the
 * valid one with the latest `notBefore`; the *next* key is the one with the earliest future
 * `notBefore`. Revoking a key = removing it from the list: its tokens then fail with
 * TOKEN_UNKNOWN_KEY. Signing always uses workerd's native `RSA-RAW` (~300x the big-number path).
 */
import { RSABSSA } from "@cloudflare/blindrsa-ts";
import type { CpsConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { encodeBase64url } from "../stir/base64url.js";
import { KEY_ID_PATTERN, MIN_MODULUS_BITS, TOKEN_SUITE } from "../stir/storage-token.js";

export interface IssuerKey {
  id: string;
  notBefore: number;
  notAfter: number;
  /** RSA-RAW private key (workerd) for blind signing. */
  signingKey: CryptoKey;
  /** RSA-PSS SHA-384 public key for verifying tokens. */
  publicKey: CryptoKey;
  /** SPKI DER, base64url: what `GET /tokens/keys` publishes. */
  publicKeySpki: string;
  modulusBytes: number;
}

export interface PublishedKey {
  id: string;
  suite: typeof TOKEN_SUITE;
  publicKey: string;
  notBefore: string;
  notAfter: string;
  status: "current" | "next";
}

interface KeyEntry {
  id?: unknown;
  privateKeyPkcs8?: unknown;
  notBefore?: unknown;
  notAfter?: unknown;
}

const misconfigured = (what: string) =>
  new CpsError(
    "MISCONFIGURED",
    `Set TOKEN_ISSUER_KEYS to a JSON list of {id, privateKeyPkcs8, notBefore, notAfter}: ${what}`,
  );

function time(value: unknown, what: string): number {
  const t =
    typeof value === "number" ? value * 1000 : typeof value === "string" ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(t)) throw misconfigured(`${what} is not a date`);
  return t;
}

function unbase64(text: string): Uint8Array {
  const std = text.replace(/-/g, "+").replace(/_/g, "/").replace(/\s/g, "");
  return Uint8Array.from(atob(std), (c) => c.charCodeAt(0));
}

async function importEntry(entry: KeyEntry): Promise<IssuerKey> {
  if (typeof entry.id !== "string" || !KEY_ID_PATTERN.test(entry.id)) throw misconfigured("bad id");
  if (typeof entry.privateKeyPkcs8 !== "string")
    throw misconfigured(`key ${entry.id} has no privateKeyPkcs8`);
  const notBefore = time(entry.notBefore, `notBefore of ${entry.id}`);
  const notAfter = time(entry.notAfter, `notAfter of ${entry.id}`);
  if (notAfter <= notBefore) throw misconfigured(`key ${entry.id} ends before it starts`);
  let pkcs8: Uint8Array;
  let pss: CryptoKey;
  try {
    pkcs8 = unbase64(entry.privateKeyPkcs8);
    pss = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "RSA-PSS", hash: "SHA-384" }, true, ["sign"]);
  } catch {
    throw misconfigured(`key ${entry.id} is not an RSA PKCS#8 key`);
  }
  const bits = (pss.algorithm as { modulusLength: number }).modulusLength;
  if (bits < MIN_MODULUS_BITS)
    throw misconfigured(`key ${entry.id} is shorter than ${MIN_MODULUS_BITS} bits`);
  const jwk = (await crypto.subtle.exportKey("jwk", pss)) as JsonWebKey;
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "RSA", n: jwk.n, e: jwk.e, alg: "PS384", ext: true },
    { name: "RSA-PSS", hash: "SHA-384" },
    true,
    ["verify"],
  );
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", publicKey)) as ArrayBuffer);
  // workerd's non-standard RSA-RAW: the raw private-key operation RFC 9474 BlindSign needs.
  const signingKey = await crypto.subtle.importKey(
    "pkcs8",
    pkcs8,
    { name: "RSA-RAW", hash: "SHA-384" },
    false,
    ["sign"],
  );
  return {
    id: entry.id,
    notBefore,
    notAfter,
    signingKey,
    publicKey,
    publicKeySpki: encodeBase64url(spki),
    modulusBytes: bits / 8,
  };
}

/** The parsed key set of one `TOKEN_ISSUER_KEYS` value. */
export class IssuerKeySet {
  constructor(readonly keys: readonly IssuerKey[]) {}

  /** The key `id` if it is known and inside its validity window, else undefined. */
  valid(id: string, now = Date.now()): IssuerKey | undefined {
    const key = this.keys.find((k) => k.id === id);
    return key && key.notBefore <= now && now < key.notAfter ? key : undefined;
  }

  current(now = Date.now()): IssuerKey | undefined {
    let best: IssuerKey | undefined;
    for (const k of this.keys) {
      if (k.notBefore <= now && now < k.notAfter && (!best || k.notBefore > best.notBefore)) best = k;
    }
    return best;
  }

  next(now = Date.now()): IssuerKey | undefined {
    let best: IssuerKey | undefined;
    for (const k of this.keys) if (k.notBefore > now && (!best || k.notBefore < best.notBefore)) best = k;
    return best;
  }

  published(now = Date.now()): PublishedKey[] {
    const out: PublishedKey[] = [];
    const show = (k: IssuerKey | undefined, status: PublishedKey["status"]) => {
      if (!k) return;
      out.push({
        id: k.id,
        suite: TOKEN_SUITE,
        publicKey: k.publicKeySpki,
        notBefore: new Date(k.notBefore).toISOString(),
        notAfter: new Date(k.notAfter).toISOString(),
        status,
      });
    };
    show(this.current(now), "current");
    show(this.next(now), "next");
    return out;
  }
}

let cached: { raw: string; set: Promise<IssuerKeySet> } | undefined;

/** The issuer keys of this deployment (cached per isolate); MISCONFIGURED when absent or invalid. */
export function issuerKeys(config: Pick<CpsConfig, "tokenIssuerKeys">): Promise<IssuerKeySet> {
  const raw = config.tokenIssuerKeys;
  if (cached?.raw === raw) return cached.set;
  const set = (async () => {
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      throw misconfigured("not JSON");
    }
    if (!Array.isArray(list) || list.length === 0) throw misconfigured("no keys");
    const keys = await Promise.all(list.map((e) => importEntry((e ?? {}) as KeyEntry)));
    if (new Set(keys.map((k) => k.id)).size !== keys.length) throw misconfigured("duplicate ids");
    return new IssuerKeySet(keys);
  })();
  cached = { raw, set };
  // A failed parse must not stick: the next request retries (and fails loudly again).
  set.catch(() => {
    if (cached?.set === set) cached = undefined;
  });
  return set;
}

const signer = RSABSSA.SHA384.PSS.Randomized({ supportsRSARAW: true });

/**
 * RFC 9474 BlindSign of one blinded message with `key` (RSA-RAW). Refuses a message of the wrong
 * length or not below the modulus as TOKEN_MALFORMED, never a 500.
 */
export async function blindSign(key: IssuerKey, blindedMessage: Uint8Array): Promise<Uint8Array> {
  if (blindedMessage.length !== key.modulusBytes) {
    throw new CpsError("TOKEN_MALFORMED", `A blinded message is ${key.modulusBytes} bytes`);
  }
  try {
    return await signer.blindSign(key.signingKey, blindedMessage);
  } catch (cause) {
    throw new CpsError("TOKEN_MALFORMED", "The blinded message is not valid for this key", { cause });
  }
}
