/** Types for issuer-key.mjs: local storage-token issuer keys for `npm start` and the tests. */

/** One entry of the TOKEN_ISSUER_KEYS JSON list. */
export interface IssuerKeyEntry {
  id: string;
  /** PKCS#8 DER of an RSA-PSS (SHA-384) private key, standard base64. */
  privateKeyPkcs8: string;
  /** ISO 8601. */
  notBefore: string;
  notAfter: string;
}

export declare const DEV_KEYS_FILE: string;
/** File name, under .wrangler/, of the local DECOY_SECRET. */
export declare const DEV_DECOY_SECRET_FILE: string;

/** A fresh RSA key entry valid from notBefore to notAfter (ms since the epoch). */
export declare function generateIssuerKeyEntry(
  id: string,
  notBefore: number,
  notAfter: number,
  modulusLength?: number,
): Promise<IssuerKeyEntry>;

/** TOKEN_ISSUER_KEYS JSON of one fresh key `id`, valid from an hour ago for a day (tests, benches). */
export declare function oneIssuerKeyVar(id: string): Promise<string>;

/** TOKEN_ISSUER_KEYS JSON for local development, persisted in `<dir>/dev-issuer-keys.json`. */
export declare function ensureLocalIssuerKeys(dir: string, now?: number): Promise<string>;

/** DECOY_SECRET for local development (32 bytes, base64url), persisted in `<dir>/dev-decoy-secret`. */
export declare function ensureLocalDecoySecret(dir: string): Promise<string>;

/** A fresh random DECOY_SECRET: 32 bytes, base64url. */
export declare function randomDecoySecret(): string;

/** One entry of the OHTTP_KEYS JSON list (docs/ohttp.md). */
export interface OhttpKeyEntry {
  /** Key identifier, 0..255 (RFC 9458 §3.1). */
  id: number;
  /** X25519 private key: 32 bytes, base64url. */
  privateKey: string;
  /** ms since the epoch, inclusive. */
  notBefore?: number;
  /** ms since the epoch, exclusive. */
  notAfter?: number;
}

/** File name, under .wrangler/, of the local OHTTP_KEYS. */
export declare const DEV_OHTTP_KEYS_FILE: string;

/** A fresh OHTTP_KEYS entry with key id `id` and an optional window (ms). */
export declare function generateOhttpKeyEntry(
  id: number,
  window?: { notBefore?: number; notAfter?: number },
): OhttpKeyEntry;

/** OHTTP_KEYS JSON of one fresh key (id 1, no window). */
export declare function randomOhttpKeys(): string;

/** OHTTP_KEYS for local development, persisted in `<dir>/dev-ohttp-keys.json` (mode 0600). */
export declare function ensureLocalOhttpKeys(dir: string): Promise<string>;
