/**
 * STIR credential authentication for the CPS's authenticated routes (token issuance, key and
 * discovery registration, push subscriptions with action `push:subscribe`): `Authorization: Bearer
 * <ES256 JWT>` carrying a STIR certificate (RFC 8226) by x5u or x5c, verified by
 * `verifyCredentialToken`, its `jti` spent in the ReplayGuard Durable Object. Routes then decide
 * TNAuthList coverage themselves (docs/design.md invariant 5).
 *
 * Revocation: the validator carries a CRL checker (src/stir/crl.ts), so every credential the CPS
 * verifies (tokens here, signed key records in src/http/directory-auth.ts) is refused with
 * `CERT_REVOKED` when a certificate of its path is listed on its issuer's CRL, and with
 * `CERT_REVOCATION_UNKNOWN` when a CRL it names cannot be fetched or used (fail closed). CRL URLs
 * follow the x5u rules and settings (X5U_ALLOWED_HOSTS, ALLOW_LOOPBACK_X5U).
 */
import type { MiddlewareHandler } from "hono";
import { type CpsConfig, readConfig } from "../config.js";
import { replayShard } from "../durable-objects/replay-guard.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import { CertificateValidator, parseCertificateChain } from "../stir/certificates.js";
import { bearerToken, verifyCredentialToken } from "../stir/credential-token.js";
import { CrlChecker } from "../stir/crl.js";
import { X5uFetcher } from "../stir/x5u.js";
import { replayGuardShard } from "../storage/objects.js";
import type { AppEnv } from "./types.js";

// Per isolate: the validator keeps the validated-chain cache, the fetcher the x5u cache, the CRL
// checker the CRL cache. Keyed by the settings they were built from, compared as they are (no key
// string built per request): the PEM as set, the parsed SPC map by identity (config.ts parses it once
// per env), the URL policy (one for x5u and CRLs) by value.
let cached:
  | {
      pem: string;
      spcNumberBlocks: CpsConfig["spcNumberBlocks"];
      crl: CrlChecker;
      validator: CertificateValidator;
    }
  | undefined;
let fetchers:
  | { allowLoopback: boolean; hosts: readonly string[]; x5u: X5uFetcher; crl: CrlChecker }
  | undefined;

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((h, i) => h === b[i]));
}

/**
 * The isolate's x5u fetcher and CRL checker for the URL policy of `config`; the ATIS routes resolve
 * published PASSporTs' x5u with the same fetcher (src/http/atis-auth.ts).
 */
export function fetchersFor(config: CpsConfig): { x5u: X5uFetcher; crl: CrlChecker } {
  if (
    fetchers === undefined ||
    fetchers.allowLoopback !== config.allowLoopbackX5u ||
    !sameHosts(fetchers.hosts, config.x5uAllowedHosts)
  ) {
    fetchers = {
      allowLoopback: config.allowLoopbackX5u,
      hosts: config.x5uAllowedHosts,
      x5u: new X5uFetcher({
        allowLoopbackHttp: config.allowLoopbackX5u,
        allowedHosts: config.x5uAllowedHosts,
        // The client sees one fixed title; the operator's log gets a reason code, never the URL or host.
        onFailure: (reason, status) =>
          logEvent({ event: "x5u_fetch_failed", reason, ...(status === undefined ? {} : { status }) }),
      }),
      // CRL distribution points under the same URL rules (docs/passport-and-credentials.md "Revocation").
      crl: new CrlChecker({
        policy: { allowLoopback: config.allowLoopbackX5u, allowedHosts: config.x5uAllowedHosts },
        onFailure: (reason, status) =>
          logEvent({ event: "crl_unusable", reason, ...(status === undefined ? {} : { status }) }),
      }),
    };
  }
  return fetchers;
}

/**
 * The isolate's validator for `config`, revocation included; the key routes verify signed key
 * records with it too.
 */
export async function validatorFor(config: CpsConfig): Promise<CertificateValidator> {
  // The SPC map decides which numbers an SPC-scoped delegate CA may hand down (RFC 9060 §4).
  const { trustAnchorsPem: pem, spcNumberBlocks } = config;
  const { crl } = fetchersFor(config);
  if (
    cached !== undefined &&
    cached.pem === pem &&
    cached.spcNumberBlocks === spcNumberBlocks &&
    cached.crl === crl
  ) {
    return cached.validator;
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CpsError("MISCONFIGURED", "Set TRUST_ANCHORS_PEM to the PEM of the STIR trust anchors");
  }
  let anchors: Awaited<ReturnType<typeof parseCertificateChain>>;
  try {
    anchors = await parseCertificateChain(pem);
  } catch {
    throw new CpsError("MISCONFIGURED", "TRUST_ANCHORS_PEM does not parse as PEM certificates");
  }
  const validator = new CertificateValidator({
    anchors: anchors.certificates,
    spcNumberBlocks,
    revocation: crl,
  });
  cached = { pem, spcNumberBlocks, crl, validator };
  return validator;
}

/** The ReplayGuard shard of a credential-token `jti`. */
export function replayGuard(env: Env, jti: string) {
  return replayGuardShard(env, replayShard(jti));
}

/**
 * Requires a valid STIR credential token whose `action` is one of `actions`; exposes the verified
 * token as `c.get("credential")`.
 */
export function requireCredential(actions: readonly string[]): MiddlewareHandler<AppEnv> {
  return async function requireCredential(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    const config = readConfig(c.env);
    if (config.cpsOrigin === "") throw new CpsError("MISCONFIGURED", "Set CPS_ORIGIN", { status: 503 });
    const fetcher = fetchersFor(config).x5u;
    const credential = await verifyCredentialToken(token, {
      // CPS_ORIGIN, never the Host header (threat model #11); the serving guard requires it.
      audience: config.cpsOrigin,
      actions,
      validator: await validatorFor(config),
      fetchChain: (url) => fetcher.fetchChain(url),
      replayCheck: (jti, expiresAt) => replayGuard(c.env, jti).claim(jti, expiresAt),
    });
    c.set("credential", credential);
    await next();
  };
}
