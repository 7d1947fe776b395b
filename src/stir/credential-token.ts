/**
 * STIR credential auth token: a short-lived ES256 bearer JWT signed with the key of a STIR certificate
 * (RFC 8226), in the shape of the ATIS-1000096 OOB bearer token. Header `alg` ES256, `typ` JWT
 * (optional), and the certificate by `x5u` (URL, RFC 7515 §4.1.5) or `x5c` (chain, RFC 7515 §4.1.6);
 * claims `iat`, `aud` (the CPS), `jti` (single use) and `action` (what the holder asks to do). The exact
 * rules are in docs/passport-and-credentials.md "Credential token: wire rules".
 *
 * Order of checks, cheapest first: shape, header, and every claim (age, audience, jti, action) before
 * anything costs the CPS work or reaches the network, so a token that is already wrong never makes the
 * CPS fetch an attacker's x5u (threat model #10). Then the certificate chain, then the signature, and
 * only then is the `jti` spent through the caller's replay check (a Durable Object at the CPS), so a
 * forged or stale token can never burn someone else's `jti`. It returns the certificate's TNAuthList,
 * so a route decides coverage of a number, range or SPC itself. Two optional hooks let a route add its
 * own rules at the same points (the ATIS routes, docs/atis-api.md): `checkClaims` with the claim
 * checks, before any certificate work, and `beforeSpend` after the signature, before the spend.
 */
import { CompactSign, compactVerify } from "jose";
import { CpsError } from "../errors.js";
import { encodeBase64, encodeBase64url } from "./base64url.js";
import { type CertificateChain, MAX_CHAIN_LENGTH, parseCertificateChain } from "./cert-parse.js";
import type { CertificateValidator, ValidatedCertificate } from "./cert-validate.js";
import type { TnAuthList } from "./tnauthlist.js";

export const CREDENTIAL_TOKEN_ALG = "ES256";
/** Default largest accepted token age, seconds. */
export const DEFAULT_CREDENTIAL_MAX_AGE = 60;
/** Tolerated clock skew for an `iat` in the future, seconds. */
export const DEFAULT_CREDENTIAL_SKEW = 5;
/** Largest accepted token, characters (a chain of a few certificates in x5c is ~3-4 KiB). */
export const MAX_CREDENTIAL_TOKEN_LENGTH = 16_384;
const JTI = /^[A-Za-z0-9_-]{16,128}$/;
const ACTION = /^[a-z][a-z0-9:._-]{0,63}$/;
// RFC 7515 §4.1.6: x5c entries are base64 (RFC 4648 §4), not base64url; padding optional, nothing else.
const STD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Replay check backed by the caller's storage: resolve `true` when `jti` is used for the first time
 * (and remember it until `expiresAt`, seconds since the epoch), `false` when it was seen before.
 */
export type ReplayCheck = (jti: string, expiresAt: number) => Promise<boolean>;

export interface IssueCredentialTokenOptions {
  /** The STIR certificate's private key (ECDSA P-256). */
  readonly privateKey: CryptoKey;
  /** Certificate URL; exactly one of `x5u` and `x5c`. */
  readonly x5u?: string;
  /** Certificate chain, leaf first, DER. */
  readonly x5c?: readonly Uint8Array[];
  /** The CPS this token is for (its origin, e.g. `https://cps.example`). */
  readonly audience: string;
  readonly action: string;
  /** Seconds since the epoch (default: clock). */
  readonly now?: number;
  /** Default: 128 random bits, base64url. */
  readonly jti?: string;
}

export interface VerifyCredentialTokenOptions {
  /**
   * This CPS's audience value(s). A string: the token's `aud` must be a string equal to it (the RFC 8816
   * routes, unchanged). A list (the ATIS routes, whose clients send the CPS host name or origin): `aud`
   * may be a string equal to one of them or an array of strings containing one (RFC 7519 §4.1.3).
   */
  readonly audience: string | readonly string[];
  /** Allowed actions for this route; omit to accept any well-formed action. */
  readonly actions?: readonly string[];
  /** Validator holding the trust anchors (and the validated-chain cache). */
  readonly validator: CertificateValidator;
  /** Resolves `x5u` URLs (an `X5uFetcher`); without it, only `x5c` tokens are accepted. */
  readonly fetchChain?: (url: string) => Promise<CertificateChain>;
  readonly replayCheck: ReplayCheck;
  /** Largest age of `iat`, seconds (default 60). */
  readonly maxAgeSeconds?: number;
  /** Seconds since the epoch (default: clock). */
  readonly now?: number;
  /**
   * Route-specific claim rules (e.g. the ATIS `orig`/`dest`/`spc`/`passports` checks), run right after
   * the built-in claim checks and BEFORE any certificate parsing or x5u fetch (threat model #10). Throw
   * a CpsError to refuse.
   */
  readonly checkClaims?: (claims: Readonly<Record<string, unknown>>) => void;
  /**
   * Run after the chain validated and the signature verified, BEFORE the `jti` is spent: throw to
   * refuse (nothing is spent), return `false` to skip spending (an exact idempotent repeat whose
   * `jti` was already spent by the first request). Anything else: the `jti` is spent as usual.
   */
  readonly beforeSpend?: (verified: VerifiedCredentialToken) => Promise<boolean | undefined>;
}

export interface VerifiedCredentialToken {
  readonly action: string;
  readonly tnAuthList: TnAuthList;
  readonly jti: string;
  readonly iat: number;
  /** The token's `exp`, when it has one. */
  readonly exp?: number;
  /** Every claim of the token, as signed. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly certificate: ValidatedCertificate;
}

/** Whether a token's `aud` names this CPS (see VerifyCredentialTokenOptions.audience). */
function audienceMatches(aud: unknown, audience: string | readonly string[]): boolean {
  if (typeof audience === "string") return aud === audience;
  if (typeof aud === "string") return audience.includes(aud);
  return Array.isArray(aud) && aud.some((a) => typeof a === "string" && audience.includes(a));
}

function randomJti(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Issues a credential token.
 *
 * @example
 * const token = await issueCredentialToken({ privateKey, x5u, audience: "https://cps.example", action: "keys:put" });
 * fetch(url, { headers: { Authorization: `Bearer ${token}` } });
 */
export async function issueCredentialToken(options: IssueCredentialTokenOptions): Promise<string> {
  if (!ACTION.test(options.action)) throw new CpsError("AUTH_ACTION", "The action is not well formed");
  const jti = options.jti ?? randomJti();
  if (!JTI.test(jti)) throw new CpsError("AUTH_MALFORMED", "The jti is not well formed");
  const claims = {
    action: options.action,
    aud: options.audience,
    iat: options.now ?? Math.floor(Date.now() / 1000),
    jti,
  };
  return signCredentialJwt(options, claims);
}

/**
 * Signs `claims` as an ES256 JWT (typ JWT) naming its certificate by exactly one of `x5u` and `x5c`:
 * the signing step of every credential token, ATIS access tokens included (src/stir/atis-token.ts).
 */
export async function signCredentialJwt(
  signer: { readonly privateKey: CryptoKey; readonly x5u?: string; readonly x5c?: readonly Uint8Array[] },
  claims: Readonly<Record<string, unknown>>,
): Promise<string> {
  if ((signer.x5u === undefined) === (signer.x5c === undefined)) {
    throw new CpsError("AUTH_MALFORMED", "A credential token names its certificate by x5u or x5c");
  }
  const header: Record<string, unknown> = { alg: CREDENTIAL_TOKEN_ALG, typ: "JWT" };
  if (signer.x5u !== undefined) header.x5u = signer.x5u;
  if (signer.x5c !== undefined) header.x5c = signer.x5c.map(encodeBase64);
  try {
    return await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header as { alg: string })
      .sign(signer.privateKey);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "The signing key cannot sign ES256", { cause });
  }
}

/** Extracts the token from an `Authorization: Bearer <token>` value (RFC 6750 §2.1). */
export function bearerToken(authorization: string | null | undefined): string {
  if (authorization === null || authorization === undefined || authorization.trim() === "") {
    throw new CpsError("AUTH_MISSING", "A bearer token is required");
  }
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(authorization);
  if (!m?.[1]) throw new CpsError("AUTH_MALFORMED", "The Authorization header is not a bearer token");
  return m[1];
}

function decodeJson(segment: string): Record<string, unknown> {
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(segment)) throw new Error("not base64url");
    const bin = atob(segment.replace(/-/g, "+").replace(/_/g, "/"));
    const value: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new CpsError("AUTH_MALFORMED", "The credential token is not a JWS", { cause });
  }
}

/** The certificate reference of a header, checked for shape only (no network, no parsing). */
type CertificateRef = { readonly x5u: string } | { readonly x5c: readonly Uint8Array[] };

function certificateRef(header: Record<string, unknown>): CertificateRef {
  const { x5u, x5c } = header;
  if ((x5u === undefined) === (x5c === undefined)) {
    throw new CpsError("AUTH_MALFORMED", "The credential token names its certificate by x5u or x5c");
  }
  if (x5c === undefined) {
    if (typeof x5u !== "string") throw new CpsError("AUTH_MALFORMED", "x5u is not a URL");
    return { x5u };
  }
  if (!Array.isArray(x5c) || x5c.length === 0 || !x5c.every((c) => typeof c === "string")) {
    throw new CpsError("AUTH_MALFORMED", "x5c is not a list of certificates");
  }
  if (x5c.length > MAX_CHAIN_LENGTH) {
    throw new CpsError("CERT_MALFORMED", "A certificate chain has 1 to 8 certificates");
  }
  try {
    return {
      x5c: (x5c as string[]).map((c) => {
        if (!STD_BASE64.test(c)) throw new Error("not standard base64");
        return Uint8Array.from(atob(c), (ch) => ch.charCodeAt(0));
      }),
    };
  } catch (cause) {
    throw new CpsError("AUTH_MALFORMED", "x5c is not base64", { cause });
  }
}

function numericDate(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new CpsError("AUTH_MALFORMED", `${name} is not a NumericDate`);
  }
  return value;
}

/**
 * Verifies a credential token and spends its `jti`. Throws `AUTH_*` or `CERT_*` CpsErrors.
 *
 * @example
 * const { action, tnAuthList } = await verifyCredentialToken(bearerToken(req.headers.get("authorization")), {
 *   audience: "https://cps.example", actions: ["keys:put"], validator, fetchChain: (u) => x5u.fetchChain(u),
 *   replayCheck: (jti, exp) => ledger.claim(jti, exp) });
 * if (!coversTn(tnAuthList, tn)) throw new CpsError("CERT_NOT_AUTHORISED", "...");
 */
export async function verifyCredentialToken(
  token: string,
  options: VerifyCredentialTokenOptions,
): Promise<VerifiedCredentialToken> {
  if (typeof token !== "string" || token.length > MAX_CREDENTIAL_TOKEN_LENGTH) {
    throw new CpsError("AUTH_MALFORMED", "The credential token is not a JWS");
  }
  const parts = token.split(".");
  if (parts.length !== 3) throw new CpsError("AUTH_MALFORMED", "The credential token is not a JWS");
  const header = decodeJson(parts[0] ?? "");
  const claims = decodeJson(parts[1] ?? "");
  if (header.alg !== CREDENTIAL_TOKEN_ALG)
    throw new CpsError("AUTH_INVALID", "Only ES256 tokens are accepted");
  if (header.crit !== undefined) throw new CpsError("AUTH_MALFORMED", "crit is not supported");
  // typ is optional (RFC 7519 §5.1); when present it must say JWT, so that no other signed object of
  // the same key (a PASSporT, typ "passport") passes for a credential token.
  if (header.typ !== undefined && (typeof header.typ !== "string" || header.typ.toUpperCase() !== "JWT")) {
    throw new CpsError("AUTH_MALFORMED", "typ must be JWT");
  }
  const ref = certificateRef(header);

  // Every claim before any certificate work or network fetch.
  const nowSec = options.now ?? Math.floor(Date.now() / 1000);
  const { iat, aud, jti, action } = claims;
  if (typeof iat !== "number" || !Number.isSafeInteger(iat))
    throw new CpsError("AUTH_MALFORMED", "iat is missing");
  if (typeof jti !== "string" || !JTI.test(jti))
    throw new CpsError("AUTH_MALFORMED", "jti is missing or invalid");
  if (typeof action !== "string" || !ACTION.test(action))
    throw new CpsError("AUTH_MALFORMED", "action is missing");
  const exp = numericDate(claims.exp, "exp");
  const nbf = numericDate(claims.nbf, "nbf");
  if (!audienceMatches(aud, options.audience))
    throw new CpsError("AUTH_AUDIENCE", "The token is for another audience");
  const maxAge = options.maxAgeSeconds ?? DEFAULT_CREDENTIAL_MAX_AGE;
  const skew = DEFAULT_CREDENTIAL_SKEW;
  if (
    nowSec - iat > maxAge ||
    iat - nowSec > skew ||
    (exp !== undefined && nowSec > exp + skew) ||
    (nbf !== undefined && nowSec + skew < nbf)
  ) {
    throw new CpsError("AUTH_EXPIRED", "The credential token is not fresh");
  }
  if (options.actions !== undefined && !options.actions.includes(action)) {
    throw new CpsError("AUTH_ACTION", "The token does not allow this action");
  }
  options.checkClaims?.(claims);

  let chain: CertificateChain;
  if ("x5c" in ref) {
    chain = await parseCertificateChain(ref.x5c);
  } else {
    if (options.fetchChain === undefined)
      throw new CpsError("AUTH_INVALID", "x5u credential tokens are not accepted here");
    chain = await options.fetchChain(ref.x5u);
  }
  const certificate = await options.validator.validate(chain, new Date(nowSec * 1000));
  try {
    await compactVerify(token, certificate.publicKey, { algorithms: [CREDENTIAL_TOKEN_ALG] });
  } catch (cause) {
    throw new CpsError("AUTH_INVALID", "The credential token signature does not verify", { cause });
  }
  const verified: VerifiedCredentialToken = {
    action,
    tnAuthList: certificate.tnAuthList,
    jti,
    iat,
    ...(exp === undefined ? {} : { exp }),
    claims,
    certificate,
  };
  // The route's own checks (authorisation, body verification) before the spend, so a refused request
  // leaves the jti unspent; `false` = an exact idempotent repeat, answered without spending again.
  const spend = options.beforeSpend === undefined ? true : await options.beforeSpend(verified);
  // Last: only a token that passed everything else may spend its jti.
  if (spend !== false && !(await options.replayCheck(jti, iat + maxAge))) {
    throw new CpsError("AUTH_REPLAYED", "The credential token was already used");
  }
  return verified;
}
