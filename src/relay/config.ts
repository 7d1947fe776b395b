/**
 * The relay's configuration: which gateways it forwards to (RFC 9458 §2: an Oblivious Relay Resource
 * is configured for specific gateways; it never takes a gateway from the request, so it cannot be
 * used as an open proxy). Read once per env string and kept; a bad value refuses every request.
 */
import { isLoopback, parseBaseUrl } from "../stir/urls.js";

/** A gateway name as it appears in `/gateways/{name}`: lower-case letters, digits and `-`. */
export const GATEWAY_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

/** At most this many gateways: the list is an operator's, not a directory. */
const MAX_GATEWAYS = 64;

/** name -> origin (scheme://host[:port], no path), or the reason the value is refused. */
export type GatewayMap = ReadonlyMap<string, string>;
export type ParsedGateways = { ok: true; gateways: GatewayMap } | { ok: false; reason: string };

/**
 * Parses OHTTP_GATEWAYS, JSON `{"name": "https://gateway-origin"}`. Each origin is https, or http on
 * a loopback host (local development: `wrangler dev` on 127.0.0.1), with no credentials, path, query
 * or fragment: the relay appends the RFC 9540 well-known path itself.
 */
export function parseGateways(value: unknown): ParsedGateways {
  if (typeof value !== "string" || value.trim() === "") {
    return { ok: false, reason: "OHTTP_GATEWAYS is not set" };
  }
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { ok: false, reason: "OHTTP_GATEWAYS is not JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, reason: "OHTTP_GATEWAYS must be a JSON object of name -> origin" };
  }
  const entries = Object.entries(json);
  if (entries.length === 0) return { ok: false, reason: "OHTTP_GATEWAYS names no gateway" };
  if (entries.length > MAX_GATEWAYS) return { ok: false, reason: "OHTTP_GATEWAYS names too many gateways" };
  const gateways = new Map<string, string>();
  for (const [name, origin] of entries) {
    if (!GATEWAY_NAME.test(name)) return { ok: false, reason: "OHTTP_GATEWAYS has a bad gateway name" };
    const base = parseBaseUrl(origin, true);
    // parseBaseUrl allows a path (a CPS under a prefix); a gateway here is an origin only.
    if (base === undefined || new URL(base).origin !== base) {
      return { ok: false, reason: "OHTTP_GATEWAYS has a value that is not an https origin" };
    }
    const url = new URL(base);
    if (url.protocol === "http:" && !isLoopback(url.hostname)) {
      return { ok: false, reason: "OHTTP_GATEWAYS has a plain-http origin that is not loopback" };
    }
    gateways.set(name, base);
  }
  return { ok: true, gateways };
}

const cache = new Map<string, ParsedGateways>();

/** parseGateways, once per distinct value (an isolate sees one env; tests see several). */
export function gatewaysOf(value: unknown): ParsedGateways {
  const key = typeof value === "string" ? value : "";
  let hit = cache.get(key);
  if (hit === undefined) {
    hit = parseGateways(value);
    if (cache.size > 16) cache.clear();
    cache.set(key, hit);
  }
  return hit;
}
