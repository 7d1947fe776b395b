/**
 * The Oblivious Relay Resource of RFC 9458 §2: it sees the client (its address) but only sealed bytes
 * of the request, and the gateway sees the request but only the relay. So the relay forwards the
 * encapsulated body and nothing else: no header of the client's, and none that names the client
 * (no Forwarded, X-Forwarded-For, CF-Connecting-IP, Via, cookies, user agent). It forwards only to
 * the gateways of its configuration (config.ts), never to one named in the request.
 *
 * Routes (docs/ohttp.md):
 *   POST /gateways/{name}        message/ohttp-req -> {origin}/.well-known/ohttp-gateway (RFC 9540 §4)
 *   GET  /gateways/{name}/keys   the gateway's key configuration (application/ohttp-keys), cached
 *   GET  /health                 200 when configured (local servers wait for it)
 * Everything else: 404 NOT_FOUND or 405 METHOD_NOT_ALLOWED (RFC 9457 problems).
 */

import { CpsError, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";
import {
  MEDIA_TYPE_KEYS as KEYS_TYPE,
  MAX_ENCAPSULATED_REQUEST_LENGTH,
  MAX_ENCAPSULATED_RESPONSE_LENGTH,
  MEDIA_TYPE_REQUEST as REQUEST_TYPE,
} from "../ohttp/index.js";
import { BodyTooLarge, readLimited } from "../stir/bytes.js";
import { relayConfigOf } from "./config.js";

/** The relay's bindings (relay/wrangler.toml). */
export interface RelayEnv {
  /** JSON {"name": "https://gateway-origin"}: the gateways this relay forwards to. */
  OHTTP_GATEWAYS?: string;
  /**
   * Secret, JSON {"<gateway name>": "<token>"}: the `OHTTP-Relay-Token` each gateway expects from this
   * relay (a gateway without one gets no header). Identifies the relay to the gateway, never the client.
   */
  OHTTP_GATEWAY_TOKENS?: string;
  /** Workers Rate Limiting binding, keyed by a hash of the client's address. */
  RELAY_RATE_LIMITER?: RateLimit;
}

export const GATEWAY_PATH = "/.well-known/ohttp-gateway";
/** The header that shows a gateway which relay forwards (docs/ohttp.md: the gateway's list of relays). */
export const RELAY_TOKEN_HEADER = "OHTTP-Relay-Token";

/**
 * Largest encapsulated request the relay forwards: the gateway's own limit (a padded Binary HTTP
 * request of at most 64 KiB, sealed: RFC 9458 §4.3), so nothing the gateway would refuse as too
 * large costs it a round trip.
 */
export const MAX_REQUEST_BYTES = MAX_ENCAPSULATED_REQUEST_LENGTH;
/** Largest gateway answer passed back: the largest encapsulated response (RFC 9458 §4.4). */
const MAX_RESPONSE_BYTES = MAX_ENCAPSULATED_RESPONSE_LENGTH;
/** Largest key configuration accepted from a gateway (RFC 9458 §3.2: a few dozen bytes per key). */
const MAX_KEYS_BYTES = 64 * 1024;
/** How long the relay waits for a gateway before answering 502. */
const UPSTREAM_TIMEOUT_MS = 10_000;
/** Key configurations are cached at most this long whatever the gateway says (rotation, §3.2). */
const MAX_KEYS_CACHE_SECONDS = 24 * 3600;
/** Seconds of the rate limit window (relay/wrangler.toml `[[ratelimits]]` simple.period). */
export const RATE_LIMIT_PERIOD_SECONDS = 10;

const GATEWAY_ROUTE = /^\/gateways\/([^/]+)$/;
const KEYS_ROUTE = /^\/gateways\/([^/]+)\/keys$/;

/** The media type of a Content-Type header without parameters, lower-cased. */
function essence(header: string | null): string {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/**
 * The rate-limit key of a client: a hash of the address the relay sees (CF-Connecting-IP, set by
 * Cloudflare's edge and by miniflare locally), so the address itself is neither logged nor stored.
 * An IPv6 client counts as its /64, which one subscriber usually holds whole.
 */
async function clientKey(request: Request): Promise<string> {
  const ip = request.headers.get("CF-Connecting-IP") ?? "";
  const subject = ip.includes(":") ? ip.toLowerCase().split(":").slice(0, 4).join(":") : ip;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`ohttp-relay\0${subject}`));
  return [...new Uint8Array(digest, 0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Answers of the relay's own: RFC 9457 problems, never cached, never a stack trace. */
function problem(
  code: ConstructorParameters<typeof CpsError>[0],
  message: string,
  extra: { status?: number; retryAfter?: number; allow?: string } = {},
) {
  const res = problemResponse(
    new CpsError(code, message, { status: extra.status, retryAfter: extra.retryAfter }),
  );
  if (extra.allow) res.headers.set("Allow", extra.allow);
  return res;
}

/** One log line per request: route kind and status only (never a path beyond the kind, a body or an address). */
function logged(route: string, res: Response, extra: Record<string, string | number> = {}): Response {
  logEvent({ event: "relay", route, status: res.status, ...extra });
  return res;
}

/** fetch to a configured gateway with no redirect following (a 3xx would point elsewhere) and a deadline. */
async function upstream(url: string, init: RequestInit): Promise<Response | null> {
  try {
    const res = await fetch(url, {
      ...init,
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      return null;
    }
    return res;
  } catch {
    return null;
  }
}

function unreachable(): Response {
  return problem("GATEWAY_UNREACHABLE", "The gateway did not answer");
}

/** POST /gateways/{name}: forward the sealed request, answer the gateway's status and sealed body. */
async function forwardRequest(
  request: Request,
  origin: string,
  token: string | undefined,
): Promise<Response> {
  if (essence(request.headers.get("Content-Type")) !== REQUEST_TYPE) {
    return problem("UNSUPPORTED_MEDIA_TYPE", `Send the body as ${REQUEST_TYPE}`);
  }
  let body: Uint8Array;
  try {
    body = await readLimited(
      request.body,
      request.headers.get("Content-Length"),
      MAX_REQUEST_BYTES,
      4 * MAX_REQUEST_BYTES,
    );
  } catch (err) {
    if (err instanceof BodyTooLarge)
      return problem("BODY_TOO_LARGE", `The body is limited to ${MAX_REQUEST_BYTES} bytes`);
    return problem("INVALID_BODY", "The body could not be read");
  }
  if (body.byteLength === 0) return problem("INVALID_BODY", "The body is empty");
  // A fresh header list: the gateway gets the media type and, if configured, this relay's own token
  // (RFC 9458 §2: the relay removes anything that identifies the client; the token names the relay,
  // the same for every client). workerd adds Host and Content-Length.
  const sent: Record<string, string> = { "Content-Type": REQUEST_TYPE };
  if (token !== undefined) sent[RELAY_TOKEN_HEADER] = token;
  const res = await upstream(origin + GATEWAY_PATH, { method: "POST", headers: sent, body });
  if (res === null) return unreachable();
  let answer: Uint8Array;
  try {
    answer = await readLimited(
      res.body,
      res.headers.get("Content-Length"),
      MAX_RESPONSE_BYTES,
      4 * MAX_RESPONSE_BYTES,
    );
  } catch {
    return unreachable();
  }
  // The gateway's status and body as they are (a message/ohttp-res, or the gateway's own error answer),
  // with its Content-Type and no other of its headers (they could carry per-request state).
  const headers = new Headers({ "Cache-Control": "no-store" });
  const type = res.headers.get("Content-Type");
  if (type !== null) headers.set("Content-Type", type);
  return new Response(res.status === 204 || res.status === 304 ? null : answer, {
    status: res.status,
    headers,
  });
}

/** max-age of a Cache-Control header, if it allows shared caching at all. */
function maxAge(header: string | null): number {
  const value = (header ?? "").toLowerCase();
  if (/(^|[\s,])(no-store|no-cache|private)([\s,=]|$)/.test(value)) return 0;
  const m = /(?:^|[\s,])(?:s-maxage|max-age)=(\d+)/.exec(value);
  return m ? Math.min(Number(m[1]), MAX_KEYS_CACHE_SECONDS) : 0;
}

/** The Cache API key of a gateway's key configuration (origin in it: a changed config misses). */
function keysCacheKey(name: string, origin: string): Request {
  return new Request(`https://ohttp-relay.invalid/keys/${name}?origin=${encodeURIComponent(origin)}`);
}

/**
 * GET /gateways/{name}/keys: the gateway's key configuration (RFC 9458 §3.2), so a client that knows
 * only the relay can fetch it without telling the gateway who it is. Sent without the relay's token:
 * the gateway serves its key configuration to anyone, and a secret sent where it is not needed only
 * adds places (caches, logs of whatever answers there) it can leak to. Cached for the gateway's max-age
 * (in the Cache API of the relay's location), so most fetches never reach the gateway.
 */
async function forwardKeys(
  name: string,
  origin: string,
  ctx: ExecutionContext,
): Promise<{ res: Response; cache: string }> {
  const cacheKey = keysCacheKey(name, origin);
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  const hit = await cache?.match(cacheKey);
  if (hit)
    return { res: new Response(hit.body, { status: 200, headers: keysHeaders(hit.headers) }), cache: "hit" };
  const res = await upstream(origin + GATEWAY_PATH, { method: "GET", headers: { Accept: KEYS_TYPE } });
  if (res === null) return { res: unreachable(), cache: "miss" };
  let body: Uint8Array;
  try {
    body = await readLimited(res.body, res.headers.get("Content-Length"), MAX_KEYS_BYTES, 4 * MAX_KEYS_BYTES);
  } catch {
    return { res: unreachable(), cache: "miss" };
  }
  if (res.status !== 200 || essence(res.headers.get("Content-Type")) !== KEYS_TYPE || body.byteLength === 0) {
    // Not a key configuration (the gateway is off, or something else answers there): the peer failed.
    return { res: unreachable(), cache: "miss" };
  }
  const age = maxAge(res.headers.get("Cache-Control"));
  const headers = new Headers({
    "Content-Type": KEYS_TYPE,
    "Cache-Control": age > 0 ? `public, max-age=${age}` : "no-store",
  });
  if (age > 0 && cache) ctx.waitUntil(cache.put(cacheKey, new Response(body, { headers })));
  return { res: new Response(body, { status: 200, headers }), cache: "miss" };
}

function keysHeaders(from: Headers): Headers {
  return new Headers({
    "Content-Type": KEYS_TYPE,
    "Cache-Control": from.get("Cache-Control") ?? "no-store",
  });
}

/** Logged once per isolate and config value: the reason the relay refuses to serve. */
const refusalsLogged = new Set<string>();

export async function handleRelay(request: Request, env: RelayEnv, ctx: ExecutionContext): Promise<Response> {
  const config = relayConfigOf(env.OHTTP_GATEWAYS, env.OHTTP_GATEWAY_TOKENS);
  if (!config.ok || env.RELAY_RATE_LIMITER === undefined) {
    const reason = config.ok ? "the RELAY_RATE_LIMITER binding is missing" : config.reason;
    if (!refusalsLogged.has(reason)) {
      refusalsLogged.add(reason);
      logEvent({ event: "refusing to serve", code: "MISCONFIGURED", status: 503, reason });
    }
    return problem("MISCONFIGURED", "This relay is not configured to serve (see the operator's log)", {
      status: 503,
    });
  }
  const { pathname } = new URL(request.url);
  if (pathname === "/health") {
    if (request.method !== "GET" && request.method !== "HEAD")
      return problem("METHOD_NOT_ALLOWED", "Use GET", { allow: "GET, HEAD" });
    return new Response(request.method === "HEAD" ? null : JSON.stringify({ status: "ok" }), {
      headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
    });
  }
  const post = GATEWAY_ROUTE.exec(pathname);
  const keys = post ? null : KEYS_ROUTE.exec(pathname);
  const route = post ? "request" : keys ? "keys" : "other";
  if (route === "other") return logged(route, problem("NOT_FOUND", "No such resource"));

  // Counted before anything else is looked at, so a flood of bad requests is limited too.
  let success: boolean;
  try {
    ({ success } = await env.RELAY_RATE_LIMITER.limit({ key: await clientKey(request) }));
  } catch {
    // Fail closed: without its limit the relay would pass any flood on to the gateways.
    return logged(route, problem("UNAVAILABLE", "The relay cannot serve right now"));
  }
  if (!success) {
    return logged(
      route,
      problem("RELAY_RATE_LIMITED", "Too many requests through this relay", {
        retryAfter: RATE_LIMIT_PERIOD_SECONDS,
      }),
    );
  }
  const name = (post ?? keys)?.[1] ?? "";
  const origin = config.gateways.get(name);
  // The name is logged only when it is a configured one (an unknown one could be anything, even a number).
  if (origin === undefined) return logged(route, problem("NOT_FOUND", "No such gateway"));
  if (post) {
    if (request.method !== "POST")
      return logged(route, problem("METHOD_NOT_ALLOWED", "Use POST", { allow: "POST" }), { gateway: name });
    const res = await forwardRequest(request, origin, config.tokens.get(name));
    return logged(route, res, { gateway: name });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return logged(route, problem("METHOD_NOT_ALLOWED", "Use GET", { allow: "GET, HEAD" }), { gateway: name });
  }
  const { res, cache } = await forwardKeys(name, origin, ctx);
  const out =
    request.method === "HEAD" ? new Response(null, { status: res.status, headers: res.headers }) : res;
  return logged(route, out, { gateway: name, cache });
}
