/**
 * PASSporT (RFC 8225) with the SHAKEN extension (RFC 8588): create, convert between full and compact
 * form, and verify.
 *
 * Signing and verification go through jose on WebCrypto (ES256 only, RFC 8225 §8 / RFC 8588 §3). Every
 * jose or JSON failure is turned into a `CpsError` at this boundary, so callers see stable codes only.
 */
import { CompactSign, compactVerify } from "jose";
import { CpsError } from "../errors.js";
import { encodeBase64url } from "./base64url.js";
import { isCanonicalTn } from "./tn.js";

/** The only algorithm accepted: RFC 8588 §3 mandates ES256 for SHAKEN, and we need nothing else. */
export const PASSPORT_ALG = "ES256";
/** Default `iat` freshness window in seconds (RFC 8224 §6.2.2 suggests 60 s). */
export const DEFAULT_FRESHNESS_SECONDS = 60;
/** A PASSporT this long is refused before any parsing (SHAKEN ones are about 500 bytes). */
export const MAX_PASSPORT_LENGTH = 8192;

export type Attestation = "A" | "B" | "C";

/** `orig` claim (RFC 8225 §5.2.1): exactly one of `tn` or `uri`. */
export type PassportOrig = { readonly tn: string } | { readonly uri: string };

/** `dest` claim (RFC 8225 §5.2.1): arrays of `tn` and/or `uri`. */
export interface PassportDest {
  readonly tn?: readonly string[];
  readonly uri?: readonly string[];
}

/** Protected header of a PASSporT (RFC 8225 §4). */
export interface PassportHeader {
  readonly alg: typeof PASSPORT_ALG;
  readonly typ: "passport";
  readonly ppt?: string;
  readonly x5u: string;
}

/** `div` claim of a diversion PASSporT (RFC 8946 §3): the one destination the call was diverted from. */
export type PassportDiv = { readonly tn: string } | { readonly uri: string };

/** PASSporT claims: the RFC 8225 base set plus the SHAKEN `attest` and `origid` (RFC 8588 §4). */
export interface PassportClaims {
  readonly orig: PassportOrig;
  readonly dest: PassportDest;
  readonly iat: number;
  readonly attest?: Attestation;
  readonly origid?: string;
  readonly [claim: string]: unknown;
}

export interface DecodedPassport {
  readonly header: PassportHeader;
  readonly claims: PassportClaims;
}

export interface VerifyPassportOptions {
  /** Current time in seconds since the epoch; defaults to the clock. */
  readonly now?: number;
  /** Largest accepted |now - iat| in seconds (default 60). */
  readonly freshnessSeconds?: number;
  /** `ppt` values accepted besides none at all (default `["shaken"]`). */
  readonly supportedPpt?: readonly string[];
}

/** Resolves the verification key from the (already checked) header, typically through its `x5u`. */
export type PassportKeyResolver = (header: PassportHeader) => CryptoKey | Promise<CryptoKey>;

// ---------------------------------------------------------------------------------------------
// Deterministic JSON, RFC 8225 §9

/**
 * The deterministic JSON form of RFC 8225 §9: object keys sorted lexicographically, no insignificant
 * whitespace, no escaping beyond what JSON requires (JSON.stringify escapes neither `/` nor non-ASCII).
 * Keys are sorted by UTF-16 code unit, which equals code point order for the ASCII claim names in use.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const out = JSON.stringify(value);
    if (out === undefined || (typeof value === "number" && !Number.isFinite(value))) {
      throw new CpsError("PASSPORT_CLAIMS", "A claim value cannot be serialised");
    }
    return out;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

// ---------------------------------------------------------------------------------------------
// Shapes

const ATTEST = new Set(["A", "B", "C"]);
const MAX_URI = 2048;

function claimsError(message: string): CpsError {
  return new CpsError("PASSPORT_CLAIMS", message);
}

function isUri(value: unknown): value is string {
  // RFC 8225 §5.2.1: a URI with a scheme; we do not resolve it, only check the shape.
  return typeof value === "string" && value.length <= MAX_URI && /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(value);
}

// An http(s) URL with a host; the x5u fetcher parses it fully (and insists on https) before use.
const HTTP_URL = /^https?:\/\/[^\s/?#@]+(?:[/?#]\S*)?$/i;

function isHttpUrl(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_URI && HTTP_URL.test(value);
}

function checkOrig(orig: unknown): PassportOrig {
  if (orig === null || typeof orig !== "object" || Array.isArray(orig))
    throw claimsError("orig is not an object");
  const o = orig as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 1) throw claimsError("orig must carry exactly one of tn or uri");
  // RFC 8225 §5.2.1: `tn` is in the canonical form of RFC 8224 §8.3 (digits only).
  if ("tn" in o) {
    if (typeof o.tn !== "string" || !isCanonicalTn(o.tn))
      throw claimsError("orig.tn is not a canonical number");
    return { tn: o.tn };
  }
  if ("uri" in o) {
    if (!isUri(o.uri)) throw claimsError("orig.uri is not a URI");
    return { uri: o.uri };
  }
  throw claimsError("orig must carry tn or uri");
}

function checkDest(dest: unknown): PassportDest {
  if (dest === null || typeof dest !== "object" || Array.isArray(dest))
    throw claimsError("dest is not an object");
  const d = dest as Record<string, unknown>;
  const out: { tn?: string[]; uri?: string[] } = {};
  for (const key of Object.keys(d)) {
    const list = d[key];
    if (!Array.isArray(list) || list.length === 0 || list.length > 64) {
      throw claimsError(`dest.${key === "tn" || key === "uri" ? key : "entry"} is not a non-empty array`);
    }
    if (key === "tn") {
      if (!list.every((t) => typeof t === "string" && isCanonicalTn(t)))
        throw claimsError("dest.tn is invalid");
      out.tn = list as string[];
    } else if (key === "uri") {
      if (!list.every(isUri)) throw claimsError("dest.uri is invalid");
      out.uri = list as string[];
    } else {
      throw claimsError("dest has an unknown member");
    }
  }
  if (out.tn === undefined && out.uri === undefined) throw claimsError("dest names no destination");
  return out;
}

/** `div` claim (RFC 8946 §3): an object with exactly one `tn` (canonical, one string, not an array) or `uri`. */
function checkDiv(div: unknown): PassportDiv {
  if (div === null || typeof div !== "object" || Array.isArray(div))
    throw claimsError("div is not an object");
  const d = div as Record<string, unknown>;
  const keys = Object.keys(d);
  if (keys.length !== 1) throw claimsError("div must carry exactly one of tn or uri");
  if ("tn" in d) {
    if (typeof d.tn !== "string" || !isCanonicalTn(d.tn))
      throw claimsError("div.tn is not a canonical number");
    return { tn: d.tn };
  }
  if ("uri" in d && isUri(d.uri)) return { uri: d.uri };
  throw claimsError("div must carry tn or uri");
}

/** `opt` claim (RFC 8946 §5): the PASSporT diverted, as a full-form JWS string. */
function checkOpt(opt: unknown): string {
  if (typeof opt !== "string" || opt.length > MAX_PASSPORT_LENGTH || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(opt)) {
    throw claimsError("opt is not a full-form PASSporT");
  }
  return opt;
}

/** Checks claim shapes (RFC 8225 §5, RFC 8588 §4 when `ppt` is shaken, RFC 8946 §3/§5 for div/div-o); throws `PASSPORT_CLAIMS`. */
export function checkPassportClaims(claims: unknown, ppt?: string): PassportClaims {
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    throw claimsError("The payload is not a JSON object");
  }
  const c = claims as Record<string, unknown>;
  const iat = c.iat;
  // RFC 8225 §5.1.1: iat is a NumericDate (RFC 7519), an integer here.
  if (typeof iat !== "number" || !Number.isSafeInteger(iat) || iat < 0)
    throw claimsError("iat is not a NumericDate");
  const out: Record<string, unknown> = { ...c, orig: checkOrig(c.orig), dest: checkDest(c.dest), iat };
  if (ppt === "shaken") {
    if (typeof c.attest !== "string" || !ATTEST.has(c.attest)) throw claimsError("attest must be A, B or C");
    if (typeof c.origid !== "string" || c.origid.length === 0 || c.origid.length > 256) {
      throw claimsError("origid must be a non-empty string");
    }
  }
  // RFC 8946 §3: every `div` PASSporT carries a `div` claim naming ONE earlier destination; `div-o`
  // (§5) adds `opt`, the earlier PASSporT itself in full form. How the links chain is diversion.ts.
  if (ppt === "div" || ppt === "div-o") out.div = checkDiv(c.div);
  if (ppt === "div-o") out.opt = checkOpt(c.opt);
  return out as PassportClaims;
}

function checkHeader(header: unknown, supportedPpt: readonly string[]): PassportHeader {
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new CpsError("PASSPORT_MALFORMED", "The header is not a JSON object");
  }
  const h = header as Record<string, unknown>;
  // RFC 8588 §3 and RFC 8225 §8: ES256. `none`, HMAC and RSA are all refused here, before any crypto.
  if (h.alg !== PASSPORT_ALG) throw new CpsError("PASSPORT_ALG", "Only ES256 PASSporTs are accepted");
  if (h.typ !== "passport") throw new CpsError("PASSPORT_MALFORMED", "typ must be passport");
  if (h.ppt !== undefined && (typeof h.ppt !== "string" || !supportedPpt.includes(h.ppt))) {
    throw new CpsError("PASSPORT_PPT_UNSUPPORTED", "The PASSporT extension is not supported");
  }
  // We never process critical extensions (RFC 7515 §4.1.11); RFC 8225 §8.1 lists none for shaken.
  if (h.crit !== undefined) throw new CpsError("PASSPORT_MALFORMED", "crit is not supported");
  if (!isHttpUrl(h.x5u)) throw new CpsError("PASSPORT_MALFORMED", "x5u is missing or not a URL");
  return h as unknown as PassportHeader;
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const B64URL = /^[A-Za-z0-9_-]*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point.
const ASCII = /^[\x00-\x7f]*$/;

function b64urlEncode(text: string): string {
  return encodeBase64url(encoder.encode(text));
}

function b64urlDecodeJson(segment: string): unknown {
  if (!B64URL.test(segment) || segment.length % 4 === 1) {
    throw new CpsError("PASSPORT_MALFORMED", "A PASSporT segment is not base64url");
  }
  try {
    const bin = atob(segment.replace(/-/g, "+").replace(/_/g, "/"));
    // Hot path: PASSporT JSON is ASCII, and then the binary string is already the text.
    if (ASCII.test(bin)) return JSON.parse(bin);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new CpsError("PASSPORT_MALFORMED", "A PASSporT segment is not JSON", { cause });
  }
}

function splitJws(jws: unknown): [string, string, string] {
  if (typeof jws !== "string" || jws.length > MAX_PASSPORT_LENGTH) {
    throw new CpsError("PASSPORT_MALFORMED", "The PASSporT is not a JWS of a sane size");
  }
  const parts = jws.split(".");
  if (parts.length !== 3) throw new CpsError("PASSPORT_MALFORMED", "A PASSporT has three segments");
  return parts as [string, string, string];
}

// ---------------------------------------------------------------------------------------------
// Create

export interface CreatePassportInput {
  /** Certificate URL for the `x5u` header (RFC 8225 §4.3). */
  readonly x5u: string;
  /** Extension name; `shaken` requires `attest` and `origid` (RFC 8588). */
  readonly ppt?: string;
  readonly claims: PassportClaims;
}

/**
 * Signs a full-form PASSporT (RFC 8225 §7). Header and payload are both in the deterministic JSON
 * form of §9, so the compact form can later be rebuilt byte for byte.
 *
 * @example
 * const jws = await createPassport({ x5u, ppt: "shaken", claims: { attest: "A", dest: { tn: ["12125551213"] },
 *   iat: 1443208345, orig: { tn: "12155551212" }, origid: "123e4567-e89b-12d3-a456-426655440000" } }, key);
 */
export async function createPassport(input: CreatePassportInput, privateKey: CryptoKey): Promise<string> {
  const header = checkHeader(
    { alg: PASSPORT_ALG, typ: "passport", ppt: input.ppt, x5u: input.x5u },
    input.ppt === undefined ? [] : [input.ppt],
  );
  const claims = checkPassportClaims(input.claims, input.ppt);
  // JSON.parse keeps the sorted key order, and jose serialises the header with JSON.stringify.
  const sortedHeader = JSON.parse(canonicalJson(header)) as Record<string, unknown>;
  try {
    return await new CompactSign(encoder.encode(canonicalJson(claims)))
      .setProtectedHeader({ ...sortedHeader, alg: PASSPORT_ALG })
      .sign(privateKey);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The signing key cannot sign ES256", { cause });
  }
}

// ---------------------------------------------------------------------------------------------
// Full and compact form (RFC 8225 §7)

/** Full form to compact form: the payload segment is dropped (`header..signature`, RFC 8225 §7). */
export function toCompactForm(fullForm: string): string {
  const [h, p, s] = splitJws(fullForm);
  if (p.length === 0) throw new CpsError("PASSPORT_MALFORMED", "The PASSporT is already in compact form");
  return `${h}..${s}`;
}

/**
 * Compact form to full form: the payload is rebuilt from claims recovered from the call signalling, in
 * the deterministic JSON of RFC 8225 §9. If any claim differs, the signature will not verify.
 */
export function fromCompactForm(compactForm: string, claims: PassportClaims): string {
  const [h, p, s] = splitJws(compactForm);
  if (p.length !== 0) throw new CpsError("PASSPORT_MALFORMED", "The PASSporT is not in compact form");
  return `${h}.${b64urlEncode(canonicalJson(claims))}.${s}`;
}

// ---------------------------------------------------------------------------------------------
// Decode and verify

/** Decodes and shape-checks a full-form PASSporT without checking its signature or time. */
export function decodePassport(jws: string, options: VerifyPassportOptions = {}): DecodedPassport {
  const [h, p] = splitJws(jws);
  if (p.length === 0) throw new CpsError("PASSPORT_MALFORMED", "A compact-form PASSporT needs its claims");
  const header = checkHeader(b64urlDecodeJson(h), options.supportedPpt ?? ["shaken"]);
  const claims = checkPassportClaims(b64urlDecodeJson(p), header.ppt);
  return { header, claims };
}

/** Throws `PASSPORT_STALE` when `iat` is outside the freshness window (RFC 8224 §6.2.2). */
export function checkFreshness(iat: number, options: VerifyPassportOptions = {}): void {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const window = options.freshnessSeconds ?? DEFAULT_FRESHNESS_SECONDS;
  if (Math.abs(now - iat) > window) throw new CpsError("PASSPORT_STALE", "The PASSporT iat is not fresh");
}

/**
 * Verifies a full-form PASSporT: header (ES256, `typ`, supported `ppt`, `x5u`), signature, claim
 * shapes and `iat` freshness. The key is given, or resolved from the checked header (x5u lookup).
 *
 * @example
 * const { claims } = await verifyPassport(jws, publicKey, { freshnessSeconds: 60 });
 */
export async function verifyPassport(
  jws: string,
  key: CryptoKey | PassportKeyResolver,
  options: VerifyPassportOptions = {},
): Promise<DecodedPassport> {
  const decoded = decodePassport(jws, options);
  const cryptoKey = typeof key === "function" ? await key(decoded.header) : key;
  await verifyPassportSignature(jws, cryptoKey);
  checkFreshness(decoded.claims.iat, options);
  return decoded;
}

/**
 * Checks only the ES256 signature of a JWS (RFC 7515 §5.2 through jose), no claim or time checks.
 * For known-answer tests and for callers that checked the claims themselves.
 */
export async function verifyPassportSignature(jws: string, key: CryptoKey): Promise<void> {
  splitJws(jws);
  try {
    await compactVerify(jws, key, { algorithms: [PASSPORT_ALG] });
  } catch (cause) {
    if (cause instanceof Error && (cause as { code?: string }).code === "ERR_JOSE_ALG_NOT_ALLOWED") {
      throw new CpsError("PASSPORT_ALG", "Only ES256 PASSporTs are accepted", { cause });
    }
    throw new CpsError("PASSPORT_SIGNATURE", "The PASSporT signature does not verify", { cause });
  }
}
