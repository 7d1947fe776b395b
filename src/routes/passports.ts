/**
 * The CPS store and retrieval API of RFC 8816 §9: `POST /cps/{tn}/ppts`, `GET /cps/{tn}/ppts`,
 * `GET /cps/{tn}/ppts/{id}`. Thin: parse, call the number's PassportQueue, shape the answer.
 * Storing carries no auth logic here: the storage-token check slots in as one middleware.
 */
import { Hono } from "hono";
import { liveDecoys } from "../dummies/decoys.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { methodNotAllowed } from "../http/errors.js";
import { requireStorageToken } from "../http/storage-token.js";
import type { AppEnv } from "../http/types.js";
import { parseBlobId } from "../stir/blob-id.js";
import { decodeEnvelope, encodeEnvelope } from "../stir/envelope.js";
import { shuffle } from "../stir/shuffle.js";
import { canonicalTn } from "../stir/tn.js";
import { passportQueue } from "../storage/objects.js";

/** RFC 8816 §9 media type of an (encrypted) PASSporT body. */
export const PASSPORT_MEDIA_TYPE = "application/passport";
/** An envelope is 1,430 characters; folded lines and CRLFs stay far below this. */
export const MAX_STORE_BODY_BYTES = 8 * 1024;

const queue = passportQueue;

const ascii = new TextDecoder();

export const passportRoutes = new Hono<AppEnv>();

passportRoutes.post(
  "/:tn/ppts",
  requireContentType(PASSPORT_MEDIA_TYPE),
  limitBody(MAX_STORE_BODY_BYTES),
  requireStorageToken(),
  async (c) => {
    const tn = canonicalTn(c.req.param("tn"));
    // Decoded by hand: the body is ASCII base64url, and non-ASCII bytes fail the alphabet check. The
    // token check has already decoded it when the store carried a token.
    const blob = c.get("blob") ?? decodeEnvelope(ascii.decode(await c.req.arrayBuffer()));
    // Only a true retry (same token, signature, number and blob) is answered with an existing id:
    // the queue dedupes on this key, never on the bytes, so replaying a copied blob, real or decoy,
    // is a new store either way (issue 13 finding 5). Untokened stores (local dev) have none.
    const result = await queue(c.env, tn).store(blob, tn, c.get("retryKey"));
    if (!result.ok) {
      throw new CpsError("QUEUE_FULL", "Too many live PASSporTs for this number", {
        retryAfter: result.retryAfterSeconds,
      });
    }
    c.header("Location", `/cps/${tn}/ppts/${result.id}`);
    return c.json({ id: result.id, expires: new Date(result.expiresAt).toISOString() }, 201);
  },
);

passportRoutes.get("/:tn/ppts", async (c) => {
  const tn = canonicalTn(c.req.param("tn"));
  // Decoys are judged live at the instant the object judged its rows, so a real blob and a decoy near
  // the end of their lives are treated alike. Computing them beside the object's read seals them
  // meanwhile; the second call at the object's instant finds them in the isolate's cache.
  const [{ at, rows }] = await Promise.all([queue(c.env, tn).listAt(), liveDecoys(c.env, tn)]);
  const dummies = await liveDecoys(c.env, tn, at);
  const passports = shuffle([...rows, ...dummies]).map((p) => ({ id: p.id, blob: encodeEnvelope(p.blob) }));
  return c.json({ passports });
});

// RFC 8816 §9 fetches `/cps/{tn}/ppts/ppt1/` with a trailing slash, so both spellings work.
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) {
  passportRoutes.get(path, async (c) => {
    const tn = canonicalTn(c.req.param("tn") ?? "");
    const id = parseBlobId(c.req.param("id") ?? "");
    // Both, whatever the id: a decoy GET takes the real one's path (the object is asked) and a real
    // GET the decoy's (the live decoys are computed), so the time taken does not tell them apart.
    // Decoys judged at the object's instant, as in the list.
    const [{ at, blob: stored }] = await Promise.all([queue(c.env, tn).getAt(id), liveDecoys(c.env, tn)]);
    const blob = stored ?? (await liveDecoys(c.env, tn, at)).find((d) => d.id === id)?.blob;
    if (!blob) throw new CpsError("NOT_FOUND", "No live PASSporT with this id");
    c.header("Content-Type", PASSPORT_MEDIA_TYPE);
    c.header("Link", `</cps/${tn}/ppts>; rel="collection"`);
    return c.body(encodeEnvelope(blob));
  });
}

passportRoutes.all("/:tn/ppts", methodNotAllowed("GET, POST"));
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) passportRoutes.all(path, methodNotAllowed("GET"));
