/**
 * Block retrieval and block subscriptions (RFC 8816 §5.5 call centres, §6.2 "a range or prefix of
 * numbers"): `GET /cps/blocks/{block}/ppts` and `GET /cps/blocks/{block}/subscribe`, where `{block}`
 * is digits then one `x` per open digit, at most 4 open (`120255501xx`). Each is answered by the one
 * BlockQueue whose 10^4 index block contains the query: no fan-out (docs/push-and-blocks.md).
 */
import { Hono } from "hono";
import { blockAnswer } from "../dummies/answers.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { encodeEnvelope } from "../stir/envelope.js";
import type { NumberBlock } from "../stir/number-blocks.js";
import { indexBlockOfQuery, parseBlockQuery } from "../stir/push-blocks.js";
import { blockQueue } from "../storage/objects.js";
import { authenticateSubscriber, forwardUpgrade, requireWebSocketUpgrade } from "./subscriptions.js";

function blockQueueOf(env: Env, block: NumberBlock) {
  return blockQueue(env, indexBlockOfQuery(block));
}

export const blockRoutes = new Hono<AppEnv>();

blockRoutes.get("/:block/ppts", async (c) => {
  const block = parseBlockQuery(c.req.param("block"));
  const { blobs, truncated } = await blockQueueOf(c.env, block).list(block);
  const items = await blockAnswer(c.env, block, blobs);
  const passports = items.map((p) => ({ id: p.id, tn: p.tn, blob: encodeEnvelope(p.blob) }));
  return c.json(truncated ? { passports, truncated } : { passports });
});

blockRoutes.get("/:block/subscribe", async (c) => {
  const block = parseBlockQuery(c.req.param("block"));
  requireWebSocketUpgrade(c.req.raw);
  const callee = await authenticateSubscriber(c, block);
  return forwardUpgrade(
    blockQueueOf(c.env, block),
    `https://block-queue/subscribe?digits=${block.digits}&open=${block.open}`,
    callee,
  );
});

blockRoutes.all("/:block/ppts", methodNotAllowed("GET"));
blockRoutes.all("/:block/subscribe", methodNotAllowed("GET"));
