/**
 * CPS discovery (RFC 8816 §10) and encryption-key lookup (§11) for an AS or gateway, with caches that
 * honour the answers' lifetimes: a discovery record for its `ttl`, a key directory answer for its HTTP
 * lifetime.
 *
 * Discovery asks `GET {bootstrap}/.well-known/stir-oob?tn=` (docs/key-directory.md), or uses a
 * provisioned record (§10: "initial deployments will provision the location of the CPS"). Keys come
 * from the key directory by PREFIX (`GET {keys}?prefix=` with `lookupOpenDigits` digits open, default
 * 2, every `cursor` page followed), so the directory does not learn the exact number being called
 * (§11's first mitigation); `lookupOpenDigits: 0` asks `GET {keys}/{tn}`. Which served keys a call
 * may be sealed to is decided by a `KeyRecordCheck` (src/client/key-records.ts): signed records only,
 * the directory is not trusted with keys. A number may have several CPSes (§10): an answer's `cpses`
 * (or a provisioned list) lands in `CpsLocation.cpses`, `cps` first; an answer with `cps` alone is one
 * CPS, as before. No Node-only imports.
 */
import { CpsError } from "../errors.js";
import { cacheLifetime } from "../stir/cache-lifetime.js";
import { blockContainsTn, parseBlock } from "../stir/number-blocks.js";
import type { CanonicalTn } from "../stir/tn.js";
import { parseBaseUrl } from "../stir/urls.js";
import { CpsClient, CpsUnavailableError, type FetchLike } from "./cps-client.js";
import {
  type DestinationKey,
  type KeyDirectoryAnswer,
  type KeyRecordCheck,
  type SkippedKey,
  unsignedKey,
} from "./key-records.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";

export type { DestinationKey, KeyDirectoryAnswer, SkippedKey } from "./key-records.js";

/** Most digits a lookup leaves open (the directory's own cap, KEYS_PREFETCH_MAX_OPEN_DIGITS, is 1-6). */
export const MAX_LOOKUP_OPEN_DIGITS = 6;
/** Pages of one prefix lookup followed at most: a directory cannot keep the AS paging forever. */
export const MAX_LOOKUP_PAGES = 20;
/** Entries of one lookup kept at most (20 pages of the directory's largest page). */
const MAX_LOOKUP_ENTRIES = 100_000;
/** CPSes of one answer used at most (the CPS's own cap on a record, MAX_CPSES_PER_RECORD). */
export const MAX_CPSES = 8;

/** Where a number's PASSporTs go and where its keys are (a discovery record, §10). */
export interface CpsLocation {
  /** CPS base URL: stores go to `${cps}/cps/{tn}/ppts`. The first of `cpses`. */
  readonly cps: string;
  /** Every CPS serving the number (§10), `cps` first: the AS stores to each, the VS retrieves from each. */
  readonly cpses: readonly string[];
  /** Key directory base URL: keys are at `${keys}/{tn}`. */
  readonly keys: string;
  /** Seconds the answer may be reused. */
  readonly ttl: number;
}

export interface DiscoveryOptions extends RelayTransportOptions {
  /** A CPS to ask `/.well-known/stir-oob` (any CPS of the federation answers for every number). */
  readonly bootstrap?: string;
  /**
   * A provisioned location used for every number instead of asking (closed deployments, §10); `cps`
   * may list several CPSes (the first is `cps`, and `keys` defaults to its `/keys`).
   */
  readonly provisioned?: {
    readonly cps: string | readonly string[];
    readonly keys?: string;
    readonly ttl?: number;
  };
  readonly fetch?: FetchLike;
  /** Accept plain http to loopback hosts in discovery answers (local demos; default false). */
  readonly allowLoopbackHttp?: boolean;
  /** Upper bound on any cache lifetime, seconds (default 3600). */
  readonly maxCacheSeconds?: number;
  /** Cached numbers at most, per cache (default 1000). */
  readonly cacheEntries?: number;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
  /**
   * Digits of the called number left open in key lookups (§11 privacy): 2 asks for the keys of the
   * 100-number block around it; 0 asks for the exact number (`GET {keys}/{tn}`). Default 2, at most 6
   * (and at most what the directory allows, 4 by default).
   */
  readonly lookupOpenDigits?: number;
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

/**
 * The CPS list of a discovery answer or a provisioned location: `cps` first, then the other entries
 * of `cpses` (a list of at most MAX_CPSES), each by `checkServiceUrl`, duplicates dropped. An answer
 * without `cpses` (every answer of a CPS that predates it) is `[cps]`.
 */
export function checkServiceUrls(cps: unknown, cpses: unknown, allowLoopbackHttp: boolean): string[] {
  if (cpses !== undefined && (!Array.isArray(cpses) || cpses.length > MAX_CPSES)) {
    throw new CpsUnavailableError(`A discovery answer's cpses is not a list of at most ${MAX_CPSES}`, "");
  }
  const out = [checkServiceUrl(cps, allowLoopbackHttp)];
  for (const item of (cpses as unknown[] | undefined) ?? []) {
    const url = checkServiceUrl(item, allowLoopbackHttp);
    if (!out.includes(url)) out.push(url);
  }
  return out;
}

/**
 * The X25519 keys of a JWK Set AS THE DIRECTORY STATES THEM, unverified: for display only. Sealing
 * goes through `Discovery.destination(tn, check)`, which trusts signed records and nothing else.
 */
export function keysFromJwkSet(body: unknown): DestinationKey[] {
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new CpsError("INVALID_KEY", "The key directory answer is not a JWK Set");
  const out: DestinationKey[] = [];
  const seen = new Set<string>();
  for (const jwk of list as Record<string, unknown>[]) {
    if (jwk === null || typeof jwk !== "object") continue;
    const publicKey = unsignedKey(jwk);
    if (publicKey === undefined || seen.has(jwk.x as string)) continue;
    seen.add(jwk.x as string);
    out.push({
      kid: typeof jwk.kid === "string" ? jwk.kid : (jwk.x as string).slice(0, 16),
      publicKey,
      ...(typeof jwk.label === "string" ? { label: jwk.label } : {}),
    });
  }
  return out;
}

/** The path of the key lookup for `tn` with `open` digits left open (exact when 0 or too short). */
export function keyLookupPath(tn: CanonicalTn, open: number): { path: string; exact: boolean } {
  if (open <= 0 || tn.length - open < 1) return { path: `/${tn}`, exact: true };
  return { path: `?prefix=${tn.slice(0, tn.length - open)}${"x".repeat(open)}`, exact: false };
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
  readonly #answers: TtlCache<KeyDirectoryAnswer>;
  readonly #open: number;
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
    this.#answers = new TtlCache(options.cacheEntries ?? 1000, this.#now);
    const open = options.lookupOpenDigits ?? 2;
    if (!Number.isInteger(open) || open < 0 || open > MAX_LOOKUP_OPEN_DIGITS) {
      throw new TypeError(`lookupOpenDigits is a whole number from 0 to ${MAX_LOOKUP_OPEN_DIGITS}`);
    }
    this.#open = open;
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
        const list = typeof p.cps === "string" ? [p.cps] : p.cps;
        const cpses = checkServiceUrls(list[0], list, loopback);
        const cps = cpses[0] as string;
        const value = {
          cps,
          cpses,
          keys: checkServiceUrl(p.keys ?? `${cps}/keys`, loopback),
          ttl: p.ttl ?? this.#max,
        };
        return { value, ttl: Math.min(value.ttl, this.#max) };
      }
      const client = this.#client(this.#options.bootstrap ?? "");
      const { body } = await client.getJson<Record<string, unknown>>(`/.well-known/stir-oob?tn=${tn}`);
      const ttl = typeof body.ttl === "number" && body.ttl >= 0 ? Math.floor(body.ttl) : 0;
      const cpses = checkServiceUrls(body.cps, body.cpses, loopback);
      const cps = cpses[0] as string;
      const keys = checkServiceUrl(body.keys ?? `${cps}/keys`, loopback);
      return { value: { cps, cpses, keys, ttl }, ttl: Math.min(ttl, this.#max) };
    });
  }

  /**
   * The key directory's answer for the lookup that covers `tn` (RFC 8816 §11): by prefix with
   * `lookupOpenDigits` open (every page), or exact. Nothing in it is checked yet. Cached for the
   * answer's HTTP lifetime (the shortest of its pages', at most `maxCacheSeconds`), per lookup: every
   * number of one block shares one answer, so calls to neighbours cost no further lookup.
   * @example
   * const answer = await discovery.keyAnswer(canonicalTn("22225552222"));
   */
  keyAnswer(tn: CanonicalTn): Promise<KeyDirectoryAnswer> {
    const { path, exact } = keyLookupPath(tn, this.#open);
    return this.#answers.get(path, async () => {
      const { keys } = await this.locate(tn);
      const client = this.#client(keys);
      const entries: unknown[] = [];
      let ttl = this.#max;
      let next: string | undefined = path;
      for (let page = 0; next !== undefined && page < MAX_LOOKUP_PAGES; page++) {
        let body: { keys?: unknown; cursor?: unknown };
        let response: Response;
        try {
          ({ body, response } = await client.getJson<{ keys?: unknown; cursor?: unknown }>(next));
        } catch (err) {
          // The directory answers 404 for a number nobody registered: that is "no keys", not a fault.
          if (exact && err instanceof CpsError && err.status === 404)
            return { value: { entries, exact }, ttl: 0 };
          throw err;
        }
        if (body === null || typeof body !== "object" || !Array.isArray(body.keys)) {
          throw new CpsError("INVALID_KEY", "The key directory answer is not a JWK Set");
        }
        entries.push(...body.keys.slice(0, MAX_LOOKUP_ENTRIES - entries.length));
        // The project's one reading of HTTP caching (RFC 9111); no caching header means no reuse.
        ttl = Math.min(ttl, cacheLifetime(response.headers, this.#now(), 0));
        const cursor = body.cursor;
        next =
          !exact && typeof cursor === "string" && cursor.length > 0 && cursor.length <= 2048
            ? `${path}&cursor=${encodeURIComponent(cursor)}`
            : undefined;
      }
      return { value: { entries, exact, fetchedAt: this.#now() }, ttl };
    });
  }

  /**
   * `keyAnswer`, but when a CACHED prefix answer has nothing at all for `tn` (per `has`), asked once
   * more: a block answer cached for a neighbour must not hide a key registered since for this number.
   * Only the block is asked again, never the number; a number without keys costs one lookup a call.
   */
  async #answerFor(tn: CanonicalTn, has: (answer: KeyDirectoryAnswer) => boolean | Promise<boolean>) {
    const asked = this.#now();
    const answer = await this.keyAnswer(tn);
    if (answer.exact || (answer.fetchedAt ?? asked) >= asked || (await has(answer))) return answer;
    this.#answers.delete(keyLookupPath(tn, this.#open).path);
    return this.keyAnswer(tn);
  }

  /**
   * The keys registered for `tn` AS THE DIRECTORY STATES THEM (unverified; for display). In a prefix
   * answer, the entries whose `block` member contains `tn`.
   * @example
   * const keys = await discovery.keys(canonicalTn("22225552222"));
   */
  async keys(tn: CanonicalTn): Promise<DestinationKey[]> {
    const stated = (answer: KeyDirectoryAnswer) =>
      keysFromJwkSet({
        keys: answer.exact
          ? answer.entries
          : answer.entries.filter((e) => {
              const block = (e as { block?: unknown } | null)?.block;
              try {
                return typeof block === "string" && blockContainsTn(parseBlock(block), tn);
              } catch {
                return false;
              }
            }),
      });
    return stated(await this.#answerFor(tn, (answer) => stated(answer).length > 0));
  }

  /**
   * The CPS (`cps`, and every CPS of the number in `cpses`) and the keys for `tn` (§8.1 step 3), both
   * from cache when fresh. With `check`, only keys
   * whose signed record passes it (and the served entries for `tn` that did not, with a reason);
   * without, the directory's word (unverified, as `keys`). `nowSeconds` is the call's time.
   * @example
   * const { cps, keys, skipped } = await discovery.destination(tn, new KeyRecordCheck({ trustAnchors }));
   */
  async destination(
    tn: CanonicalTn,
    check?: KeyRecordCheck,
    nowSeconds: number = this.#now() / 1000,
  ): Promise<{ cps: string; cpses: readonly string[]; keys: DestinationKey[]; skipped: SkippedKey[] }> {
    if (check === undefined) {
      const [location, keys] = await Promise.all([this.locate(tn), this.keys(tn)]);
      return { cps: location.cps, cpses: location.cpses, keys, skipped: [] };
    }
    let selected: { keys: DestinationKey[]; skipped: SkippedKey[] } | undefined;
    const [location, answer] = await Promise.all([
      this.locate(tn),
      this.#answerFor(tn, async (a) => {
        selected = await check.select(a, tn, nowSeconds);
        return selected.keys.length > 0 || selected.skipped.length > 0;
      }),
    ]);
    const { keys, skipped } =
      selected?.keys.length || selected?.skipped.length
        ? selected
        : await check.select(answer, tn, nowSeconds);
    return { cps: location.cps, cpses: location.cpses, keys, skipped };
  }

  /** Forgets what is cached for `tn` and its lookup block (e.g. after a store failed with a key or routing error). */
  invalidate(tn: CanonicalTn): void {
    this.#locations.delete(tn);
    this.#answers.delete(keyLookupPath(tn, this.#open).path);
  }
}
