/** Cross-cutting middleware, in the order app.ts mounts them. */
import type { MiddlewareHandler } from "hono";
import { deploymentProblem, readConfig } from "../config.js";
import { CpsError, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";
import type { AppEnv } from "./types.js";

/** `deploymentProblem` per env: computed (and a refusal logged) once per isolate and env. */
const problems = new WeakMap<object, string | null>();

function problemOf(env: Env): string | null {
  const hit = problems.get(env);
  if (hit !== undefined) return hit;
  const problem = deploymentProblem(env);
  problems.set(env, problem);
  if (problem !== null) {
    logEvent({ event: "refusing to serve", code: "MISCONFIGURED", status: 503, reason: problem });
  }
  return problem;
}

/**
 * The serving guard (config.ts `deploymentProblem`): without a CPS_ORIGIN or a DECOY_SECRET, or with
 * a development switch and an origin that is not loopback, every request is 503 MISCONFIGURED. The
 * audience of credential tokens and the origin of discovery answers are then never taken from the
 * Host header, no answer goes out without decoys, and a dev-only setting never serves in production.
 * The reason goes to the operator's log, once.
 */
export function refuseMisconfigured(): MiddlewareHandler<AppEnv> {
  return async function refuseMisconfigured(c, next) {
    const problem = problemOf(c.env);
    if (problem === null) return next();
    return problemResponse(
      new CpsError("MISCONFIGURED", "This CPS is not configured to serve (see the operator's log)", {
        status: 503,
      }),
    );
  };
}

/** Checks the vars once and exposes the typed config to routes. */
export function withConfig(): MiddlewareHandler<AppEnv> {
  return async function withConfig(c, next) {
    c.set("config", readConfig(c.env));
    await next();
  };
}

/**
 * `Cache-Control: no-store` unless a route chose a caching policy itself: blobs, dummies and errors
 * must never sit in a shared cache.
 */
export function noStoreByDefault(): MiddlewareHandler {
  return async function noStoreByDefault(c, next) {
    await next();
    if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
  };
}
