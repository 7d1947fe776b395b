/**
 * Turning failures into answers: CpsError -> its problem response; anything else -> a 500 problem
 * with a fixed message (never a stack trace, never a library's message). Logs carry codes only
 * (DESIGN.md invariant 6).
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { CpsError, problemResponse } from "../errors.js";

export function logEvent(event: Record<string, string | number | boolean>): void {
  console.log(JSON.stringify(event));
}

export function errorToResponse(err: unknown, c: Context): Response {
  const mapped =
    err instanceof CpsError
      ? err
      : err instanceof HTTPException && err.status < 500
        ? new CpsError("INVALID_BODY", "The request could not be read", { status: err.status })
        : new CpsError("INTERNAL", "Internal error");
  // 4xx answers are the client's business and show in status metrics; log only our own failures.
  if (mapped.status >= 500)
    logEvent({ event: "error", route: c.req.routePath, code: mapped.code, status: mapped.status });
  return problemResponse(mapped);
}

export function notFound(): Response {
  return problemResponse(new CpsError("NOT_FOUND", "No such resource"));
}

/** Answers 405 for a known path with a method it does not serve. */
export function methodNotAllowed(allow: string): () => Response {
  return () => {
    const res = problemResponse(new CpsError("METHOD_NOT_ALLOWED", "Method not allowed on this resource"));
    res.headers.set("Allow", allow);
    return res;
  };
}
