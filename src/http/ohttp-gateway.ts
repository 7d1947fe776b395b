/**
 * The CPS as an Oblivious HTTP gateway (RFC 9458 §5, docs/ohttp.md): its keys from OHTTP_KEYS, the
 * outer error answers, and the one place an inner Binary HTTP request (RFC 9292) becomes a Request
 * for the app. The routes are src/routes/ohttp.ts.
 *
 * The inner Request is built from the inner message alone (method, CPS_ORIGIN + inner path, inner
 * header fields, inner body): no outer header, no client address and nothing of the relay reaches
 * it (RFC 9458 §6.3: the gateway learns the request, never the client).
 */
import { CpsError, type CpsErrorCode, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";
import {
  type BhttpRequest,
  type GatewayKey,
  isOhttpError,
  OHTTP_KEY_PROBLEM_TYPE,
  type OhttpError,
  parseGatewayKeys,
} from "../ohttp/index.js";
import { decodeBase64url } from "../stir/base64url.js";

/** RFC 9540 §4: the well-known gateway resource, which also serves the key configuration (GET). */
export const GATEWAY_PATH = "/.well-known/ohttp-gateway";

/** Keys of the last distinct OHTTP_KEYS value (a Worker has one; tests may swap it). */
let parsed: { raw: string; keys: Promise<GatewayKey[] | Error> } | undefined;
/** The OHTTP_KEYS value whose problem was logged, so a bad secret is logged once, not per request. */
let loggedBad: string | undefined;

/**
 * The gateway keys of `raw` (config.ohttpKeys), parsed and imported once per distinct value; `null`
 * when it is unset (the gateway is off: its routes answer 404). A malformed value is 503
 * MISCONFIGURED for the gateway routes only (the rest of the CPS keeps serving), logged once without
 * the secret.
 */
export async function gatewayKeys(raw: string): Promise<GatewayKey[] | null> {
  if (raw === "") return null;
  if (parsed?.raw !== raw) {
    parsed = {
      raw,
      keys: parseGatewayKeys(raw).catch((err: unknown) =>
        err instanceof Error ? err : new Error("invalid"),
      ),
    };
  }
  const keys = await parsed.keys;
  if (!(keys instanceof Error)) return keys;
  if (loggedBad !== raw) {
    loggedBad = raw;
    const reason = isOhttpError(keys) ? keys.message : "OHTTP_KEYS could not be read";
    logEvent({ event: "ohttp gateway off", code: "MISCONFIGURED", status: 503, reason });
  }
  throw new CpsError("MISCONFIGURED", "The OHTTP gateway is not configured (see the operator's log)", {
    status: 503,
  });
}

/**
 * The header a relay on OHTTP_RELAYS adds to what it forwards: a secret naming the relay, never the
 * client (docs/ohttp.md "Which relays may send").
 */
export const RELAY_TOKEN_HEADER = "OHTTP-Relay-Token";

/** A relay the gateway accepts: its name (for the operator) and the SHA-256 of its token. */
export interface GatewayRelay {
  name: string;
  tokenSha256: Uint8Array;
}

const RELAY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/** OHTTP_RELAYS parsed, or why not (the reason names no token or hash). */
function parseRelays(raw: string): GatewayRelay[] | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return "OHTTP_RELAYS is not JSON";
  }
  if (!Array.isArray(value) || value.length === 0) return "OHTTP_RELAYS must be a non-empty array";
  const relays: GatewayRelay[] = [];
  const names = new Set<string>();
  for (const [i, entry] of value.entries()) {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      return `OHTTP_RELAYS[${i}] is not an object`;
    }
    const { name, tokenSha256, ...rest } = entry as Record<string, unknown>;
    // A plain "token" here is a mistake worth refusing: the CPS keeps only the token's hash.
    if (Object.keys(rest).length > 0) return `OHTTP_RELAYS[${i}] has members other than name, tokenSha256`;
    if (typeof name !== "string" || !RELAY_NAME.test(name)) {
      return `OHTTP_RELAYS[${i}].name must be 1-64 of [A-Za-z0-9._-]`;
    }
    if (names.has(name)) return `OHTTP_RELAYS[${i}].name repeats an earlier name`;
    names.add(name);
    // 32 bytes in canonical unpadded base64url is 43 characters, the last carrying 4 bits.
    if (typeof tokenSha256 !== "string" || !SHA256_URL.test(tokenSha256)) {
      return `OHTTP_RELAYS[${i}].tokenSha256 must be the base64url SHA-256 (32 bytes) of the token`;
    }
    relays.push({ name, tokenSha256: decodeBase64url(tokenSha256) });
  }
  return relays;
}

/** Relays of the last distinct OHTTP_RELAYS value, and the value whose problem was logged. */
let parsedRelays: { raw: string; relays: GatewayRelay[] | string } | undefined;
let loggedBadRelays: string | undefined;

/**
 * The relays the gateway accepts (config.ohttpRelays), parsed once per distinct value; `null` when
 * unset: the gateway is open to any sender (RFC 9458 does not require relay authentication; a client
 * that skips the relay gives up only its own privacy). A malformed value is 503 MISCONFIGURED for the
 * gateway routes only, logged once without the secret.
 */
export function gatewayRelays(raw: string): GatewayRelay[] | null {
  if (raw === "") return null;
  if (parsedRelays?.raw !== raw) parsedRelays = { raw, relays: parseRelays(raw) };
  const { relays } = parsedRelays;
  if (typeof relays !== "string") return relays;
  if (loggedBadRelays !== raw) {
    loggedBadRelays = raw;
    logEvent({ event: "ohttp gateway off", code: "MISCONFIGURED", status: 503, reason: relays });
  }
  throw new CpsError("MISCONFIGURED", "The OHTTP gateway is not configured (see the operator's log)", {
    status: 503,
  });
}

/**
 * Whether `token` (the OHTTP-Relay-Token field, or null) belongs to a relay on `relays`. The token is
 * hashed and the hash compared with every entry without an early exit, so the time taken tells a
 * sender nothing about how close its guess was.
 */
export async function isListedRelay(relays: readonly GatewayRelay[], token: string | null): Promise<boolean> {
  if (token === null || token === "") return false;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  let matched = 0;
  for (const relay of relays) {
    let diff = 0;
    for (let i = 0; i < digest.length; i++) diff |= (digest[i] as number) ^ (relay.tokenSha256[i] as number);
    matched |= diff === 0 ? 1 : 0;
  }
  return matched === 1;
}

/**
 * The outer answer to a request whose encapsulation could not be removed (RFC 9458 §5.2: sent in
 * the clear, since there is no context to seal it with). An unknown key id, a suite the key does not
 * offer and an AEAD failure (a client holding an outdated public key under a known id looks exactly
 * like tampering) are the §5.3 key-configuration problem: 400 with the registered problem type, so a
 * client refetches the configuration. The rest: 413 too large, 400 malformed.
 */
export function outerErrorResponse(err: OhttpError): Response {
  if (err.keyConfigProblem || err.code === "DECRYPT_FAILED") {
    const body = {
      type: OHTTP_KEY_PROBLEM_TYPE,
      title: "The request does not match a current key configuration: fetch it again",
      status: 400,
      code: "OHTTP_KEY" satisfies CpsErrorCode,
    };
    return new Response(JSON.stringify(body), {
      status: 400,
      headers: { "Content-Type": "application/problem+json", "Cache-Control": "no-store" },
    });
  }
  if (err.code === "TOO_LARGE") {
    return problemResponse(new CpsError("BODY_TOO_LARGE", "The encapsulated request is too large"));
  }
  return problemResponse(new CpsError("OHTTP_MALFORMED", "The encapsulated request is malformed"));
}

/** Inner requests in flight: the gateway refuses one of them (a gateway inside the gateway). */
const innerRequests = new WeakSet<Request>();

/** True if `req` is an inner request the gateway made (belt and braces behind the path check). */
export function isInnerRequest(req: Request): boolean {
  return innerRequests.has(req);
}

const refused = (message: string) => new CpsError("OHTTP_REFUSED", message);
const malformed = (message: string) => new CpsError("OHTTP_MALFORMED", message);

/** `authority` as a lower-case host[:port] without the scheme's default port. */
function normalAuthority(authority: string, scheme: string): string {
  const a = authority.toLowerCase();
  const port = scheme === "https" ? ":443" : scheme === "http" ? ":80" : "";
  return port && a.endsWith(port) ? a.slice(0, -port.length) : a;
}

/** `path` with every valid %XX run decoded and invalid ones left as they are (as the router reads it). */
export function decodedPath(path: string): string {
  return path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * The Request the app runs for an inner message, built from the inner message and `origin`
 * (CPS_ORIGIN) only. Throws a CpsError, which the gateway answers inside the encapsulation (RFC 9458
 * §5.2: errors found after decapsulation are encapsulated):
 * - 421 NOT_SERVED: a scheme or authority (or Host field) other than this CPS's, or a target in
 *   absolute or authority form (the gateway is not an open proxy);
 * - 403 OHTTP_REFUSED: the gateway resource itself (no nesting) or a protocol upgrade (WebSocket:
 *   an encapsulated exchange is one request and one response, RFC 9458 §2);
 * - 400 OHTTP_MALFORMED: a method, field or body a Request cannot carry.
 */
export function innerRequest(msg: BhttpRequest, origin: string): Request {
  const base = new URL(origin);
  const scheme = base.protocol.slice(0, -1);
  if (msg.scheme !== "" && msg.scheme.toLowerCase() !== scheme) {
    throw new CpsError("NOT_SERVED", "The inner request is for another origin");
  }
  const own = normalAuthority(base.host, scheme);
  const hostFields = msg.headers.filter(([name]) => name.toLowerCase() === "host").map(([, v]) => v);
  for (const authority of [msg.authority, ...hostFields]) {
    if (authority !== "" && normalAuthority(authority.trim(), scheme) !== own) {
      throw new CpsError("NOT_SERVED", "The inner request is for another origin");
    }
  }
  // Origin form only: "//host/x" would resolve to another host, "*" and absolute URLs are not ours.
  if (!msg.path.startsWith("/") || msg.path.startsWith("//") || msg.path.includes("\\")) {
    throw new CpsError("NOT_SERVED", "The inner request target must be a path on this CPS");
  }
  let url: URL;
  try {
    url = new URL(msg.path, base);
  } catch {
    throw malformed("The inner request target is not a path");
  }
  if (url.origin !== base.origin) {
    throw new CpsError("NOT_SERVED", "The inner request is for another origin");
  }
  if (decodedPath(url.pathname).toLowerCase().startsWith(GATEWAY_PATH)) {
    throw refused("The gateway does not forward to itself");
  }
  const method = msg.method.toUpperCase();
  if (method === "CONNECT") throw refused("CONNECT is not served through the gateway");
  const headers = new Headers();
  for (const [name, value] of msg.headers) {
    const lower = name.toLowerCase();
    if (lower === "upgrade" || (lower === "connection" && /(^|,)\s*upgrade\s*(,|$)/i.test(value))) {
      throw refused("Protocol upgrades (WebSocket) are not served through the gateway");
    }
    // Host is checked above and comes from the URL; Content-Length from the body.
    if (lower === "host" || lower === "content-length") continue;
    try {
      headers.append(name, value);
    } catch {
      throw malformed("An inner header field is invalid");
    }
  }
  const body = msg.body.byteLength > 0 ? msg.body : null;
  try {
    const req = new Request(url, { method: msg.method, headers, body });
    innerRequests.add(req);
    return req;
  } catch {
    throw malformed("The inner request cannot be made (method or body)");
  }
}
