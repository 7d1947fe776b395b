/**
 * CPS discovery (RFC 8816 §10, docs/key-directory.md): `GET /.well-known/stir-oob?tn=` answers with
 * the longest-prefix record (this CPS's served prefixes, provisioned records, registrations);
 * `PUT` / `DELETE /discovery/{block}` register and remove a record under STIR credential auth.
 */
import { Hono } from "hono";
import { deleteRecord, discover, putRecord } from "../directory/discovery-store.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { requireCredential } from "../http/credential-auth.js";
import { authz } from "../http/directory-auth.js";
import { discoveryCacheKey, edgeCached, originOf } from "../http/edge-cache.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { parseDiscoveryRegistration } from "../stir/discovery.js";
import { parseBlock } from "../stir/number-blocks.js";
import { canonicalTn } from "../stir/tn.js";

const nowSeconds = () => Math.floor(Date.now() / 1000);

export const discoveryRoutes = new Hono<AppEnv>();

discoveryRoutes.get("/.well-known/stir-oob", (c) => {
  // Parsed first: the cache key is the canonical number, whatever the spelling or extra parameters.
  const tn = canonicalTn(c.req.query("tn") ?? "");
  return edgeCached(c, discoveryCacheKey(originOf(c), tn), async () => {
    const config = c.get("config");
    const record = await discover(
      c.env.CPS_KV,
      {
        origin: config.cpsOrigin,
        served: config.servedPrefixes,
        provisioned: config.discoveryRecords,
      },
      tn,
      nowSeconds(),
    );
    if (!record) throw new CpsError("NOT_FOUND", "No CPS is known for this number");
    return c.json(record, 200, { "Cache-Control": `public, max-age=${record.ttl}` });
  });
});

discoveryRoutes.put(
  "/discovery/:block",
  requireCredential(["discovery:put"]),
  requireContentType("application/json"),
  limitBody(2048),
  async (c) => {
    const reg = parseDiscoveryRegistration(await authz.jsonBody(c), c.get("config").allowLoopbackX5u);
    const block = parseBlock(c.req.param("block"));
    const { holder } = await authz.requireAuthority(c, [block]);
    const record = await putRecord(c.env.CPS_KV, block, holder, reg, nowSeconds());
    return c.json(
      {
        prefix: record.prefix,
        cps: record.cps,
        ...(record.cpses ? { cpses: record.cpses } : {}),
        keys: record.keys,
        ttl: record.ttl,
        exp: record.exp,
      },
      201,
    );
  },
);

discoveryRoutes.delete("/discovery/:block", requireCredential(["discovery:delete"]), async (c) => {
  const block = parseBlock(c.req.param("block"));
  const { holder } = await authz.requireAuthority(c, [block]);
  await deleteRecord(c.env.CPS_KV, block, holder, nowSeconds());
  return c.body(null, 204);
});

discoveryRoutes.all("/.well-known/stir-oob", methodNotAllowed("GET"));
discoveryRoutes.all("/discovery/:block", methodNotAllowed("PUT, DELETE"));
