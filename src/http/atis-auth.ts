/**
 * The access JWT of the ATIS routes (ATIS-1000096, ATIS-1000105, draft-wendt-stir-vesper-oob;
 * docs/atis-api.md "The access JWT"): `Authorization: Bearer <ES256 JWT>` with the signer's STIR
 * certificate by x5u or x5c, verified by `verifyCredentialToken` with the isolate's validator
 * (revocation included) and x5u fetcher of src/http/credential-auth.ts, its `jti` spent in the
 * ReplayGuard like every credential token.
 *
 * Order (so a token that is already wrong never costs a certificate fetch, threat model #10, and a
 * refused request spends nothing, docs/design.md invariant 7): the generic claim checks and the ATIS
 * claims against the path and body (src/stir/atis-claims.ts `checkAtisClaims`), then the chain and
 * signature, then in `beforeSpend`: the rate limit per credential, the certificate's coverage of
 * `spc`/`iss`/`sub`, and the route's own checks (authorisation, Idempotency-Key, every published
 * PASSporT); only then is the `jti` spent.
 *
 * Also here: the rate limit (Workers Rate Limiting binding ATIS_RATE_LIMITER, per credential holder),
 * the key resolver for published PASSporTs, and the Idempotency-Key scope and request fingerprint.
 */
import type { CpsConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import {
  type AtisClaimExpectations,
  type AtisClaims,
  checkAtisClaims,
  checkAtisCoverage,
} from "../stir/atis-claims.js";
import { IDEMPOTENCY_KEY } from "../stir/atis-passports.js";
import { holderId } from "../stir/authority.js";
import { encodeBase64url } from "../stir/base64url.js";
import {
  bearerToken,
  type VerifiedCredentialToken,
  verifyCredentialToken,
} from "../stir/credential-token.js";
import { canonicalJson, type PassportHeader } from "../stir/passport.js";
import { fetchersFor, replayGuard, validatorFor } from "./credential-auth.js";

/** A token that passed every check of `verifyAtisToken`, and what the checks found. */
export interface AtisAccess {
  readonly verified: VerifiedCredentialToken;
  readonly claims: AtisClaims;
  /** The credential holder (src/stir/authority.ts `holderId`): the rate limit's and idempotency's key. */
  readonly holder: string;
  /** The SPC recorded with published rows (`checkAtisCoverage`). */
  readonly publisherSpc: string | null;
}

/**
 * The route's checks after the chain validated and before the `jti` is spent: throw to refuse
 * (nothing spent); return `false` for an exact idempotent repeat (the `jti` is not spent again).
 */
export type AtisBeforeSpend = (access: AtisAccess) => Promise<boolean | undefined>;

/**
 * The `aud` values this CPS accepts on the ATIS routes: its host (with the port, if any), its host
 * name, and its origin. TransNexus's sample and VESPER send the CPS host name; our clients the origin.
 */
export function atisAudiences(cpsOrigin: string): string[] {
  const url = new URL(cpsOrigin);
  return [...new Set([url.host, url.hostname, url.origin])];
}

/** Seconds a rate-limited credential is told to wait: the binding's period (wrangler.toml). */
export const ATIS_RATE_LIMIT_RETRY_AFTER = 10;

/**
 * Counts one request of `holder` against ATIS_RATE_LIMITER; throws 429 ATIS_RATE_LIMITED over the
 * limit. No binding: no limit. A binding that fails lets the request through (logged): it is a ceiling
 * against floods, local to a Cloudflare location, not an exact count (docs/atis-api.md "Rate limit").
 */
export async function atisRateLimit(env: Env, holder: string): Promise<void> {
  const limiter = (env as { ATIS_RATE_LIMITER?: RateLimit }).ATIS_RATE_LIMITER;
  if (limiter === undefined) return;
  let success: boolean;
  try {
    ({ success } = await limiter.limit({ key: holder }));
  } catch {
    logEvent({ event: "atis_rate_limit_unavailable", code: "UNAVAILABLE" });
    return;
  }
  if (!success) {
    throw new CpsError("ATIS_RATE_LIMITED", "Too many requests from this credential", {
      retryAfter: ATIS_RATE_LIMIT_RETRY_AFTER,
    });
  }
}

/**
 * Verifies the ATIS access token of a request (see the module comment for the order). `expect` is
 * what the path and body say (`checkAtisClaims`); `beforeSpend` the route's own checks.
 */
export async function verifyAtisToken(
  env: Env,
  config: CpsConfig,
  authorization: string | undefined,
  expect: AtisClaimExpectations,
  beforeSpend: AtisBeforeSpend,
): Promise<AtisAccess> {
  const token = bearerToken(authorization);
  if (config.cpsOrigin === "") throw new CpsError("MISCONFIGURED", "Set CPS_ORIGIN", { status: 503 });
  const fetcher = fetchersFor(config).x5u;
  let claims: AtisClaims | undefined;
  let access: AtisAccess | undefined;
  await verifyCredentialToken(token, {
    // CPS_ORIGIN, never the Host header (threat model #11).
    audience: atisAudiences(config.cpsOrigin),
    actions: expect.actions,
    validator: await validatorFor(config),
    fetchChain: (url) => fetcher.fetchChain(url),
    replayCheck: (jti, expiresAt) => replayGuard(env, jti).claim(jti, expiresAt),
    checkClaims: (c) => {
      claims = checkAtisClaims(c, expect);
    },
    beforeSpend: async (verified) => {
      if (claims === undefined) throw new CpsError("INTERNAL", "Internal error");
      const holder = await holderId(verified);
      // First, so a flood of valid tokens costs one counter each and nothing more.
      await atisRateLimit(env, holder);
      const { publisherSpc } = checkAtisCoverage(verified.tnAuthList, claims, config.spcNumberBlocks);
      access = { verified, claims, holder, publisherSpc };
      return beforeSpend(access);
    },
  });
  if (access === undefined) throw new CpsError("INTERNAL", "Internal error");
  return access;
}

/**
 * Resolves a published PASSporT's key (src/stir/atis-passports.ts `verifyPublishedPassport`): its
 * x5u through the isolate's fetcher (the x5u URL rules, X5U_ALLOWED_HOSTS, ALLOW_LOOPBACK_X5U), the
 * chain validated to TRUST_ANCHORS_PEM, revocation included.
 */
export async function passportKeyResolver(
  config: CpsConfig,
  now: number,
): Promise<(header: PassportHeader) => Promise<CryptoKey>> {
  const fetcher = fetchersFor(config).x5u;
  const validator = await validatorFor(config);
  return async (header) => {
    const chain = await fetcher.fetchChain(header.x5u);
    return (await validator.validate(chain, new Date(now * 1000))).publicKey;
  };
}

/** The Idempotency-Key header of a publish, or undefined; 400 IDEMPOTENCY_KEY_INVALID when malformed. */
export function idempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new CpsError("IDEMPOTENCY_KEY_INVALID", "Idempotency-Key is 1 to 255 printable ASCII characters");
  }
  return header;
}

/** A key is scoped to the credential holder: another holder's same key is another request. */
export function idempotencyScope(holder: string, key: string): string {
  return `${holder}:${key}`;
}

/**
 * What makes two publishes "the same request": method, path (canonical numbers) and the body's
 * canonical JSON (RFC 8785 style, src/stir/passport.ts `canonicalJson`), SHA-256, base64url.
 */
export async function requestFingerprint(method: string, path: string, body: unknown): Promise<string> {
  const text = `${method} ${path}\n${canonicalJson(body)}`;
  return encodeBase64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))),
  );
}
