/**
 * Key directory (RFC 8816 §11, docs/key-directory.md): `PUT /keys/{tn}`, `DELETE /keys/{tn}`,
 * `GET /keys/{tn}` (JWK Set of every live key for the number, cacheable) and `GET /keys?prefix=`
 * (prefetch of a bounded block). Thin: parse, authorise, call src/directory/key-store.ts.
 */
import { type Context, Hono } from "hono";
import { authz } from "../directory/authz-route.js";
import { edgeCached } from "../directory/edge-cache.js";
import { deleteKeys, type FoundKey, keysForBlock, keysForTn, putKey } from "../directory/key-store.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { requireCredential } from "../http/credential-auth.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { encodeBase64url } from "../stir/base64url.js";
import { jwkSet, jwkThumbprint, parseKeyRegistration } from "../stir/key-records.js";
import { type NumberBlock, parseBlock, rangeToBlocks } from "../stir/number-blocks.js";
import { canonicalTn } from "../stir/tn.js";

export const JWK_SET_MEDIA_TYPE = "application/jwk-set+json";
const MAX_KEY_BODY_BYTES = 2048;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** `{tn}` of PUT/DELETE: one number, a block (`1202555xxxx`), or with `count` a start+count range. */
export function targetBlocks(path: string, count: number | undefined): NumberBlock[] {
  if (/x/i.test(path)) {
    if (count !== undefined) throw new CpsError("INVALID_PREFIX", "A block takes no count");
    return [parseBlock(path)];
  }
  const tn = canonicalTn(path);
  return count === undefined || count === 1 ? [{ digits: tn, open: 0 }] : rangeToBlocks(tn, count);
}

function jwkSetResponse(c: Context<AppEnv>, found: FoundKey[], now: number, extra: object = {}): Response {
  const set = jwkSet(found, now);
  // Never cache a key past its expiry.
  const soonest = set.keys.reduce((m, k) => Math.min(m, k.exp - now), Number.POSITIVE_INFINITY);
  const maxAge = Math.max(0, Math.min(c.get("config").keysCacheSeconds, soonest));
  return c.body(JSON.stringify({ ...set, ...extra }), 200, {
    "Content-Type": JWK_SET_MEDIA_TYPE,
    "Cache-Control": `public, max-age=${maxAge}`,
  });
}

export const keyRoutes = new Hono<AppEnv>();

keyRoutes.get("/", (c) =>
  edgeCached(c, async () => {
    const config = c.get("config");
    const block = parseBlock(c.req.query("prefix") ?? "");
    if (block.open > config.keysPrefetchMaxOpenDigits) {
      throw new CpsError(
        "INVALID_PREFIX",
        `A prefetch block leaves at most ${config.keysPrefetchMaxOpenDigits} digits open`,
      );
    }
    authz.requireServed(config, [block]);
    const now = nowSeconds();
    const { keys, truncated } = await keysForBlock(c.env.CPS_KV, block, now);
    return jwkSetResponse(c, keys, now, truncated ? { truncated: true } : {});
  }),
);

keyRoutes.get("/:tn", (c) =>
  edgeCached(c, async () => {
    const tn = canonicalTn(c.req.param("tn"));
    authz.requireServed(c.get("config"), [{ digits: tn, open: 0 }]);
    const now = nowSeconds();
    return jwkSetResponse(c, await keysForTn(c.env.CPS_KV, tn, now), now);
  }),
);

keyRoutes.put(
  "/:tn",
  requireCredential(["keys:put"]),
  requireContentType("application/json"),
  limitBody(MAX_KEY_BODY_BYTES),
  async (c) => {
    const config = c.get("config");
    const reg = parseKeyRegistration(await authz.jsonBody(c));
    const blocks = targetBlocks(c.req.param("tn"), reg.count);
    authz.requireServed(config, blocks);
    const { holder } = await authz.requireAuthority(c, blocks);
    const now = nowSeconds();
    const kid = await jwkThumbprint(reg.publicKey);
    const exp = now + reg.ttlSeconds;
    await putKey(
      c.env.CPS_KV,
      blocks,
      holder,
      { kid, x: encodeBase64url(reg.publicKey), label: reg.label, exp },
      now,
    );
    return c.json(
      { kid, label: reg.label, exp, blocks: blocks.map((b) => b.digits + "x".repeat(b.open)) },
      201,
    );
  },
);

keyRoutes.delete("/:tn", requireCredential(["keys:delete"]), async (c) => {
  const config = c.get("config");
  const rawCount = c.req.query("count");
  const count = rawCount === undefined ? undefined : Number(rawCount);
  if (count !== undefined && (!Number.isSafeInteger(count) || count < 1)) {
    throw new CpsError("INVALID_PREFIX", "count is a whole number of at least 1");
  }
  const kid = c.req.query("kid");
  if (kid !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(kid))
    throw new CpsError("INVALID_ID", "kid is a JWK thumbprint");
  const blocks = targetBlocks(c.req.param("tn"), count);
  authz.requireServed(config, blocks);
  const { holder } = await authz.requireAuthority(c, blocks);
  const removed = await deleteKeys(c.env.CPS_KV, blocks, holder, kid, nowSeconds());
  return c.json({ removed });
});

keyRoutes.all("/", methodNotAllowed("GET"));
keyRoutes.all("/:tn", methodNotAllowed("GET, PUT, DELETE"));
