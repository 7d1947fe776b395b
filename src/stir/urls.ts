/**
 * URL rules shared by the CPS and the client library (pure code): what "loopback" means, and what a
 * service base URL (a CPS or key directory in a discovery record, RFC 8816 §10) may be.
 */

/** Whether a URL hostname (as `new URL().hostname` gives it) names this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127(\.[0-9]{1,3}){3}$/.test(host);
}

/**
 * A service base URL: https with no credentials, query or fragment; trailing `/` dropped. Plain http
 * only for loopback hosts and only when `allowLoopbackHttp` (local demos). `undefined` otherwise.
 */
export function parseBaseUrl(value: unknown, allowLoopbackHttp: boolean): string | undefined {
  if (typeof value !== "string" || value.length > 512) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const httpOk = url.protocol === "http:" && allowLoopbackHttp && isLoopback(url.hostname);
  if (url.protocol !== "https:" && !httpOk) return undefined;
  if (url.username || url.password || url.search || url.hash) return undefined;
  return url.href.replace(/\/+$/, "");
}
