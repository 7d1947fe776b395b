/**
 * Signed key records (RFC 8816 §11: keys linked to the STIR credential of the number;
 * docs/key-directory.md "Signed key records" is the normative text). A record is a JWS compact
 * serialization (RFC 7515), ES256, signed by the leaf key of a STIR certificate (RFC 8226) whose
 * TNAuthList covers every block it names, with the chain in `x5c` or behind `x5u`. The directory
 * stores and serves it unchanged; whoever seals to the key verifies it first, so a dishonest directory
 * can withhold keys but never substitute one (docs/design.md invariant 5 carried to the client).
 *
 * Pure code: no I/O except through the injected `resolveX5u` and the validator (which may check
 * revocation). Order of checks, cheapest first: size and shape, header, every payload member and the
 * validity window, the number asked about; then the leaf's signature, then the chain, then coverage.
 */
import { CompactSign, compactVerify } from "jose";
import { CpsError } from "../errors.js";
import { hash128Hex } from "./authority.js";
import { decodeBase64url, encodeBase64, encodeBase64url } from "./base64url.js";
import {
  type CertificateChain,
  certificatePublicKey,
  MAX_CHAIN_LENGTH,
  parseCertificateChain,
} from "./cert-parse.js";
import type { CertificateValidator, ValidatedCertificate } from "./cert-validate.js";
import { jwkThumbprint, KEY_LABEL, x25519FromJwk } from "./key-records.js";
import {
  blockContainsTn,
  formatBlock,
  type NumberBlock,
  parseBlock,
  type SpcNumberBlocks,
  tnAuthListCoversBlock,
} from "./number-blocks.js";

export const KEY_RECORD_ALG = "ES256";
/** Protected header `typ` (RFC 7515 §4.1.9, the `application/` prefix omitted). */
export const KEY_RECORD_TYP = "stir-key-record+jwt";
export const KEY_RECORD_VERSION = 1;
/** Longest record accepted, characters of the compact serialization. */
export const MAX_KEY_RECORD_LENGTH = 16_384;
/** Blocks one record may name (a start+count range splits into at most 64, number-blocks.ts). */
export const MAX_KEY_RECORD_BLOCKS = 64;
/** Longest `exp - nbf`, seconds: 400 days. */
export const MAX_KEY_RECORD_LIFETIME_SECONDS = 400 * 86_400;
/** Clock skew tolerated on `nbf` (a record signed a moment ago on a clock slightly ahead). */
export const KEY_RECORD_SKEW_SECONDS = 60;
/** Longest `x5u` accepted, characters. */
const MAX_X5U_LENGTH = 2048;
// RFC 7515 §4.1.6: x5c entries are base64 (RFC 4648 §4), not base64url.
const STD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const PAYLOAD_MEMBERS = ["v", "jwk", "blocks", "label", "iat", "nbf", "exp"] as const;
const JWK_MEMBERS = ["kty", "crv", "x"] as const;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The payload of a record, as signed. */
export interface KeyRecordClaims {
  readonly v: 1;
  readonly jwk: { readonly kty: "OKP"; readonly crv: "X25519"; readonly x: string };
  /** Canonical number blocks (`120255501xx`, `12155551212`), first one the registration target. */
  readonly blocks: readonly string[];
  readonly label: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
}

export interface SignKeyRecordOptions {
  /** Raw 32-byte X25519 public key (RFC 8037 `x`). */
  readonly publicKey: Uint8Array;
  /** Number blocks (`120255501xx`; upper-case `X` is written lower-case), 1-64, no duplicates. */
  readonly blocks: readonly string[];
  readonly label: string;
  /** Seconds since the epoch (default `iat`). */
  readonly nbf?: number;
  /** Seconds since the epoch; after `nbf`, at most 400 days after it. */
  readonly exp: number;
  /** Seconds since the epoch (default: clock). */
  readonly iat?: number;
  /** The STIR certificate's private key (ECDSA P-256). */
  readonly privateKey: CryptoKey;
  /** Certificate chain, leaf first, DER; exactly one of `x5c` and `x5u`. */
  readonly x5c?: readonly Uint8Array[];
  /** Certificate URL (PEM chain, leaf first). */
  readonly x5u?: string;
}

export interface VerifyKeyRecordOptions {
  /** Holds the trust anchors (and any revocation checker). */
  readonly validator: CertificateValidator;
  /** Resolves `x5u` (an X5uFetcher's `fetchChain`); without it, `x5u` records are refused. */
  readonly resolveX5u?: (url: string) => Promise<CertificateChain>;
  /** Seconds since the epoch (default: clock). */
  readonly now?: number;
  /** Canonical number the record must apply to (`KEY_RECORD_NOT_FOR_TN` otherwise). */
  readonly tn?: string;
  /** Operator map SPC -> numbers, for certificates that speak for numbers only by SPC. */
  readonly spcNumberBlocks?: SpcNumberBlocks;
}

export interface VerifiedKeyRecord {
  readonly claims: KeyRecordClaims;
  /** RFC 7638 thumbprint of `claims.jwk` (computed, never carried). */
  readonly kid: string;
  readonly publicKey: Uint8Array;
  /** `claims.blocks`, parsed, in the record's order. */
  readonly blocks: readonly NumberBlock[];
  readonly certificate: ValidatedCertificate;
  /** The signer as a directory holder id: src/stir/authority.ts `holderId` of the same leaf. */
  readonly holder: string;
}

function invalid(message: string, cause?: unknown): CpsError {
  return new CpsError("KEY_RECORD_INVALID", message, cause === undefined ? {} : { cause });
}

function isSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Canonical blocks, or KEY_RECORD_INVALID: 1-64 strings, each its own canonical spelling, no duplicates. */
function parseBlocks(value: unknown, canonicalise: boolean): NumberBlock[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_KEY_RECORD_BLOCKS) {
    throw invalid(`blocks is a list of 1 to ${MAX_KEY_RECORD_BLOCKS} number blocks`);
  }
  const seen = new Set<string>();
  return value.map((text: unknown) => {
    let block: NumberBlock;
    try {
      if (typeof text !== "string") throw new Error("not a string");
      block = parseBlock(text);
    } catch (cause) {
      throw invalid("A block is digits followed by one 'x' per open digit", cause);
    }
    const canonical = formatBlock(block);
    if (!canonicalise && canonical !== text) throw invalid("A block is written in its canonical form");
    if (seen.has(canonical)) throw invalid("blocks names a block twice");
    seen.add(canonical);
    return block;
  });
}

function checkWindow(nbf: unknown, exp: unknown, iat: unknown): void {
  if (!isSeconds(iat) || !isSeconds(nbf) || !isSeconds(exp)) {
    throw invalid("iat, nbf and exp are whole seconds since the epoch");
  }
  if (exp <= nbf) throw invalid("exp is after nbf");
  if (exp - nbf > MAX_KEY_RECORD_LIFETIME_SECONDS) throw invalid("exp is at most 400 days after nbf");
}

/**
 * Signs a key record with a STIR credential.
 *
 * @example
 * const record = await signKeyRecord({ publicKey, blocks: ["120255501xx"], label: "pbx",
 *   exp: now + 30 * 86_400, privateKey: cred.privateKey, x5c: cred.der });
 * await fetch(`${cps}/keys/120255501xx`, { method: "PUT", body: JSON.stringify({ record }), ... });
 */
export async function signKeyRecord(options: SignKeyRecordOptions): Promise<string> {
  if ((options.x5c === undefined) === (options.x5u === undefined)) {
    throw invalid("A key record names its certificate by x5c or x5u");
  }
  const header: Record<string, unknown> = { alg: KEY_RECORD_ALG, typ: KEY_RECORD_TYP };
  if (options.x5c !== undefined) {
    if (options.x5c.length === 0 || options.x5c.length > MAX_CHAIN_LENGTH) {
      throw invalid(`A certificate chain has 1 to ${MAX_CHAIN_LENGTH} certificates`);
    }
    header.x5c = options.x5c.map(encodeBase64);
  } else {
    if (typeof options.x5u !== "string" || options.x5u.length === 0 || options.x5u.length > MAX_X5U_LENGTH) {
      throw invalid("x5u is not a URL");
    }
    header.x5u = options.x5u;
  }
  const x = encodeBase64url(options.publicKey);
  x25519FromJwk({ kty: "OKP", crv: "X25519", x }); // INVALID_KEY unless a usable X25519 public key
  const blocks = parseBlocks(options.blocks, true).map(formatBlock);
  if (typeof options.label !== "string" || !KEY_LABEL.test(options.label)) {
    throw invalid("label is 1-32 characters of letters, digits, space and ._:@-");
  }
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const nbf = options.nbf ?? iat;
  checkWindow(nbf, options.exp, iat);
  const claims: KeyRecordClaims = {
    v: KEY_RECORD_VERSION,
    jwk: { kty: "OKP", crv: "X25519", x },
    blocks,
    label: options.label,
    iat,
    nbf,
    exp: options.exp,
  };
  let jws: string;
  try {
    jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header as { alg: string })
      .sign(options.privateKey);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The signing key cannot sign ES256", { cause });
  }
  if (jws.length > MAX_KEY_RECORD_LENGTH) throw invalid("The key record is too long");
  return jws;
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(utf8Strict.decode(decodeBase64url(segment)));
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (cause) {
    throw invalid(`The key record's ${what} is not a base64url JSON object`, cause);
  }
}

type CertificateRef = { readonly x5u: string } | { readonly x5c: readonly Uint8Array[] };

function certificateRef(header: Record<string, unknown>): CertificateRef {
  const { x5u, x5c } = header;
  if ((x5u === undefined) === (x5c === undefined)) {
    throw invalid("A key record names its certificate by x5c or x5u, exactly one");
  }
  if (x5c === undefined) {
    if (typeof x5u !== "string" || x5u.length === 0 || x5u.length > MAX_X5U_LENGTH) {
      throw invalid("x5u is not a URL");
    }
    return { x5u };
  }
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_CHAIN_LENGTH) {
    throw invalid(`x5c is a list of 1 to ${MAX_CHAIN_LENGTH} certificates`);
  }
  return {
    x5c: x5c.map((c: unknown) => {
      if (typeof c !== "string" || !STD_BASE64.test(c)) throw invalid("x5c entries are base64 DER");
      try {
        return Uint8Array.from(atob(c), (ch) => ch.charCodeAt(0));
      } catch (cause) {
        throw invalid("x5c entries are base64 DER", cause);
      }
    }),
  };
}

/** Checks every payload member (no crypto); returns the claims, the raw key and the parsed blocks. */
function parseClaims(payload: Record<string, unknown>): {
  claims: KeyRecordClaims;
  publicKey: Uint8Array;
  blocks: NumberBlock[];
} {
  for (const name of Object.keys(payload)) {
    if (!(PAYLOAD_MEMBERS as readonly string[]).includes(name))
      throw invalid("Unknown member in the payload");
  }
  const { v, jwk, blocks, label, iat, nbf, exp } = payload;
  if (v !== KEY_RECORD_VERSION) throw invalid("Only version 1 key records are understood");
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) throw invalid("jwk is not a JWK");
  for (const name of Object.keys(jwk)) {
    if (!(JWK_MEMBERS as readonly string[]).includes(name)) throw invalid("jwk has only kty, crv and x");
  }
  let publicKey: Uint8Array;
  try {
    publicKey = x25519FromJwk(jwk);
  } catch (cause) {
    throw invalid("jwk is not an X25519 public key", cause);
  }
  const parsed = parseBlocks(blocks, false);
  if (typeof label !== "string" || !KEY_LABEL.test(label)) {
    throw invalid("label is 1-32 characters of letters, digits, space and ._:@-");
  }
  checkWindow(nbf, exp, iat);
  const x = (jwk as { x: string }).x;
  return {
    claims: {
      v: 1,
      jwk: { kty: "OKP", crv: "X25519", x },
      blocks: parsed.map(formatBlock),
      label,
      iat: iat as number,
      nbf: nbf as number,
      exp: exp as number,
    },
    publicKey,
    blocks: parsed,
  };
}

/**
 * Verifies a key record: shape, header, payload, window, number, signature, chain, coverage.
 * Throws CpsError `KEY_RECORD_INVALID`, `KEY_RECORD_EXPIRED`, `KEY_RECORD_NOT_FOR_TN`, the
 * validator's `CERT_*` codes (and `X5U_FETCH_FAILED` from the resolver), or `CERT_NOT_AUTHORISED`.
 *
 * @example
 * const { publicKey, kid } = await verifyKeyRecord(jwk.record, { validator, tn: "12025550142" });
 */
export async function verifyKeyRecord(
  jws: unknown,
  options: VerifyKeyRecordOptions,
): Promise<VerifiedKeyRecord> {
  if (typeof jws !== "string" || jws.length === 0) throw invalid("A key record is JWS compact text");
  if (jws.length > MAX_KEY_RECORD_LENGTH) throw invalid("The key record is too long");
  // Three base64url segments and nothing else (no padding, no white space): one text per record.
  if (!COMPACT.test(jws)) throw invalid("A key record is JWS compact text: header.payload.signature");
  const parts = jws.split(".");
  const header = decodeSegment(parts[0] as string, "header");
  if (header.alg !== KEY_RECORD_ALG) throw invalid("A key record is signed with ES256");
  if (typeof header.typ !== "string" || header.typ.toLowerCase() !== KEY_RECORD_TYP) {
    throw invalid(`typ is ${KEY_RECORD_TYP}`);
  }
  // RFC 7515 §4.1.11: a verifier must refuse critical extensions it does not understand; we know none.
  if (header.crit !== undefined) throw invalid("crit is not supported");
  const ref = certificateRef(header);
  const { claims, publicKey, blocks } = parseClaims(decodeSegment(parts[1] as string, "payload"));

  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (now + KEY_RECORD_SKEW_SECONDS < claims.nbf || now >= claims.exp) {
    throw new CpsError("KEY_RECORD_EXPIRED", "The key record is not valid now (nbf..exp)");
  }
  if (options.tn !== undefined && !blocks.some((b) => blockContainsTn(b, options.tn as string))) {
    throw new CpsError("KEY_RECORD_NOT_FOR_TN", "The key record does not name this number");
  }

  let chain: CertificateChain;
  if ("x5c" in ref) chain = await parseCertificateChain(ref.x5c);
  else {
    if (options.resolveX5u === undefined) throw invalid("x5u key records are not accepted here");
    chain = await options.resolveX5u(ref.x5u);
  }
  const leaf = chain.certificates[0];
  if (leaf === undefined) throw new CpsError("CERT_MALFORMED", "The certificate chain is empty");
  // The signature first, with the leaf's key: a record that was tampered with costs no path building.
  try {
    await compactVerify(jws, await certificatePublicKey(leaf), { algorithms: [KEY_RECORD_ALG] });
  } catch (cause) {
    if (cause instanceof CpsError) throw cause;
    throw invalid("The key record's signature does not verify", cause);
  }
  const certificate = await options.validator.validate(chain, new Date(now * 1000));
  const spcs = options.spcNumberBlocks ?? new Map();
  for (const block of blocks) {
    if (!tnAuthListCoversBlock(certificate.tnAuthList, block, spcs)) {
      throw new CpsError("CERT_NOT_AUTHORISED", "The certificate's TNAuthList does not cover every block");
    }
  }
  // The same formula as authority.ts holderId: issuer and subject of the leaf.
  const holder = await hash128Hex(`${certificate.leaf.issuer}\n${certificate.leaf.subject}`);
  return { claims, kid: await jwkThumbprint(publicKey), publicKey, blocks, certificate, holder };
}
