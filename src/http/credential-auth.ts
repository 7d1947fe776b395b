/**
 * STIR credential authentication for the CPS's authenticated routes (token issuance, key and
 * discovery registration): `Authorization: Bearer <ES256 JWT>` carrying a STIR certificate
 * (RFC 8226) by x5u or x5c, verified by `verifyCredentialToken`, its `jti` spent in the ReplayGuard
 * Durable Object. Routes then decide TNAuthList coverage themselves (DESIGN.md invariant 5).
 */
import type { MiddlewareHandler } from "hono";
import type { ReplayGuard } from "../durable-objects/replay-guard.js";
import { replayShard } from "../durable-objects/replay-guard.js";
import { CpsError } from "../errors.js";
import { CertificateValidator, parseCertificateChain } from "../stir/certificates.js";
import { bearerToken, verifyCredentialToken } from "../stir/credential-token.js";
import { X5uFetcher } from "../stir/x5u.js";
import type { AppEnv } from "./types.js";

// Per isolate: the validator keeps the validated-chain cache, the fetcher the x5u cache.
let cached: { pem: string; validator: CertificateValidator } | undefined;
let x5u: X5uFetcher | undefined;

async function validatorFor(env: Env): Promise<CertificateValidator> {
  const pem = env.TRUST_ANCHORS_PEM ?? "";
  if (cached?.pem === pem) return cached.validator;
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CpsError("MISCONFIGURED", "Set TRUST_ANCHORS_PEM to the PEM of the STIR trust anchors");
  }
  let anchors: Awaited<ReturnType<typeof parseCertificateChain>>;
  try {
    anchors = await parseCertificateChain(pem);
  } catch {
    throw new CpsError("MISCONFIGURED", "TRUST_ANCHORS_PEM does not parse as PEM certificates");
  }
  const validator = new CertificateValidator({ anchors: anchors.certificates });
  cached = { pem, validator };
  return validator;
}

function replayGuard(env: Env, jti: string): DurableObjectStub<ReplayGuard> {
  const ns = env.REPLAY_GUARD as DurableObjectNamespace<ReplayGuard>;
  return ns.get(ns.idFromName(`jti-shard-${replayShard(jti)}`));
}

/** This CPS's audience: CPS_ORIGIN when set (behind proxies), else the request's origin. */
export function audienceOf(env: Env, requestUrl: string): string {
  return env.CPS_ORIGIN || new URL(requestUrl).origin;
}

/**
 * Requires a valid STIR credential token whose `action` is one of `actions`; exposes the verified
 * token as `c.get("credential")`.
 */
export function requireCredential(actions: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    x5u ??= new X5uFetcher({ allowLoopbackHttp: c.env.ALLOW_LOOPBACK_X5U === "true" });
    const fetcher = x5u;
    const credential = await verifyCredentialToken(token, {
      audience: audienceOf(c.env, c.req.url),
      actions,
      validator: await validatorFor(c.env),
      fetchChain: (url) => fetcher.fetchChain(url),
      replayCheck: (jti, expiresAt) => replayGuard(c.env, jti).claim(jti, expiresAt),
    });
    c.set("credential", credential);
    await next();
  };
}
