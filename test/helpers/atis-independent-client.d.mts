/** Types for atis-independent-client.mjs: an ATIS OOB client written from the public descriptions. */
import type { KeyObject } from "node:crypto";

/** A private key: a Node KeyObject, a WebCrypto CryptoKey or PKCS #8 / SEC1 PEM text. */
export type PrivateKeyInput = KeyObject | CryptoKey | string;

/** The signer: its key, and its certificate by URL (x5u tokens) and/or as a PEM chain (x5c tokens). */
export interface AtisCredential {
  privateKey: PrivateKeyInput;
  /** https URL serving the PEM chain, leaf first. */
  x5u?: string;
  /** PEM chain, leaf first. */
  chainPem?: string;
}

export type DigestVariant = "atis" | "prototype" | "prototype-python" | "vesper" | "vesper-prefixed";
export declare const DIGEST_VARIANTS: readonly DigestVariant[];

export type TokenVia = "x5u" | "x5c";
/** `dest-orig`: /passports/{DEST}/{ORIG}; `spc`: /passports/{SPC}/{DEST}/{ORIG}. */
export type PathForm = "dest-orig" | "spc";

export interface AtisAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, undefined when it is not JSON. */
  json: unknown;
}

export declare function base64url(bytes: Uint8Array | ArrayBuffer): string;
export declare function toPrivateKey(key: PrivateKeyInput): KeyObject;
export declare function signEs256(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  privateKey: PrivateKeyInput,
): string;
export declare function pemToX5c(pem: string): string[];
export declare function shakenPassport(options: {
  privateKey: PrivateKeyInput;
  x5u: string;
  orig: string;
  dest: string;
  attest?: "A" | "B" | "C";
  iat?: number;
  origid?: string;
}): string;
export declare function jcs(value: unknown): string;
export declare function pythonJsonDumps(value: unknown): string;
export declare function passportsDigest(body: { passports: string[] }, variant?: DigestVariant): string;
export declare function accessToken(options: {
  credential: AtisCredential;
  via?: TokenVia;
  action: string;
  audience: string;
  orig: string;
  dest: string;
  spc?: string;
  iss?: string;
  sub?: string;
  passports?: string;
  iat?: number;
  exp?: number;
  jti?: string;
  /** Added last, overriding the claims built from the options. */
  claims?: Record<string, unknown>;
  /** Added last to the protected header. */
  header?: Record<string, unknown>;
}): string;
export declare function passportsPath(options: {
  spc?: string | undefined;
  dest: string;
  orig: string;
}): string;
export declare function cpsHost(cps: string): string;

interface RequestOptions {
  /** The CPS base URL, e.g. http://127.0.0.1:8787 (no trailing slash). */
  cps: string;
  credential: AtisCredential;
  via?: TokenVia;
  pathForm?: PathForm;
  /**
   * The signer's SPC: the path's on the SPC form, where the token carries it as `spc` and `iss`
   * (ATIS-1000105); on the DEST/ORIG form the token carries it as `iss` only (ATIS-1000096).
   */
  spc?: string;
  /** A `sub` claim (VESPER: the SPC or TN of the signer). */
  sub?: string;
  dest: string;
  orig: string;
  /** Default: the CPS host (`cpsHost(cps)`). */
  audience?: string;
  /** Claims added to (or overriding) the token's. */
  tokenClaims?: Record<string, unknown>;
  /** Protected header members added to (or overriding) the token's, e.g. `{ typ: "JWT" }`. */
  tokenHeader?: Record<string, unknown>;
  /** A path in place of the one built from spc/dest/orig. */
  path?: string;
}

export declare function publish(
  options: RequestOptions & {
    passports: string[];
    digest?: DigestVariant;
    /** exp = iat + this (default 60); null: no exp claim. */
    expSeconds?: number | null;
    idempotencyKey?: string;
  },
): Promise<AtisAnswer>;
export declare function retrieve(options: RequestOptions): Promise<AtisAnswer>;
