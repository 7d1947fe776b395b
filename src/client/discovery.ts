/**
 * CPS discovery (RFC 8816 §10) and encryption-key lookup (§11) for an AS or gateway, with caches that
 * honour the answers' lifetimes: a discovery record for its `ttl`, a JWK Set for its HTTP lifetime.
 *
 * Discovery asks `GET {bootstrap}/.well-known/stir-oob?tn=` (docs/key-directory.md), or uses a
 * provisioned record (§10: "initial deployments will provision the location of the CPS"). Keys come
 * from `GET {keys}/{tn}`, a JWK Set of OKP/X25519 keys. Every key of the set is returned: §8.1 step 3
 * "MUST collect all of those keys". No Node-only imports.
 */
import { CpsError } from "../errors.js";
import { decodeBase64url } from "../stir/base64url.js";
import { cacheLifetime } from "../stir/cache-lifetime.js";
import type { CanonicalTn } from "../stir/tn.js";
import { parseBaseUrl } from "../stir/urls.js";
import { CpsClient, CpsUnavailableError, type FetchLike } from "./cps-client.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";

/** Where a number's PASSporTs go and where its keys are (a discovery record, §10). */
export interface CpsLocation {
  /** CPS base URL: stores go to `${cps}/cps/{tn}/ppts`. */
  readonly cps: string;
  /** Key directory base URL: keys are at `${keys}/{tn}`. */
  readonly keys: string;
  /** Seconds the answer may be reused. */
  readonly ttl: number;
}

/** One public encryption key of a destination (from the key directory, RFC 8037 OKP JWK). */
export interface DestinationKey {
  /** RFC 7638 thumbprint as the directory gives it. */
  readonly kid: string;
  /** Raw 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  readonly label?: string;
}

export interface DiscoveryOptions extends RelayTransportOptions {
  /** A CPS to ask `/.well-known/stir-oob` (any CPS of the federation answers for every number). */
  readonly bootstrap?: string;
  /** A provisioned location used for every number instead of asking (closed deployments, §10). */
  readonly provisioned?: { readonly cps: string; readonly keys?: string; readonly ttl?: number };
  readonly fetch?: FetchLike;
  /** Accept plain http to loopback hosts in discovery answers (local demos; default false). */
  readonly allowLoopbackHttp?: boolean;
  /** Upper bound on any cache lifetime, seconds (default 3600). */
  readonly maxCacheSeconds?: number;
  /** Cached numbers at most, per cache (default 1000). */
  readonly cacheEntries?: number;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
}

/**
 * A service base URL from a discovery record, by the rule the CPS applies to the records it accepts
 * (`parseBaseUrl`, src/stir/urls.ts): https, or http to loopback when allowed; no credentials, query
 * or fragment. Anything else is a `CpsUnavailableError`: the answer is not one the API sends.
 */
export function checkServiceUrl(value: unknown, allowLoopbackHttp: boolean): string {
  const url = parseBaseUrl(value, allowLoopbackHttp);
  if (url === undefined) {
    throw new CpsUnavailableError("A discovery answer names a URL that is not an https base URL", "");
  }
  return url;
}

/** Parses a JWK Set into X25519 keys; entries that are not OKP/X25519 public keys are skipped. */
export function keysFromJwkSet(body: unknown): DestinationKey[] {
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new CpsError("INVALID_KEY", "The key directory answer is not a JWK Set");
  const out: DestinationKey[] = [];
  const seen = new Set<string>();
  for (const jwk of list as Record<string, unknown>[]) {
    if (jwk?.kty !== "OKP" || jwk.crv !== "X25519" || typeof jwk.x !== "string" || jwk.d !== undefined)
      continue;
    if (jwk.use !== undefined && jwk.use !== "enc") continue;
    let publicKey: Uint8Array;
    try {
      publicKey = decodeBase64url(jwk.x);
    } catch {
      continue;
    }
    if (publicKey.length !== 32 || seen.has(jwk.x)) continue;
    seen.add(jwk.x);
    out.push({
      kid: typeof jwk.kid === "string" ? jwk.kid : jwk.x.slice(0, 16),
      publicKey,
      ...(typeof jwk.label === "string" ? { label: jwk.label } : {}),
    });
  }
  return out;
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

class TtlCache<T> {
  readonly #map = new Map<string, Entry<T>>();
  readonly #inflight = new Map<string, Promise<T>>();
  constructor(
    readonly size: number,
    readonly now: () => number,
  ) {}

  async get(key: string, load: () => Promise<{ value: T; ttl: number }>): Promise<T> {
    const hit = this.#map.get(key);
    if (hit !== undefined && hit.expiresAt > this.now()) return hit.value;
    if (hit !== undefined) this.#map.delete(key);
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const p = load()
      .then(({ value, ttl }) => {
        if (ttl > 0) {
          this.#map.set(key, { value, expiresAt: this.now() + ttl * 1000 });
          while (this.#map.size > this.size) {
            const oldest = this.#map.keys().next().value;
            if (oldest === undefined) break;
            this.#map.delete(oldest);
          }
        }
        return value;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  delete(key: string): void {
    this.#map.delete(key);
  }
}

/**
 * Finds the CPS and all encryption keys for a called number, caching both per their lifetimes.
 *
 * @example
 * const discovery = new Discovery({ bootstrap: "https://cps.example.com" });
 * const { cps, keys } = await discovery.destination(canonicalTn("+2 222 555 2222"));
 * // keys: every X25519 key registered for the number; seal one copy per key (RFC 8816 §8.1 step 4)
 */
export class Discovery {
  readonly #options: DiscoveryOptions;
  readonly #fetch: FetchLike;
  readonly #max: number;
  readonly #now: () => number;
  readonly #locations: TtlCache<CpsLocation>;
  readonly #keys: TtlCache<DestinationKey[]>;
  /** Lookups go through this relay when set (one key cache for all of them). */
  readonly #relay: OhttpRelay | undefined;

  constructor(options: DiscoveryOptions) {
    if (options.bootstrap === undefined && options.provisioned === undefined) {
      throw new TypeError("Discovery needs a bootstrap CPS URL or a provisioned location");
    }
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#max = options.maxCacheSeconds ?? 3600;
    this.#now = options.now ?? Date.now;
    this.#locations = new TtlCache(options.cacheEntries ?? 1000, this.#now);
    this.#keys = new TtlCache(options.cacheEntries ?? 1000, this.#now);
    this.#relay = relayFor(options.relay, options.fetch);
  }

  /** A client for `baseUrl` that sends the way this discovery was told to (directly or via the relay). */
  #client(baseUrl: string): CpsClient {
    return new CpsClient({
      baseUrl,
      fetch: this.#fetch,
      ...(this.#relay ? { relay: this.#relay } : {}),
      ...(this.#options.requireRelay ? { requireRelay: true } : {}),
    });
  }

  /**
   * Which CPS and key directory serve `tn` (RFC 8816 §10), cached for the record's `ttl`.
   * @example
   * const { cps } = await discovery.locate(canonicalTn("22225552222"));
   */
  locate(tn: CanonicalTn): Promise<CpsLocation> {
    return this.#locations.get(tn, async () => {
      const loopback = this.#options.allowLoopbackHttp ?? false;
      const p = this.#options.provisioned;
      if (p !== undefined) {
        const cps = checkServiceUrl(p.cps, loopback);
        const value = {
          cps,
          keys: checkServiceUrl(p.keys ?? `${cps}/keys`, loopback),
          ttl: p.ttl ?? this.#max,
        };
        return { value, ttl: Math.min(value.ttl, this.#max) };
      }
      const client = this.#client(this.#options.bootstrap ?? "");
      const { body } = await client.getJson<Record<string, unknown>>(`/.well-known/stir-oob?tn=${tn}`);
      const ttl = typeof body.ttl === "number" && body.ttl >= 0 ? Math.floor(body.ttl) : 0;
      const cps = checkServiceUrl(body.cps, loopback);
      const keys = checkServiceUrl(body.keys ?? `${cps}/keys`, loopback);
      return { value: { cps, keys, ttl }, ttl: Math.min(ttl, this.#max) };
    });
  }

  /**
   * Every public encryption key registered for `tn` (RFC 8816 §11), cached for the answer's max-age.
   * An empty list is returned as is: the caller decides (the AS refuses to place without a key).
   * @example
   * const keys = await discovery.keys(canonicalTn("22225552222"));
   */
  keys(tn: CanonicalTn): Promise<DestinationKey[]> {
    return this.#keys.get(tn, async () => {
      const { keys } = await this.locate(tn);
      const client = this.#client(keys);
      try {
        const { body, response } = await client.getJson<unknown>(`/${tn}`);
        // The project's one reading of HTTP caching (RFC 9111); no caching header means no reuse.
        const ttl = cacheLifetime(response.headers, this.#now(), 0);
        return { value: keysFromJwkSet(body), ttl: Math.min(ttl, this.#max) };
      } catch (err) {
        // The directory answers 404 for a number nobody registered: that is "no keys", not a fault.
        if (err instanceof CpsError && err.status === 404) return { value: [], ttl: 0 };
        throw err;
      }
    });
  }

  /**
   * The CPS and every key for `tn` (§8.1 step 3), both from cache when fresh.
   * @example
   * const { cps, keys } = await discovery.destination(tn);
   */
  async destination(tn: CanonicalTn): Promise<{ cps: string; keys: DestinationKey[] }> {
    const [location, keys] = await Promise.all([this.locate(tn), this.keys(tn)]);
    return { cps: location.cps, keys };
  }

  /** Forgets what is cached for `tn` (e.g. after a store failed with a key or routing error). */
  invalidate(tn: CanonicalTn): void {
    this.#locations.delete(tn);
    this.#keys.delete(tn);
  }
}
