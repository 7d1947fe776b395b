/**
 * Fetching the certificate chain named by a PASSporT's `x5u` (RFC 8225 §4.3, RFC 8224 §7.3) or an
 * Identity header's `info`, for verifiers.
 *
 * https only (RFC 8226 §10 wants an integrity-protected fetch); plain http only for loopback hosts and
 * only when asked (tests). No redirects (`redirect: "manual"`, which workerd also supports): a
 * redirect could leave https. Bodies are read up to a size limit, the whole fetch has a timeout, and
 * results are cached as HTTP says (Cache-Control max-age / no-store / no-cache, Expires), bounded in
 * entries and in TTL. `fetch` is injected so the protocol
 * code stays free of I/O of its own and tests need no network.
 */
import { CpsError } from "../errors.js";
import { type CertificateChain, parseCertificateChain } from "./cert-parse.js";

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
  /** Allow `http:` to loopback hosts (tests only; default false). */
  readonly allowLoopbackHttp?: boolean;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

function failed(message: string, cause?: unknown): CpsError {
  return new CpsError("X5U_FETCH_FAILED", message, cause === undefined ? {} : { cause });
}

/** Checks that `url` may be fetched: https, or http to loopback when allowed. Throws `X5U_FETCH_FAILED`. */
export function checkX5uUrl(url: string, allowLoopbackHttp = false): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw failed("The certificate URL is not a URL", cause);
  }
  if (parsed.username !== "" || parsed.password !== "")
    throw failed("The certificate URL carries credentials");
  if (parsed.protocol === "https:") return parsed;
  if (parsed.protocol === "http:" && allowLoopbackHttp && LOOPBACK.has(parsed.hostname)) return parsed;
  throw failed("The certificate URL must be https");
}

/** Seconds the response may be cached, from Cache-Control and Expires (RFC 9111 §5.2.2, §5.3). */
export function cacheLifetime(headers: Headers, nowMs: number, defaultTtl: number): number {
  const cc = (headers.get("cache-control") ?? "").toLowerCase();
  if (/(?:^|,)\s*(?:no-store|no-cache|private)\b/.test(cc)) return 0;
  const maxAge = /(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*"?(\d+)"?/.exec(cc);
  if (maxAge?.[1] !== undefined) return Number(maxAge[1]);
  const expires = headers.get("expires");
  if (expires !== null) {
    const at = Date.parse(expires);
    if (Number.isNaN(at)) return 0; // RFC 9111 §5.3: an invalid Expires means already expired.
    const date = Date.parse(headers.get("date") ?? "");
    return Math.max(0, Math.floor((at - (Number.isNaN(date) ? nowMs : date)) / 1000));
  }
  return defaultTtl;
}

async function readLimited(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw failed("The certificate response is too large");
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw failed("The certificate response is too large");
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
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
  readonly #loopback: boolean;
  readonly #now: () => number;
  readonly #cache = new Map<string, { chain: CertificateChain; expiresAt: number }>();
  readonly #inflight = new Map<string, Promise<CertificateChain>>();

  constructor(options: X5uFetcherOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#maxBytes = options.maxBytes ?? 65_536;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#entries = Math.max(1, options.cacheEntries ?? 128);
    this.#defaultTtl = options.defaultTtlSeconds ?? 3600;
    this.#maxTtl = options.maxTtlSeconds ?? 86_400;
    this.#loopback = options.allowLoopbackHttp ?? false;
    this.#now = options.now ?? Date.now;
  }

  /** Number of cached URLs. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The chain at `url`, from the cache while fresh, else fetched. Throws `X5U_FETCH_FAILED` / `CERT_MALFORMED`. */
  async fetchChain(url: string): Promise<CertificateChain> {
    const key = checkX5uUrl(url, this.#loopback).href;
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      this.#cache.delete(key);
      if (hit.expiresAt > this.#now()) {
        this.#cache.set(key, hit);
        return hit.chain;
      }
    }
    // One fetch per URL at a time: concurrent verifications of one caller share it.
    const pending = this.#inflight.get(key);
    if (pending !== undefined) return pending;
    const p = this.#load(key).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #load(url: string): Promise<CertificateChain> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let response: Response;
    let body: Uint8Array;
    try {
      response = await this.#fetch(url, {
        redirect: "manual", // a 3xx (or a browser's opaque redirect, status 0) is not 200, so it fails below
        signal: controller.signal,
        headers: {
          accept: "application/pkix-cert, application/x-pem-file, application/pem-certificate-chain",
        },
      });
      if (response.status !== 200) throw failed(`The certificate URL answered ${response.status}`);
      body = await readLimited(response, this.#maxBytes);
    } catch (cause) {
      if (cause instanceof CpsError) throw cause;
      throw failed("The certificate could not be fetched", cause);
    } finally {
      clearTimeout(timer);
    }
    const chain = await bodyToChain(body);
    const now = this.#now();
    const ttl = Math.min(cacheLifetime(response.headers, now, this.#defaultTtl), this.#maxTtl);
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
