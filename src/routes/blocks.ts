/**
 * Block retrieval and block subscriptions (RFC 8816 §5.5 call centres, §6.2 "a range or prefix of
 * numbers"): `GET /cps/blocks/{block}/ppts` and `GET /cps/blocks/{block}/subscribe`, where `{block}`
 * is digits then one `x` per open digit, at most 4 open (`120255501xx`). Each is answered by the one
 * BlockQueue whose 10^4 index block contains the query: no fan-out (docs/push-and-blocks.md).
 */
import { Hono } from "hono";
import type { BlockQueue } from "../durable-objects/block-queue.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { newBlobId } from "../stir/blob-id.js";
import { encodeEnvelope, makeDummy } from "../stir/envelope.js";
import { type BlockQuery, indexBlockOfQuery, parseBlockQuery, randomTnInBlock } from "../stir/push-blocks.js";
import { shuffle } from "../stir/shuffle.js";
import type { CanonicalTn } from "../stir/tn.js";
import { MAX_DUMMIES, MIN_DUMMIES } from "./dummies.js";
import { forwardUpgrade, requireWebSocketUpgrade } from "./subscriptions.js";

function blockQueue(env: Env, query: BlockQuery): DurableObjectStub<BlockQueue> {
  const ns = env.BLOCK_QUEUE as DurableObjectNamespace<BlockQueue>;
  return ns.get(ns.idFromName(`block:${indexBlockOfQuery(query)}`));
}

/** 1-3 dummies, each labelled with a random number of the block (RFC 8816 §6.2). */
async function blockDummies(query: BlockQuery) {
  const [r] = crypto.getRandomValues(new Uint32Array(1));
  const count = MIN_DUMMIES + (r! % (MAX_DUMMIES - MIN_DUMMIES + 1));
  return Promise.all(
    Array.from({ length: count }, async () => {
      const tn = randomTnInBlock(query);
      return { id: newBlobId(), tn, blob: await makeDummy(tn as CanonicalTn) };
    }),
  );
}

export const blockRoutes = new Hono<AppEnv>();

blockRoutes.get("/:block/ppts", async (c) => {
  const query = parseBlockQuery(c.req.param("block"));
  const [{ blobs, truncated }, dummies] = await Promise.all([
    blockQueue(c.env, query).list(query),
    blockDummies(query),
  ]);
  const passports = shuffle([...blobs, ...dummies]).map((p) => ({
    id: p.id,
    tn: p.tn,
    blob: encodeEnvelope(p.blob),
  }));
  return c.json(truncated ? { passports, truncated } : { passports });
});

blockRoutes.get("/:block/subscribe", async (c) => {
  const query = parseBlockQuery(c.req.param("block"));
  requireWebSocketUpgrade(c.req.raw);
  return forwardUpgrade(
    blockQueue(c.env, query),
    `https://block-queue/subscribe?digits=${query.digits}&open=${query.open}`,
  );
});

blockRoutes.all("/:block/ppts", methodNotAllowed("GET"));
blockRoutes.all("/:block/subscribe", methodNotAllowed("GET"));
