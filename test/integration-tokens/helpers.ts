/**
 * Helpers for the storage-token tests (workerd, ALLOW_UNTOKENED_STORES off). TEST ONLY keys: the
 * issuer keys come from vitest.config.ts through TOKEN_ISSUER_KEYS; tests may also sign tokens
 * directly with them (a plain RSA-PSS signature over `nonce || message` is exactly what a finalized
 * blind signature is), to build tokens for expired or unknown keys.
 */
import { env, SELF } from "cloudflare:test";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import {
  encodeStorageToken,
  mintToken,
  type StorageToken,
  signStore,
  type TempKeyAlgorithm,
  TOKEN_HEADER,
  TOKEN_SIGNATURE_HEADER,
} from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { blockQueueOfTn } from "../../src/storage/objects.js";
import { sealedFor } from "../helpers/cps.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki } from "../helpers/pki.js";

export const BASE = TEST_CPS_ORIGIN;
export const pki = loadTestPki(env.TEST_PKI);

interface KeyEntry {
  id: string;
  privateKeyPkcs8: string;
}
const entries = JSON.parse(env.TOKEN_ISSUER_KEYS ?? "[]") as KeyEntry[];

/** The RSA-PSS private key of a configured issuer key (or of a fresh unconfigured one for `"fresh"`). */
export async function issuerPrivateKey(id: string): Promise<CryptoKey> {
  const entry = entries.find((e) => e.id === id);
  if (!entry) {
    const pair = (await crypto.subtle.generateKey(
      { name: "RSA-PSS", hash: "SHA-384", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    return pair.privateKey;
  }
  const der = Uint8Array.from(atob(entry.privateKeyPkcs8), (c) => c.charCodeAt(0));
  return crypto.subtle.importKey("pkcs8", der, { name: "RSA-PSS", hash: "SHA-384" }, false, ["sign"]);
}

/** A token signed directly (no blinding) by `signer` under key id `keyId`, with its K_temp key. */
export function directToken(keyId: string, signer: CryptoKey, alg: TempKeyAlgorithm = "Ed25519") {
  return mintToken(signer, keyId, alg);
}

/** A wallet talking to the Worker through SELF, authenticating with the `valid` test credential. */
export function wallet(usesPerToken = 1, tempKeyAlgorithm: TempKeyAlgorithm = "Ed25519"): TokenWallet {
  return new TokenWallet({
    cpsUrl: BASE,
    fetch: (r) => SELF.fetch(r),
    usesPerToken,
    tempKeyAlgorithm,
    authorization: async () => bearerFor(await pki.credential("valid"), "tokens:issue"),
  });
}

/** Headers for a store of `text` (an encoded envelope) under `tn`, paid with `token`. */
export async function tokenHeaders(token: StorageToken, privateKey: CryptoKey, tn: string, text: string) {
  const signature = await signStore(privateKey, canonicalTn(tn), decodeEnvelope(text));
  return { [TOKEN_HEADER]: encodeStorageToken(token), [TOKEN_SIGNATURE_HEADER]: encodeBase64url(signature) };
}

export async function store(tn: string, text: string, headers: Record<string, string> = {}) {
  const res = await SELF.fetch(`${BASE}/cps/${tn}/ppts`, {
    method: "POST",
    headers: { "Content-Type": "application/passport", ...headers },
    body: text,
  });
  const body = await res.json<Record<string, unknown>>();
  return { status: res.status, body, headers: res.headers };
}

/**
 * Real blobs live under `tn`, asked of the object holding them (its index block): lists mix in decoys,
 * which may persist across reads (issue 13 #6), so the wire cannot tell them apart, by design.
 */
export async function liveCount(tn: string): Promise<number> {
  return blockQueueOfTn(env, canonicalTn(tn)).numberLiveCount(canonicalTn(tn));
}

export { sealedFor };
