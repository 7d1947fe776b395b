/**
 * The CPS store and retrieval API of RFC 8816 §9: `POST /cps/{tn}/ppts`, `GET /cps/{tn}/ppts`,
 * `GET /cps/{tn}/ppts/{id}`. Thin: parse, call the object holding the number's blobs (its index
 * block's BlockQueue, storage/objects.ts), shape the answer.
 * Storing carries no auth logic here: the storage-token check slots in as one middleware.
 *
 * A hot number (HOT_NUMBERS; docs/capacity.md "Hot numbers") has several PassportQueue shards instead:
 * a store goes to one, a retrieval asks all of them in parallel and answers as if they were one queue,
 * with the number's one decoy set. A normal number's requests reach its block alone.
 */
import { Hono } from "hono";
import { blobAnswer, listAnswer } from "../dummies/answers.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { methodNotAllowed } from "../http/errors.js";
import { readStorageToken, requireStorageToken } from "../http/storage-token.js";
import { storeRequest } from "../http/store-request.js";
import type { AppEnv } from "../http/types.js";
import { parseBlobId } from "../stir/blob-id.js";
import { encodeEnvelope } from "../stir/envelope.js";
import { canonicalTn } from "../stir/tn.js";
import { type NumberShard, numberShardForStore, numberShards } from "../storage/objects.js";

/** RFC 8816 §9 media type of an (encrypted) PASSporT body. */
export const PASSPORT_MEDIA_TYPE = "application/passport";
/** An envelope is 1,430 characters; folded lines and CRLFs stay far below this. */
export const MAX_STORE_BODY_BYTES = 8 * 1024;

export const passportRoutes = new Hono<AppEnv>();

// In this order, so the same error wins when several things are wrong: media type (415), size (413),
// token headers (401/400), number and envelope (400), token signatures and spend (401/429).
passportRoutes.post(
  "/:tn/ppts",
  requireContentType(PASSPORT_MEDIA_TYPE),
  limitBody(MAX_STORE_BODY_BYTES),
  readStorageToken(),
  storeRequest(),
  requireStorageToken(),
  async (c) => {
    const { tn, blob } = c.get("store");
    // Only a true retry (same token, signature, number and blob) is answered with an existing id:
    // the queue dedupes on this key, never on the bytes, so replaying a copied blob, real or decoy,
    // is a new store either way. Untokened stores (local dev) have none.
    const retryKey = c.get("retryKey");
    const result = await numberShardForStore(c.env, c.get("config"), tn, retryKey).store(blob, retryKey);
    if (!result.ok) {
      throw new CpsError("QUEUE_FULL", "Too many live PASSporTs for this number", {
        retryAfter: result.retryAfterSeconds,
      });
    }
    c.header("Location", `/cps/${tn}/ppts/${result.id}`);
    return c.json({ id: result.id, expires: new Date(result.expiresAt).toISOString() }, 201);
  },
);

/**
 * Every shard's live blobs as one read (a normal number has one shard: its index block). Its instant
 * is the earliest shard's: the shards are read in parallel, so their instants lie milliseconds apart, and the decoys judged at the earliest are those
 * live when the whole read had begun; a blob stored or expiring inside that gap may show or not either
 * way, as with one object read a moment earlier or later.
 */
async function listShards(shards: NumberShard[]) {
  const reads = await Promise.all(shards.map((q) => q.listAt()));
  return { at: Math.min(...reads.map((r) => r.at)), rows: reads.flatMap((r) => r.rows) };
}

/** The shard holding `id` answers (ids are random, so at most one does); else none, at the earliest instant. */
async function getFromShards(shards: NumberShard[], id: string) {
  const reads = await Promise.all(shards.map((q) => q.getAt(id)));
  return reads.find((r) => r.blob !== null) ?? { at: Math.min(...reads.map((r) => r.at)), blob: null };
}

passportRoutes.get("/:tn/ppts", async (c) => {
  const tn = canonicalTn(c.req.param("tn"));
  const shards = numberShards(c.env, c.get("config"), tn);
  const items = await listAnswer(c.env, tn, listShards(shards));
  return c.json({ passports: items.map((p) => ({ id: p.id, blob: encodeEnvelope(p.blob) })) });
});

// RFC 8816 §9 fetches `/cps/{tn}/ppts/ppt1/` with a trailing slash, so both spellings work.
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) {
  passportRoutes.get(path, async (c) => {
    const tn = canonicalTn(c.req.param("tn") ?? "");
    const id = parseBlobId(c.req.param("id") ?? "");
    const shards = numberShards(c.env, c.get("config"), tn);
    const blob = await blobAnswer(c.env, tn, id, getFromShards(shards, id));
    if (!blob) throw new CpsError("NOT_FOUND", "No live PASSporT with this id");
    c.header("Content-Type", PASSPORT_MEDIA_TYPE);
    c.header("Link", `</cps/${tn}/ppts>; rel="collection"`);
    return c.body(encodeEnvelope(blob));
  });
}

passportRoutes.all("/:tn/ppts", methodNotAllowed("GET, POST"));
for (const path of ["/:tn/ppts/:id", "/:tn/ppts/:id/"]) passportRoutes.all(path, methodNotAllowed("GET"));
