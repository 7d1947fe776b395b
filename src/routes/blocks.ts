/**
 * Block retrieval and block subscriptions (RFC 8816 §5.5 call centres, §6.2 "a range or prefix of
 * numbers"): `GET /cps/blocks/{block}/ppts` and `GET /cps/blocks/{block}/subscribe`, where `{block}`
 * is digits then one `x` per open digit, at most 4 open (`120255501xx`). Each is answered by the one
 * BlockQueue whose 10^4 index block contains the query: no fan-out (docs/push-and-blocks.md).
 */
import { Hono } from "hono";
import { blockDecoys } from "../dummies/decoys.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { encodeEnvelope } from "../stir/envelope.js";
import { type BlockQuery, indexBlockOfQuery, parseBlockQuery } from "../stir/push-blocks.js";
import { shuffle } from "../stir/shuffle.js";
import { blockQueue } from "../storage/objects.js";
import { authenticateSubscriber, forwardUpgrade, requireWebSocketUpgrade } from "./subscriptions.js";

function blockQueueOf(env: Env, query: BlockQuery) {
  return blockQueue(env, indexBlockOfQuery(query));
}

export const blockRoutes = new Hono<AppEnv>();

blockRoutes.get("/:block/ppts", async (c) => {
  const query = parseBlockQuery(c.req.param("block"));
  const listed = await blockQueueOf(c.env, query).list(query);
  // Each number's real blobs come with all its live decoys, as in its own list (src/dummies/decoys.ts),
  // for up to MAX_BLOCK_DECOY_NUMBERS numbers; real blobs are never left out (a call centre needs them).
  const { decoys } = await blockDecoys(
    c.env,
    query.digits,
    query.open,
    listed.blobs.map((b) => b.tn),
  );
  const truncated = listed.truncated;
  const passports = shuffle([...listed.blobs, ...decoys]).map((p) => ({
    id: p.id,
    tn: p.tn,
    blob: encodeEnvelope(p.blob),
  }));
  return c.json(truncated ? { passports, truncated } : { passports });
});

blockRoutes.get("/:block/subscribe", async (c) => {
  const query = parseBlockQuery(c.req.param("block"));
  requireWebSocketUpgrade(c.req.raw);
  const callee = await authenticateSubscriber(c, query);
  return forwardUpgrade(
    blockQueueOf(c.env, query),
    `https://block-queue/subscribe?digits=${query.digits}&open=${query.open}`,
    callee,
  );
});

blockRoutes.all("/:block/ppts", methodNotAllowed("GET"));
blockRoutes.all("/:block/subscribe", methodNotAllowed("GET"));
