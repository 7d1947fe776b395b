/**
 * The CPS store and retrieval API of RFC 8816 §9: `POST /cps/{tn}/ppts`, `GET /cps/{tn}/ppts`,
 * `GET /cps/{tn}/ppts/{id}`. Thin: parse, call the number's PassportQueue, shape the answer.
 * Storing carries no auth logic here: the storage-token check slots in as one middleware.
 */
import { Hono } from "hono";
import type { PassportQueue } from "../durable-objects/passport-queue.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { methodNotAllowed } from "../http/errors.js";
import { requireStorageToken } from "../http/storage-token.js";
import type { AppEnv } from "../http/types.js";
import { parseBlobId } from "../stir/blob-id.js";
import { decodeEnvelope, encodeEnvelope } from "../stir/envelope.js";
import { shuffle } from "../stir/shuffle.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { deferOf, dummiesFor } from "./dummies.js";

/** RFC 8816 §9 media type of an (encrypted) PASSporT body. */
export const PASSPORT_MEDIA_TYPE = "application/passport";
/** An envelope is 1,430 characters; folded lines and CRLFs stay far below this. */
export const MAX_STORE_BODY_BYTES = 8 * 1024;

function queue(env: Env, tn: CanonicalTn): DurableObjectStub<PassportQueue> {
  const ns = env.PASSPORT_QUEUE as DurableObjectNamespace<PassportQueue>;
  return ns.get(ns.idFromName(tn));
}

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
    const result = await queue(c.env, tn).store(blob, tn);
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
  const [stored, dummies] = await Promise.all([queue(c.env, tn).list(), dummiesFor(tn, deferOf(c))]);
  const passports = shuffle([...stored, ...dummies]).map((p) => ({ id: p.id, blob: encodeEnvelope(p.blob) }));
  return c.json({ passports });
});

// RFC 8816 §9 fetches `/cps/{tn}/ppts/ppt1/` with a trailing slash, so both spellings work.
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) {
  passportRoutes.get(path, async (c) => {
    const tn = canonicalTn(c.req.param("tn") ?? "");
    const id = parseBlobId(c.req.param("id") ?? "");
    const blob = await queue(c.env, tn).get(id);
    if (!blob) throw new CpsError("NOT_FOUND", "No live PASSporT with this id");
    c.header("Content-Type", PASSPORT_MEDIA_TYPE);
    c.header("Link", `</cps/${tn}/ppts>; rel="collection"`);
    return c.body(encodeEnvelope(blob));
  });
}

passportRoutes.all("/:tn/ppts", methodNotAllowed("GET, POST"));
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) passportRoutes.all(path, methodNotAllowed("GET"));
