/**
 * Fetching the certificate chain named by a PASSporT's `x5u` (RFC 8225 §4.3, RFC 8224 §7.3) or an
 * Identity header's `info`, or by a credential token's `x5u`, for verifiers.
 *
 * The URL comes from an unauthenticated party, so it is held to a policy before any fetch
 * (`checkX5uUrl`; docs/passport-and-credentials.md "x5u URL policy"): https (RFC 8226 §10 wants an
 * integrity-protected fetch) on port 443, no userinfo, a DNS name (never an IP literal, in any of the
 * forms the URL parser accepts), not `localhost` or another name that only resolves inside a network,
 * and, when the operator lists them, one of the allowed certificate repository hosts. Loopback only
 * under a development switch. No redirects (`redirect: "manual"`): a redirect could leave the policy.
 * Bodies are read up to a size limit, the whole fetch has a timeout, and results are cached as HTTP
 * says (Cache-Control max-age / no-store / no-cache, Expires), bounded in entries and in TTL.
 *
 * Errors say what failed in fixed words: never the upstream status, host or message (those go to the
 * `onFailure` hook as a reason code, for the operator's log). `fetch` is injected so the protocol code
 * stays free of I/O of its own and tests need no network.
 *
 * The CRL checker (src/stir/crl.ts) fetches CRL distribution points under the same URL policy and
 * with the same bounded fetch (`fetchBounded`: no redirects, status 200 only, size limit, timeout).
 */

import { CpsError } from "../errors.js";
import { BodyTooLarge, readLimited } from "./bytes.js";
import { cacheLifetime } from "./cache-lifetime.js";
import { type CertificateChain, parseCertificateChain } from "./cert-parse.js";
import { SingleFlight } from "./single-flight.js";
import { isLoopback } from "./urls.js";

/** Which x5u URLs may be fetched, beyond the fixed rules. */
export interface X5uUrlPolicy {
  /**
   * LOCAL DEVELOPMENT ONLY: also loopback hosts (`localhost`, 127.0.0.0/8, `[::1]`), over http or
   * https, on any port. Never private or link-local addresses.
   */
  readonly allowLoopback?: boolean;
  /**
   * Certificate repository hosts the operator allows: exact names, or `*.example.net` for any name
   * below example.net. Empty or absent: any public name that passes the rules.
   */
  readonly allowedHosts?: readonly string[];
}

/** Why a fetch failed, for the operator's log (never shown to clients). */
export type X5uFailureReason = "status" | "too-large" | "timeout" | "network";

export interface X5uFetcherOptions {
  /** The fetch to use (default: global fetch). */
  readonly fetch?: typeof fetch;
  /** Largest body accepted, bytes (default 64 KiB: a chain of a few certificates is ~3 KiB). */
  readonly maxBytes?: number;
  /** Timeout for the whole fetch, milliseconds (default 5000). */
  readonly timeoutMs?: number;
  /** Cached URLs at most (default 128), least recently used evicted. */
  readonly cacheEntries?: number;
  /** TTL when the response says nothing, seconds (default 3600). */
  readonly defaultTtlSeconds?: number;
  /** TTL ceiling whatever the response says, seconds (default 86400). */
  readonly maxTtlSeconds?: number;
  /** Allow loopback hosts, http or https, any port (local development only; default false). */
  readonly allowLoopbackHttp?: boolean;
  /** Allowed certificate repository hosts (see `X5uUrlPolicy.allowedHosts`). */
  readonly allowedHosts?: readonly string[];
  /** Called once per failed fetch with a reason code (and the upstream status for "status"). */
  readonly onFailure?: (reason: X5uFailureReason, status?: number) => void;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
}

const REFUSED = "The certificate URL is not allowed";
const FAILED = "The certificate could not be fetched";

function refused(cause?: unknown): CpsError {
  return new CpsError("X5U_FETCH_FAILED", REFUSED, cause === undefined ? {} : { cause });
}

function failed(cause?: unknown): CpsError {
  return new CpsError("X5U_FETCH_FAILED", FAILED, cause === undefined ? {} : { cause });
}

// After WHATWG URL parsing, every IPv4 form (decimal 2130706433, hex 0x7f.1, octal 0177.0.0.1, short
// 127.1) is already normalised to dotted quad, and IPv6 (v4-mapped too) is in brackets.
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
// Names that resolve only inside a network, never to a certificate repository (RFC 6761, RFC 6762,
// RFC 8375, ICANN's .internal): the CPS must not be made to reach into its own network through them.
// ".arpa" covers RFC 8375's ".home.arpa"; single-label names (`localhost` too) are refused separately.
const LOCAL_SUFFIXES = [".localhost", ".local", ".internal", ".arpa", ".lan", ".intranet"];

/** A host name as compared: lower case (the URL parser did that), no trailing dot. */
function normalHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, "");
}

/** True when `host` is named by an allow-list entry (exact, or `*.suffix` for names below suffix). */
function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = normalHost(host);
  return allowed.some((entry) => {
    const e = normalHost(entry.trim());
    return e.startsWith("*.") ? h.endsWith(e.slice(1)) && h.length > e.length - 1 : h === e;
  });
}

/**
 * Checks that `url` may be fetched (see the module comment); the second argument is the policy, or
 * `true` for `{ allowLoopback: true }`. Throws `X5U_FETCH_FAILED` with one fixed title.
 */
export function checkX5uUrl(url: string, policy: boolean | X5uUrlPolicy = {}): URL {
  const { allowLoopback = false, allowedHosts = [] } =
    typeof policy === "boolean" ? { allowLoopback: policy } : policy;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw refused(cause);
  }
  if (parsed.username !== "" || parsed.password !== "") throw refused();
  const host = normalHost(parsed.hostname);
  if (allowLoopback && isLoopback(host) && (parsed.protocol === "http:" || parsed.protocol === "https:")) {
    return parsed;
  }
  if (parsed.protocol !== "https:" || parsed.port !== "") throw refused(); // "" is 443 for https
  if (host.startsWith("[") || IPV4.test(host)) throw refused(); // IP literals, public ones too
  if (!host.includes(".") || LOCAL_SUFFIXES.some((s) => host.endsWith(s))) {
    throw refused();
  }
  if (allowedHosts.length > 0 && !hostAllowed(host, allowedHosts)) throw refused();
  return parsed;
}

/** Why `fetchBounded` failed: a reason code (and the upstream status for "status"), never shown to clients. */
export class BoundedFetchError extends Error {
  constructor(
    readonly reason: X5uFailureReason,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

/**
 * One GET of a URL that already passed `checkX5uUrl`, held to the x5u fetch rules: no redirects (a
 * 3xx, or a browser's opaque redirect with status 0, is a failure), status 200 only, the body read up
 * to `maxBytes`, the whole fetch within `timeoutMs`. Throws `BoundedFetchError` with a reason code.
 */
export async function fetchBounded(
  fetchFn: typeof fetch,
  url: string,
  options: { readonly maxBytes: number; readonly timeoutMs: number; readonly accept: string },
): Promise<{ body: Uint8Array; headers: Headers }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  try {
    const response = await fetchFn(url, {
      redirect: "manual",
      signal: controller.signal,
      headers: { accept: options.accept },
    });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw new BoundedFetchError("status", response.status);
    }
    const body = await readLimited(response.body, response.headers.get("content-length"), options.maxBytes);
    return { body, headers: response.headers };
  } catch (cause) {
    if (cause instanceof BoundedFetchError) throw cause;
    if (cause instanceof BodyTooLarge) throw new BoundedFetchError("too-large", undefined, { cause });
    throw new BoundedFetchError(controller.signal.aborted ? "timeout" : "network", undefined, { cause });
  } finally {
    clearTimeout(timer);
  }
}

/** Turns a body into a chain: PEM text (one or more certificates) or one DER certificate. */
async function bodyToChain(body: Uint8Array): Promise<CertificateChain> {
  const head = new TextDecoder().decode(body.subarray(0, 64));
  if (head.includes("-----BEGIN")) return parseCertificateChain(new TextDecoder().decode(body));
  return parseCertificateChain([body]);
}

/**
 * Fetches and caches certificate chains by URL.
 *
 * @example
 * const x5u = new X5uFetcher();
 * const chain = await x5u.fetchChain(header.x5u);
 * const cert = await validator.validate(chain);
 */
export class X5uFetcher {
  readonly #fetch: typeof fetch;
  readonly #maxBytes: number;
  readonly #timeoutMs: number;
  readonly #entries: number;
  readonly #defaultTtl: number;
  readonly #maxTtl: number;
  readonly #policy: X5uUrlPolicy;
  readonly #onFailure: NonNullable<X5uFetcherOptions["onFailure"]>;
  readonly #now: () => number;
  readonly #cache = new Map<string, { chain: CertificateChain; expiresAt: number }>();
  readonly #inflight = new SingleFlight<CertificateChain>();

  constructor(options: X5uFetcherOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#maxBytes = options.maxBytes ?? 65_536;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#entries = Math.max(1, options.cacheEntries ?? 128);
    this.#defaultTtl = options.defaultTtlSeconds ?? 3600;
    this.#maxTtl = options.maxTtlSeconds ?? 86_400;
    this.#policy = {
      allowLoopback: options.allowLoopbackHttp ?? false,
      allowedHosts: options.allowedHosts ?? [],
    };
    this.#onFailure = options.onFailure ?? (() => undefined);
    this.#now = options.now ?? Date.now;
  }

  /** Number of cached URLs. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The chain at `url`, from the cache while fresh, else fetched. Throws `X5U_FETCH_FAILED` / `CERT_MALFORMED`. */
  async fetchChain(url: string): Promise<CertificateChain> {
    const key = checkX5uUrl(url, this.#policy).href;
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      this.#cache.delete(key);
      if (hit.expiresAt > this.#now()) {
        this.#cache.set(key, hit);
        return hit.chain;
      }
    }
    // One fetch per URL at a time: concurrent verifications of one caller share it.
    return this.#inflight.run(key, () => this.#load(key));
  }

  async #load(url: string): Promise<CertificateChain> {
    let body: Uint8Array;
    let headers: Headers;
    try {
      ({ body, headers } = await fetchBounded(this.#fetch, url, {
        maxBytes: this.#maxBytes,
        timeoutMs: this.#timeoutMs,
        accept: "application/pkix-cert, application/x-pem-file, application/pem-certificate-chain",
      }));
    } catch (cause) {
      if (cause instanceof BoundedFetchError) this.#onFailure(cause.reason, cause.status);
      else this.#onFailure("network");
      throw failed(cause);
    }
    const chain = await bodyToChain(body);
    const now = this.#now();
    const ttl = Math.min(cacheLifetime(headers, now, this.#defaultTtl), this.#maxTtl);
    if (ttl > 0) {
      this.#cache.set(url, { chain, expiresAt: now + ttl * 1000 });
      while (this.#cache.size > this.#entries) {
        const oldest = this.#cache.keys().next().value;
        if (oldest === undefined) break;
        this.#cache.delete(oldest);
      }
    }
    return chain;
  }
}

/**
 * A verifier's default x5u resolver: one cached `X5uFetcher` held to `policy` (https:443, a public
 * DNS name, no IP literals unless the policy allows loopback), as `(url) => chain`.
 */
export function x5uChainResolver(
  fetch: typeof globalThis.fetch | undefined,
  policy: X5uUrlPolicy = {},
): (url: string) => Promise<CertificateChain> {
  const fetcher = new X5uFetcher({
    ...(fetch ? { fetch } : {}),
    allowLoopbackHttp: policy.allowLoopback ?? false,
    allowedHosts: policy.allowedHosts ?? [],
  });
  return (url) => fetcher.fetchChain(url);
}
