/**
 * Turning failures into answers: CpsError -> its problem response; anything else -> a 500 problem
 * with a fixed message (never a stack trace, never a library's message). Logs carry codes only
 * (docs/design.md invariant 6).
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { CpsError, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";

/**
 * A Durable Object infrastructure failure (the runtime's documented `.overloaded` / `.retryable`
 * flags on errors from a stub: an object overloaded, restarting or unreachable), as opposed to a bug.
 * It is the service being busy, not the request being wrong: 503 with Retry-After, which clients
 * (CpsClient.store) retry; every store is idempotent on retry (docs/tokens.md "Retried stores").
 */
function isTransientObjectError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const flags = err as Error & { overloaded?: unknown; retryable?: unknown; remote?: unknown };
  return flags.overloaded === true || (flags.retryable === true && flags.remote !== true);
}

/**
 * Any failure as the CpsError it is answered with (logged when it is ours, a 5xx). The ATIS routes
 * answer the same mapping in their own JSON format (src/http/atis-errors.ts).
 */
export function toCpsError(err: unknown, c: Context): CpsError {
  const mapped =
    err instanceof CpsError
      ? err
      : err instanceof HTTPException && err.status < 500
        ? new CpsError("INVALID_BODY", "The request could not be read", { status: err.status })
        : isTransientObjectError(err)
          ? new CpsError("UNAVAILABLE", "Busy: try again shortly", {
              retryAfter: (err as { overloaded?: unknown }).overloaded === true ? 2 : 1,
            })
          : new CpsError("INTERNAL", "Internal error");
  // 4xx answers are the client's business and show in status metrics; log only our own failures.
  if (mapped.status >= 500)
    logEvent({ event: "error", route: c.req.routePath, code: mapped.code, status: mapped.status });
  return mapped;
}

export function errorToResponse(err: unknown, c: Context): Response {
  return problemResponse(toCpsError(err, c));
}

export function notFound(): Response {
  return problemResponse(new CpsError("NOT_FOUND", "No such resource"));
}

/** Answers 405 for a known path with a method it does not serve. */
export function methodNotAllowed(allow: string): () => Response {
  return function methodNotAllowed() {
    const res = problemResponse(new CpsError("METHOD_NOT_ALLOWED", "Method not allowed on this resource"));
    res.headers.set("Allow", allow);
    return res;
  };
}
