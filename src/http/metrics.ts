/**
 * Counting for the operator's figures (docs/metrics.md) and the operator credential of the routes
 * that show them.
 *
 * `collectMetrics` runs around every route: after the answer it files the request under its route
 * PATTERN (`/cps/{tn}/ppts`, never the path, which names a number), a method and status from closed
 * sets, the problem's `code`, and the few facts a route's status tells (a store, a retrieval, a
 * token spent or issued) in this isolate's memory, then flushes to the MetricsHub at most every
 * FLUSH_MS in the background. Nothing of the request other than those labels is kept
 * (docs/design.md invariant 6). Latency is the Worker's own time from this middleware to the answer,
 * as the runtime's clock shows it (it advances across I/O).
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { CpsError, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";
import { Collector } from "../metrics/collector.js";
import {
  addRequest,
  errorLabel,
  methodLabel,
  routeLabel,
  type Sample,
  statusLabel,
} from "../metrics/sample.js";
import { decodeBase64url } from "../stir/base64url.js";
import { metricsHub } from "../storage/objects.js";
import type { AppEnv } from "./types.js";

/** This isolate's counts since its last flush. */
const collector = new Collector();

/** Which route answers count as what (route labels as routeLabel gives them). */
const RETRIEVALS: Record<string, string> = {
  "GET /cps/{tn}/ppts": "list",
  "GET /cps/{tn}/ppts/{id}": "one",
  "GET /cps/blocks/{block}/ppts": "block",
};
const STORE = "POST /cps/{tn}/ppts";
const ISSUE = "POST /tokens";

/** The `code` of a problem answer: from the thrown CpsError, else read from the (small) body. */
async function problemCode(c: Parameters<MiddlewareHandler<AppEnv>>[0]): Promise<string> {
  if (c.error instanceof CpsError) return errorLabel(c.error.code);
  if (!c.res.headers.get("Content-Type")?.startsWith("application/problem+json")) return "OTHER";
  try {
    const body = (await c.res.clone().json()) as { code?: unknown };
    return errorLabel(body?.code);
  } catch {
    return "OTHER";
  }
}

/** Blind signatures in a 200 answer of POST /tokens. */
async function issuedCount(res: Response): Promise<number> {
  try {
    const body = (await res.clone().json()) as { blindSignatures?: unknown };
    return Array.isArray(body?.blindSignatures) ? body.blindSignatures.length : 0;
  } catch {
    return 0;
  }
}

/**
 * Labels by method and matched pattern, as computed once: both come from small sets (the router's
 * patterns; the methods clients send), and the map stops growing at MAX_KEYS, so a client inventing
 * methods only makes its own requests compute their label again.
 */
const keys = new Map<string, string>();
const MAX_KEYS = 256;

function requestKey(method: string, pattern: string): string {
  const raw = `${method} ${pattern}`;
  let key = keys.get(raw);
  if (key === undefined) {
    key = `${methodLabel(method)} ${routeLabel(pattern)}`;
    if (keys.size < MAX_KEYS) keys.set(raw, key);
  }
  return key;
}

async function record(
  c: Parameters<MiddlewareHandler<AppEnv>>[0],
  s: Sample,
  seconds: number,
): Promise<void> {
  // -1: the last route the router matched; with only middleware matched, a wildcard (unmatched).
  const key = requestKey(c.req.method, routePath(c, -1));
  const status = c.res.status;
  addRequest(s, key, statusLabel(status), seconds);
  if (status >= 400) {
    const code = await problemCode(c);
    s.errors[code] = (s.errors[code] ?? 0) + 1;
  } else if (status === 201 && key === STORE) {
    s.stores++;
    if (c.req.header("CPS-Token") !== undefined) s.tokensSpent++;
  } else if (status === 200) {
    const kind = RETRIEVALS[key] ?? RETRIEVALS[key.replace(/\/$/, "")];
    if (kind) s.retrievals[kind] = (s.retrievals[kind] ?? 0) + 1;
    else if (key === ISSUE) s.tokensIssued += await issuedCount(c.res);
  }
}

/** Flushes under way from this isolate (an operator's read waits for them). */
const inFlight = new Set<Promise<void>>();

/** Sends this isolate's counts to the hub; a failure loses them (logged as a code). */
function send(env: Env): Promise<void> | undefined {
  const batches = collector.take();
  if (batches.length === 0) return;
  const sent = metricsHub(env)
    .ingest(batches)
    .catch(() => logEvent({ event: "metrics flush failed", code: "UNAVAILABLE" }))
    .finally(() => inFlight.delete(sent));
  inFlight.add(sent);
  return sent;
}

export function collectMetrics(): MiddlewareHandler<AppEnv> {
  return async function collectMetrics(c, next) {
    if (!c.get("config").metricsEnabled) return next();
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const now = Date.now();
    await record(c, collector.at(now), seconds);
    if (collector.due(now)) {
      const sent = send(c.env);
      if (sent) {
        try {
          c.executionCtx.waitUntil(sent);
        } catch {
          // No execution context (a direct app.request in a test): the promise runs on its own.
        }
      }
    }
  };
}

/** Flushes this isolate's counts and waits, so an operator's read includes them. */
export async function flushMetrics(env: Env): Promise<void> {
  send(env);
  await Promise.all([...inFlight]);
}

/** The configured token hash as bytes, or null if malformed. */
function configuredHash(raw: string): Uint8Array | null {
  const text = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) {
    return Uint8Array.from(text.match(/../g)!.map((h) => Number.parseInt(h, 16)));
  }
  try {
    const bytes = decodeBase64url(text);
    return bytes.length === 32 ? bytes : null;
  } catch {
    return null;
  }
}

/** Longest Authorization header read (a 32-byte token in base64url is 43 characters). */
const MAX_AUTHORIZATION_CHARS = 512;

function unauthorized(code: "AUTH_MISSING" | "AUTH_MALFORMED" | "AUTH_INVALID", message: string): Response {
  const res = problemResponse(new CpsError(code, message, { status: 401 }));
  res.headers.set("WWW-Authenticate", 'Bearer realm="operator"');
  return res;
}

/**
 * The operator's routes exist only when METRICS_TOKEN_SHA256 is set: 404 otherwise, for every
 * method, so a deployment that never turned them on does not show them.
 */
export function operatorRoutesOn(): MiddlewareHandler<AppEnv> {
  return async function operatorRoutesOn(c, next) {
    if (c.get("config").metricsTokenSha256 === "") throw new CpsError("NOT_FOUND", "No such resource");
    await next();
  };
}

/**
 * `Authorization: Bearer <operator token>` whose SHA-256 is METRICS_TOKEN_SHA256; 401 otherwise.
 * Only the hash is configured, so the secret store never holds the token itself.
 */
export function requireOperator(): MiddlewareHandler<AppEnv> {
  return async function requireOperator(c, next) {
    const expected = configuredHash(c.get("config").metricsTokenSha256);
    if (expected === null) {
      logEvent({ event: "refusing operator route", code: "MISCONFIGURED", status: 500 });
      throw new CpsError("MISCONFIGURED", "The operator credential is not configured correctly");
    }
    const header = c.req.header("Authorization");
    if (header === undefined || header === "") {
      return unauthorized("AUTH_MISSING", "Send Authorization: Bearer <operator token>");
    }
    const m = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(header);
    if (header.length > MAX_AUTHORIZATION_CHARS || m === null) {
      return unauthorized("AUTH_MALFORMED", "Send Authorization: Bearer <operator token>");
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(m[1])));
    if (!crypto.subtle.timingSafeEqual(digest, expected)) {
      return unauthorized("AUTH_INVALID", "Wrong operator token");
    }
    await next();
  };
}
