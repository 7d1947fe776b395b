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

/** Shortest relay token: 32 characters, so it cannot be guessed (the gateway keeps only its hash). */
export const MIN_TOKEN_LENGTH = 32;
/** Longest relay token: a header value, not a document. */
const MAX_TOKEN_LENGTH = 512;
/** A token is visible ASCII (an HTTP field value, RFC 9110 §5.5) without spaces or quotes. */
const TOKEN_CHARS = /^[\x21\x23-\x7e]+$/;

/** gateway name -> the token this relay shows it (`OHTTP-Relay-Token`). */
export type TokenMap = ReadonlyMap<string, string>;
export type ParsedTokens = { ok: true; tokens: TokenMap } | { ok: false; reason: string };

/**
 * Parses OHTTP_GATEWAY_TOKENS, JSON `{"<gateway name>": "<token>"}`: the token each gateway expects
 * from this relay (the gateway accepts only relays on its list). Unset or empty: no gateway gets a
 * token. Every name must be one of `gateways` (a token for no gateway is a typo that would silently
 * leave a gateway without one). Reasons never quote the value: it is a secret.
 */
export function parseGatewayTokens(value: unknown, gateways: GatewayMap): ParsedTokens {
  if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
    return { ok: true, tokens: new Map() };
  }
  if (typeof value !== "string") return { ok: false, reason: "OHTTP_GATEWAY_TOKENS is not a string" };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { ok: false, reason: "OHTTP_GATEWAY_TOKENS is not JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, reason: "OHTTP_GATEWAY_TOKENS must be a JSON object of gateway name -> token" };
  }
  const tokens = new Map<string, string>();
  for (const [name, token] of Object.entries(json)) {
    if (!gateways.has(name)) {
      return { ok: false, reason: "OHTTP_GATEWAY_TOKENS names a gateway that is not in OHTTP_GATEWAYS" };
    }
    if (
      typeof token !== "string" ||
      token.length < MIN_TOKEN_LENGTH ||
      token.length > MAX_TOKEN_LENGTH ||
      !TOKEN_CHARS.test(token)
    ) {
      return {
        ok: false,
        reason: `OHTTP_GATEWAY_TOKENS has a token that is not ${MIN_TOKEN_LENGTH}-${MAX_TOKEN_LENGTH} visible ASCII characters`,
      };
    }
    tokens.set(name, token);
  }
  return { ok: true, tokens };
}

/** The relay's whole configuration, or the first reason it is refused. */
export type RelayConfig =
  | { ok: true; gateways: GatewayMap; tokens: TokenMap }
  | { ok: false; reason: string };

export function parseRelayConfig(gatewaysValue: unknown, tokensValue: unknown): RelayConfig {
  const gateways = parseGateways(gatewaysValue);
  if (!gateways.ok) return gateways;
  const tokens = parseGatewayTokens(tokensValue, gateways.gateways);
  if (!tokens.ok) return tokens;
  return { ok: true, gateways: gateways.gateways, tokens: tokens.tokens };
}

const cache = new Map<string, RelayConfig>();

/** parseRelayConfig, once per distinct pair of values (an isolate sees one env; tests see several). */
export function relayConfigOf(gatewaysValue: unknown, tokensValue: unknown): RelayConfig {
  const key = JSON.stringify([
    typeof gatewaysValue === "string" ? gatewaysValue : null,
    typeof tokensValue === "string" ? tokensValue : tokensValue === undefined ? null : "?",
  ]);
  let hit = cache.get(key);
  if (hit === undefined) {
    hit = parseRelayConfig(gatewaysValue, tokensValue);
    if (cache.size > 16) cache.clear();
    cache.set(key, hit);
  }
  return hit;
}
