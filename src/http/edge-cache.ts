/**
 * Public directory answers (keys, discovery) through the Workers Cache API of the colo, so repeated
 * lookups of one number or block cost no KV operation for `max-age` seconds (RFC 8816 §11: caches
 * also conceal who looks up whom). Only 200 answers with `public, max-age>0` are stored.
 *
 * Cache keys are built from the parsed, canonical request (docs/key-directory.md "Caching"), never
 * from the raw URL: `+1-202-555-0100` and `12025550100` share one entry, and a query parameter the
 * route does not read (a cache-buster) cannot make a miss that costs KV work.
 *
 * Staleness: a write purges what it can name (`purgeDirectoryCache`, called by the key routes) in the
 * cache of the colo that took it; everything else can be served until its max-age runs out.
 */
import type { Context } from "hono";
import { cacheLifetime } from "../stir/cache-lifetime.js";
import { formatBlock, type NumberBlock } from "../stir/number-blocks.js";
import type { AppEnv } from "./types.js";

export const CACHE_STATUS_HEADER = "X-Directory-Cache";

/** The origin directory cache keys are built on: the request's own (keys and discovery routes). */
export const originOf = (c: Context<AppEnv>) => new URL(c.req.url).origin;

/** Cache key of `GET /keys/{tn}` (`tn` canonical). */
export function keyLookupCacheKey(origin: string, tn: string): string {
  return `${origin}/keys/${tn}`;
}

/** Cache key of `GET /keys?prefix=` (`limit` only when given, `cursor` as received once checked). */
export function prefetchCacheKey(
  origin: string,
  block: NumberBlock,
  limit: number | undefined,
  cursor: string | undefined,
): string {
  const limitPart = limit === undefined ? "" : `&limit=${limit}`;
  const cursorPart = cursor === undefined ? "" : `&cursor=${cursor}`;
  return `${origin}/keys?prefix=${formatBlock(block)}${limitPart}${cursorPart}`;
}

/** Cache key of `GET /.well-known/stir-oob?tn=` (`tn` canonical). */
export function discoveryCacheKey(origin: string, tn: string): string {
  return `${origin}/.well-known/stir-oob?tn=${tn}`;
}

/** A 200 the route marked `public` with a lifetime (the same reading of it as every cache of ours). */
function cacheable(res: Response): boolean {
  const cc = res.headers.get("Cache-Control") ?? "";
  return res.status === 200 && cc.includes("public") && cacheLifetime(res.headers, Date.now(), 0) > 0;
}

const defaultCache = () => (typeof caches === "undefined" ? undefined : caches.default);

/** Runs `promise` after the answer when there is an execution context, else before (app.request in tests). */
async function inBackground(c: Context<AppEnv>, promise: Promise<unknown>): Promise<void> {
  try {
    c.executionCtx.waitUntil(promise);
  } catch {
    await promise;
  }
}

export async function edgeCached(
  c: Context<AppEnv>,
  cacheKey: string,
  compute: () => Promise<Response>,
): Promise<Response> {
  const cache = defaultCache();
  const key = new Request(cacheKey, { method: "GET" });
  const hit = cache ? await cache.match(key) : undefined;
  if (hit) {
    const res = new Response(hit.body, hit);
    res.headers.set(CACHE_STATUS_HEADER, "HIT");
    return res;
  }
  const res = await compute();
  res.headers.set(CACHE_STATUS_HEADER, "MISS");
  if (cache && cacheable(res)) await inBackground(c, cache.put(key, res.clone()));
  return res;
}

/**
 * Deletes the named entries (distinct, as `purgeKeysFor` gives them) from this colo's cache, before
 * the write's answer goes out, so that the writer's next lookup through the same colo sees the write.
 * Other colos keep theirs until max-age.
 */
export async function purgeDirectoryCache(cacheKeys: readonly string[]): Promise<void> {
  const cache = defaultCache();
  if (!cache) return;
  await Promise.all(cacheKeys.map((k) => cache.delete(new Request(k, { method: "GET" }))));
}
