/** Request-body guards: media type and size, checked before anything reads or stores the body. */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { CpsError } from "../errors.js";

/** Refuses a body whose Content-Type is not `type` (parameters such as charset are allowed): 415. */
export function requireContentType(type: string): MiddlewareHandler {
  return async function requireContentType(c, next) {
    const header = c.req.header("content-type") ?? "";
    const essence = header.split(";")[0]?.trim().toLowerCase();
    if (essence !== type) {
      throw new CpsError("UNSUPPORTED_MEDIA_TYPE", `Send the body as ${type}`);
    }
    await next();
  };
}

/** Refuses a body larger than `maxBytes`, by Content-Length or while streaming: 413. */
export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new CpsError("BODY_TOO_LARGE", `The body is limited to ${maxBytes} bytes`);
    },
  });
}
