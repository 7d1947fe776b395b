/**
 * Key directory (RFC 8816 §11, docs/key-directory.md): `PUT /keys/{tn}` (a signed key record, stored
 * unchanged), `DELETE /keys/{tn}`, `GET /keys/{tn}` (JWK Set of every live key for the number, each
 * with its record, cacheable) and `GET /keys?prefix=` (prefetch of a bounded block, paged with a
 * cursor). Thin: parse, authorise, call src/directory/key-store.ts. GETs parse first, so the
 * edge-cache key is the canonical request.
 */
import { type Context, Hono } from "hono";
import {
  deleteKeys,
  type FoundKey,
  keysForBlock,
  keysForTn,
  PREFETCH_PAGE_ENTRIES,
  putKey,
} from "../directory/key-store.js";
import { decodeCursor, encodeCursor } from "../directory/page-cursor.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { requireCredential } from "../http/credential-auth.js";
import { authz } from "../http/directory-auth.js";
import {
  edgeCached,
  keyLookupCacheKey,
  originOf,
  prefetchCacheKey,
  purgeDirectoryCache,
} from "../http/edge-cache.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { jwkSet, parseKeyRegistration } from "../stir/key-records.js";
import { formatBlock, type NumberBlock, parseBlock, rangeToBlocks } from "../stir/number-blocks.js";
import { MAX_KEY_RECORD_LENGTH } from "../stir/signed-key-record.js";
import { canonicalTn } from "../stir/tn.js";

export const JWK_SET_MEDIA_TYPE = "application/jwk-set+json";
/** `{"record": "<JWS>"}`: the longest record plus room for the JSON around it. */
const MAX_KEY_BODY_BYTES = MAX_KEY_RECORD_LENGTH + 1024;
/** A write purges the cached lookups of its numbers only when there are at most this many. */
const PURGE_MAX_NUMBERS = 100;
/** Most cache entries one write deletes. */
const PURGE_MAX_ENTRIES = 256;
const nowSeconds = () => Math.floor(Date.now() / 1000);

// The TN spellings of src/stir/tn.ts with 'x' digits: `+1-202-555-xxxx`, `1.202.555.XXXX`.
const PREFIX_SHAPE = /^\+?[0-9xX]+(?:[.\- ][0-9xX]+)*$/;

/** The `prefix` of a prefetch, canonical (`1202555xxxx`), or `INVALID_PREFIX`. */
function parsePrefix(text: string | undefined): NumberBlock {
  if (text === undefined || text.length > 64 || !PREFIX_SHAPE.test(text)) {
    throw new CpsError("INVALID_PREFIX", "A prefix is a number block: digits, then one 'x' per open digit");
  }
  return parseBlock(text.replace(/[^0-9xX]/g, "").toLowerCase());
}

/** The `limit` of a prefetch page (1-1,000), or `INVALID_PAGE`. */
function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^[1-9][0-9]{0,3}$/.test(text) ? Number(text) : 0;
  if (n < 1 || n > PREFETCH_PAGE_ENTRIES) {
    throw new CpsError("INVALID_PAGE", `limit is a whole number from 1 to ${PREFETCH_PAGE_ENTRIES}`);
  }
  return n;
}

/**
 * What a write to `blocks` makes stale and can be named: the lookup of each number of the target
 * blocks, smallest blocks first, as long as the numbers stay within PURGE_MAX_NUMBERS in all (so a
 * record for a 100-number block and a single number still purges the single number), and the first
 * page (no cursor, no limit) of the prefetch of every block containing a target block that a prefetch
 * may ask for. Capped.
 */
export function purgeKeysFor(origin: string, blocks: readonly NumberBlock[], maxOpen: number): string[] {
  const keys: string[] = [];
  let numbers = 0;
  for (const b of [...blocks].sort((x, y) => x.open - y.open)) {
    if (numbers + 10 ** b.open > PURGE_MAX_NUMBERS) break;
    numbers += 10 ** b.open;
    for (let i = 0; i < 10 ** b.open; i++) {
      keys.push(keyLookupCacheKey(origin, b.digits + (b.open ? String(i).padStart(b.open, "0") : "")));
    }
  }
  for (let extra = 0; extra <= maxOpen; extra++) {
    for (const b of blocks) {
      if (b.open + extra > maxOpen || extra >= b.digits.length) continue;
      const outer = { digits: b.digits.slice(0, b.digits.length - extra), open: b.open + extra };
      keys.push(prefetchCacheKey(origin, outer, undefined, undefined));
    }
  }
  return [...new Set(keys)].slice(0, PURGE_MAX_ENTRIES);
}

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

keyRoutes.get("/", (c) => {
  const config = c.get("config");
  const block = parsePrefix(c.req.query("prefix"));
  if (block.open > config.keysPrefetchMaxOpenDigits) {
    throw new CpsError(
      "INVALID_PREFIX",
      `A prefetch block leaves at most ${config.keysPrefetchMaxOpenDigits} digits open`,
    );
  }
  authz.requireServed(config, [block]);
  const limit = parseLimit(c.req.query("limit"));
  const cursor = c.req.query("cursor");
  const kvCursor = cursor === undefined ? undefined : decodeCursor(cursor, block);
  return edgeCached(c, prefetchCacheKey(originOf(c), block, limit, cursor), async () => {
    const now = nowSeconds();
    const page = await keysForBlock(c.env.CPS_KV, block, now, {
      ...(kvCursor === undefined ? {} : { cursor: kvCursor }),
      ...(limit === undefined ? {} : { pageEntries: limit }),
    });
    const more = page.next === undefined ? {} : { truncated: true, cursor: encodeCursor(block, page.next) };
    return jwkSetResponse(c, page.keys, now, more);
  });
});

keyRoutes.get("/:tn", (c) => {
  const tn = canonicalTn(c.req.param("tn"));
  authz.requireServed(c.get("config"), [{ digits: tn, open: 0 }]);
  return edgeCached(c, keyLookupCacheKey(originOf(c), tn), async () => {
    const now = nowSeconds();
    return jwkSetResponse(c, await keysForTn(c.env.CPS_KV, tn, now), now);
  });
});

keyRoutes.put(
  "/:tn",
  requireCredential(["keys:put"]),
  requireContentType("application/json"),
  limitBody(MAX_KEY_BODY_BYTES),
  async (c) => {
    const config = c.get("config");
    // The path is one number or one block: the record's first block (a range is the record's list).
    const [target] = targetBlocks(c.req.param("tn"), undefined) as [NumberBlock];
    authz.requireServed(config, [target]);
    const { record } = parseKeyRegistration(await authz.jsonBody(c));
    // Signature, chain, window and coverage of every block by the record's own certificate.
    const verified = await authz.verifyRecord(c, record);
    if (verified.claims.blocks[0] !== formatBlock(target)) {
      throw new CpsError("KEY_RECORD_MISMATCH", "The path names the record's first block");
    }
    const blocks = verified.blocks;
    authz.requireServed(config, blocks);
    // The token's certificate must cover the blocks too, and be the same holder as the record's.
    const { holder } = await authz.requireAuthority(c, blocks);
    await authz.requireSigner(c, verified);
    const now = nowSeconds();
    const { kid, claims } = verified;
    await putKey(
      c.env.CPS_KV,
      blocks,
      holder,
      // Stored unchanged: clients verify the record, never these copies of its members.
      { kid, x: claims.jwk.x, label: claims.label, exp: claims.exp, record: record as string },
      now,
    );
    await purgeDirectoryCache(purgeKeysFor(originOf(c), blocks, config.keysPrefetchMaxOpenDigits));
    return c.json({ kid, label: claims.label, exp: claims.exp, blocks: claims.blocks }, 201);
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
  await purgeDirectoryCache(purgeKeysFor(originOf(c), blocks, config.keysPrefetchMaxOpenDigits));
  return c.json({ removed });
});

keyRoutes.all("/", methodNotAllowed("GET"));
keyRoutes.all("/:tn", methodNotAllowed("GET, PUT, DELETE"));
