/**
 * The error answers of the ATIS routes (docs/atis-api.md "Errors"). ATIS and VESPER clients read a
 * JSON body with `status` and `message` (draft-wendt-stir-vesper-oob: errors 400/401/403/429/503 with
 * a JSON body, like its `{"status":201,"message":"Created"}`); ours read the stable `code`. So every
 * 4xx/5xx on those paths is `application/json` with both: `{"status", "message", "code", "type",
 * "title"}` (`type`, `title`, `code` as in the RFC 9457 problems of the other routes), never cached,
 * `Retry-After` on 429 and 503 as everywhere (src/errors.ts).
 */
import type { Context } from "hono";
import { type CpsError, retryAfterHeader, toProblem } from "../errors.js";
import { toCpsError } from "./errors.js";

/** The JSON body of an ATIS error answer. */
export interface AtisErrorBody {
  status: number;
  message: string;
  code: CpsError["code"];
  type: string;
  title: string;
}

export function atisErrorBody(err: CpsError): AtisErrorBody {
  const problem = toProblem(err);
  return {
    status: problem.status,
    message: problem.title,
    code: problem.code,
    type: problem.type,
    title: problem.title,
  };
}

export function atisErrorResponse(err: CpsError): Response {
  const headers = new Headers({ "Content-Type": "application/json", "Cache-Control": "no-store" });
  const retryAfter = retryAfterHeader(err);
  if (retryAfter !== undefined) headers.set("Retry-After", retryAfter);
  return new Response(JSON.stringify(atisErrorBody(err)), { status: err.status, headers });
}

/** The ATIS routes' `onError`: the app's mapping of failures (src/http/errors.ts), in this format. */
export function atisOnError(err: unknown, c: Context): Response {
  return atisErrorResponse(toCpsError(err, c));
}
