/**
 * The body and number of `POST /cps/{tn}/ppts` (RFC 8816 §9), decoded once, after the media-type and
 * size checks (body.ts): the canonical number and the envelope's bytes. The storage-token check and
 * the store handler both read this one value (`c.get("store")`), so neither decodes the body or
 * canonicalises the number again. Bad input is a 4xx problem before anything is stored
 * (docs/design.md invariant 7): INVALID_TN first, then the envelope decoder's code.
 */
import type { MiddlewareHandler } from "hono";
import { decodeEnvelope } from "../stir/envelope.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";

/** A store request as the storage-token check and the store handler see it. */
export interface StoreRequest {
  readonly tn: CanonicalTn;
  /** The envelope's bytes (`decodeEnvelope`): what is stored, and what K_temp signed with `tn`. */
  readonly blob: Uint8Array;
}

/** What `storeRequest` adds to the context of the handlers after it. */
export interface StoreRequestEnv {
  Variables: { store: StoreRequest };
}

const ascii = new TextDecoder();

/** Decodes the store request once and sets `store`. Hono caches the body, so it is read once too. */
export function storeRequest(): MiddlewareHandler<StoreRequestEnv> {
  return async function storeRequest(c, next) {
    const tn = canonicalTn(c.req.param("tn") ?? "");
    // Decoded by hand: the body is ASCII base64url, and non-ASCII bytes fail the alphabet check.
    const blob = decodeEnvelope(ascii.decode(await c.req.arrayBuffer()));
    c.set("store", { tn, blob });
    await next();
  };
}
