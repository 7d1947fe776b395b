/**
 * Public directory answers (keys, discovery) through the Workers Cache API of the colo, so repeated
 * lookups of one number or block cost no KV operation for `max-age` seconds (RFC 8816 §11: caches
 * also conceal who looks up whom). Only 200 answers with `public, max-age>0` are stored; the cost is
 * staleness: a deleted key or record can be served until its cached answer's max-age runs out.
 */
import type { Context } from "hono";
import type { AppEnv } from "../http/types.js";

export const CACHE_STATUS_HEADER = "X-Directory-Cache";

function cacheable(res: Response): boolean {
  const cc = res.headers.get("Cache-Control") ?? "";
  const m = /max-age=(\d+)/.exec(cc);
  return res.status === 200 && cc.includes("public") && m !== null && Number(m[1]) > 0;
}

export async function edgeCached(c: Context<AppEnv>, compute: () => Promise<Response>): Promise<Response> {
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  const key = new Request(c.req.url, { method: "GET" });
  const hit = cache ? await cache.match(key) : undefined;
  if (hit) {
    const res = new Response(hit.body, hit);
    res.headers.set(CACHE_STATUS_HEADER, "HIT");
    return res;
  }
  const res = await compute();
  res.headers.set(CACHE_STATUS_HEADER, "MISS");
  if (cache && cacheable(res)) {
    const put = cache.put(key, res.clone());
    try {
      c.executionCtx.waitUntil(put);
    } catch {
      await put; // no execution context (app.request in tests): finish before answering
    }
  }
  return res;
}
