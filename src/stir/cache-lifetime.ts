/**
 * How long an HTTP answer may be reused (RFC 9111), for every cache of ours: the x5u fetcher's, the
 * client's discovery and key caches, and the CPS's edge cache of directory answers. Pure code.
 */

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
