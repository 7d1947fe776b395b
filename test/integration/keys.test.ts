/**
 * Key directory (RFC 8816 §11; docs/design.md invariant 5) against the real app, real KV and the real
 * ReplayGuard Durable Object, with certificates from the test PKI the Worker trusts.
 */
import { env } from "cloudflare:test";
import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { keysForTn, putKey } from "../../src/directory/key-store.js";
import { discoveryCacheKey, keyLookupCacheKey, prefetchCacheKey } from "../../src/http/edge-cache.js";
import { purgeKeysFor } from "../../src/routes/keys.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { parseBlock } from "../../src/stir/number-blocks.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";

const BASE = TEST_CPS_ORIGIN;
const pki = loadTestPki(env.TEST_PKI);

interface Jwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  use: string;
  label: string;
  exp: number;
  block: string;
}

async function newKey() {
  const { publicKey } = await generateRecipientKeyPair();
  return { kty: "OKP", crv: "X25519", x: encodeBase64url(publicKey) };
}

function call(path: string, init: RequestInit = {}, bindings: Env = env) {
  return app.request(`${BASE}${path}`, init, bindings);
}

async function put(
  path: string,
  cred: WorkerCredential | undefined,
  body: Record<string, unknown>,
  bindings: Env = env,
  authorization?: string,
) {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const auth = authorization ?? (cred ? await bearerFor(cred, "keys:put") : undefined);
  if (auth) headers.Authorization = auth;
  return call(`/keys/${path}`, { method: "PUT", headers, body: JSON.stringify(body) }, bindings);
}

async function del(path: string, cred: WorkerCredential, bindings: Env = env) {
  return call(
    `/keys/${path}`,
    { method: "DELETE", headers: { Authorization: await bearerFor(cred, "keys:delete") } },
    bindings,
  );
}

async function lookup(tn: string, bindings: Env = env): Promise<{ res: Response; keys: Jwk[] }> {
  const res = await call(`/keys/${tn}`, {}, bindings);
  const body = res.status === 200 ? await res.json<{ keys: Jwk[] }>() : { keys: [] };
  return { res, keys: body.keys };
}

const issue = (tnAuthList: TnAuthList, subject?: string) =>
  pki.issue({ tnAuthList, ...(subject ? { subject } : {}) });

/** Every key-directory and discovery entry in KV, with its value: the "nothing written" check. */
async function snapshot(): Promise<string> {
  const names: string[] = [];
  for (const prefix of ["key:", "disc:"]) {
    const res = await env.CPS_KV.list({ prefix });
    for (const k of res.keys) names.push(`${k.name}=${await env.CPS_KV.get(k.name)}`);
  }
  return names.sort().join("\n");
}

describe("PUT /keys/{tn}: authorisation table (nothing written on refusal)", () => {
  const valid = () => pki.credential("valid");
  it.each([
    [
      "no token",
      async () => put("12155551212", undefined, { jwk: await newKey(), label: "x" }),
      401,
      "AUTH_MISSING",
    ],
    [
      "expired certificate",
      async () => put("12155551212", await pki.credential("expired"), { jwk: await newKey(), label: "x" }),
      403,
      "CERT_EXPIRED",
    ],
    [
      "certificate for another number",
      async () =>
        put("12155551212", await issue([{ type: "one", tn: "19995550000" }]), {
          jwk: await newKey(),
          label: "x",
        }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "range that does not cover the block (100-number range, 10,000-number block)",
      async () => put("1202555xxxx", await valid(), { jwk: await newKey(), label: "x" }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "range that does not cover the start+count range (count runs past the certificate's range)",
      async () => put("12025550150", await valid(), { jwk: await newKey(), label: "x", count: 60 }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "SPC that the operator has not mapped to numbers",
      async () =>
        put("13035550100", await issue([{ type: "spc", spc: "999X" }]), { jwk: await newKey(), label: "x" }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "token for another action",
      async () =>
        put(
          "12155551212",
          undefined,
          { jwk: await newKey(), label: "x" },
          env,
          await bearerFor(await valid(), "keys:delete"),
        ),
      403,
      "AUTH_ACTION",
    ],
    [
      "token for another CPS",
      async () =>
        put(
          "12155551212",
          undefined,
          { jwk: await newKey(), label: "x" },
          env,
          await bearerFor(await valid(), "keys:put", { audience: "https://other.example" }),
        ),
      401,
      "AUTH_AUDIENCE",
    ],
  ])("refuses %s", async (_name, send, status, code) => {
    const before = await snapshot();
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect((await res.json<{ code: string }>()).code).toBe(code);
    expect(await snapshot()).toBe(before);
  });

  it("refuses a replayed jti (401 AUTH_REPLAYED) and writes nothing the second time", async () => {
    const header = await bearerFor(await valid(), "keys:put");
    const first = await put("12155551212", undefined, { jwk: await newKey(), label: "first" }, env, header);
    expect(first.status).toBe(201);
    const before = await snapshot();
    const again = await put("12155551212", undefined, { jwk: await newKey(), label: "replay" }, env, header);
    expect(again.status).toBe(401);
    expect((await again.json<{ code: string }>()).code).toBe("AUTH_REPLAYED");
    expect(await snapshot()).toBe(before);
  });

  it("refuses a bad key or body with 4xx and writes nothing", async () => {
    const before = await snapshot();
    const bad = [
      { jwk: { kty: "OKP", crv: "X25519", x: encodeBase64url(new Uint8Array(32)) }, label: "zero" },
      { jwk: { kty: "OKP", crv: "Ed25519", x: (await newKey()).x }, label: "ed" },
      { jwk: { ...(await newKey()), d: "AAAA" }, label: "private" },
      { jwk: await newKey(), label: "" },
      { jwk: await newKey(), label: "ok", ttl: 10 },
      { jwk: await newKey(), label: "ok", extra: 1 },
    ];
    for (const body of bad) {
      const res = await put("12155551212", await valid(), body);
      expect(res.status).toBe(400);
    }
    expect(await snapshot()).toBe(before);
  });
});

describe("registration and lookup", () => {
  it("registers a key and serves it as an OKP/X25519 JWK Set with cache headers; kid is the RFC 7638 thumbprint", async () => {
    const jwk = await newKey();
    const res = await put("12155551212", await pki.credential("valid"), { jwk, label: "carrier", ttl: 3600 });
    expect(res.status).toBe(201);
    const body = await res.json<{ kid: string; blocks: string[] }>();
    expect(body.kid).toBe(await calculateJwkThumbprint(jwk, "sha256"));
    expect(body.blocks).toEqual(["12155551212"]);

    // "+1 215 555 1212" is the same number.
    const { res: got, keys } = await lookup("+1-215-555-1212");
    expect(got.status).toBe(200);
    expect(got.headers.get("Content-Type")).toBe("application/jwk-set+json");
    expect(got.headers.get("Cache-Control")).toBe("public, max-age=60");
    const mine = keys.find((k) => k.kid === body.kid);
    expect(mine).toMatchObject({
      kty: "OKP",
      crv: "X25519",
      x: jwk.x,
      use: "enc",
      label: "carrier",
      block: "12155551212",
    });
    expect(mine?.exp).toBeGreaterThan(Date.now() / 1000 + 3500);
  });

  it("keeps several keys per number from several holders (carrier, reseller, enterprise: §6.1)", async () => {
    const tn = "12155551212";
    const carrier = await issue([{ type: "one", tn }], "Carrier");
    const reseller = await issue([{ type: "range", start: "12155551200", count: 100 }], "Reseller");
    const enterprise = await issue([{ type: "one", tn }], "Enterprise");
    const keys = {
      carrier: await newKey(),
      carrier2: await newKey(),
      reseller: await newKey(),
      enterprise: await newKey(),
    };
    expect((await put(tn, carrier, { jwk: keys.carrier, label: "carrier-a" })).status).toBe(201);
    expect((await put(tn, carrier, { jwk: keys.carrier2, label: "carrier-b" })).status).toBe(201);
    expect((await put(tn, reseller, { jwk: keys.reseller, label: "reseller" })).status).toBe(201);
    expect((await put(tn, enterprise, { jwk: keys.enterprise, label: "enterprise" })).status).toBe(201);
    const found = await keysForTn(env.CPS_KV, tn, Math.floor(Date.now() / 1000));
    const xs = found.map((f) => f.entry.x);
    for (const k of Object.values(keys)) expect(xs).toContain(k.x);
    // One KV entry per holder: the writes did not overwrite each other.
    const names = (await env.CPS_KV.list({ prefix: `key:11:${tn}:` })).keys.map((k) => k.name);
    expect(new Set(names).size).toBeGreaterThanOrEqual(3);
  });

  it("re-registering the same key renews it instead of duplicating it", async () => {
    const tn = "12155551212";
    const holder = await issue([{ type: "one", tn }], "Renewer");
    const jwk = await newKey();
    await put(tn, holder, { jwk, label: "old", ttl: 600 });
    await put(tn, holder, { jwk, label: "new", ttl: 7200 });
    const found = (await keysForTn(env.CPS_KV, tn, Math.floor(Date.now() / 1000))).filter(
      (f) => f.entry.x === jwk.x,
    );
    expect(found).toHaveLength(1);
    expect(found[0]?.entry.label).toBe("new");
  });

  it("caps live keys per holder per block (409 KEY_LIMIT, nothing written)", async () => {
    const tn = "12025550177";
    const holder = await issue([{ type: "one", tn }], "Greedy");
    for (let i = 0; i < 5; i++)
      expect((await put(tn, holder, { jwk: await newKey(), label: `k${i}` })).status).toBe(201);
    const before = await snapshot();
    const res = await put(tn, holder, { jwk: await newKey(), label: "k5" });
    expect(res.status).toBe(409);
    expect((await res.json<{ code: string }>()).code).toBe("KEY_LIMIT");
    expect(await snapshot()).toBe(before);
  });

  it("answers a number with no keys with an empty JWK Set", async () => {
    const { res, keys } = await lookup("16505550000");
    expect(res.status).toBe(200);
    expect(keys).toEqual([]);
  });

  it("serves a repeated lookup from the edge cache", async () => {
    await put("12025550111", await pki.credential("valid"), { jwk: await newKey(), label: "cached" });
    const first = await call("/keys/12025550111");
    const second = await call("/keys/12025550111");
    expect(first.headers.get("X-Directory-Cache")).toBe("MISS");
    expect(second.headers.get("X-Directory-Cache")).toBe("HIT");
    expect(await second.text()).toBe(await first.text());
  });
});

describe("ranges and blocks: inheritance", () => {
  it("a key registered for a range applies to every number in it and to no other", async () => {
    const jwk = await newKey();
    // The valid certificate's range is 12025550100 + 100: exactly the block 120255501xx.
    const res = await put("12025550100", await pki.credential("valid"), { jwk, label: "pbx", count: 100 });
    expect(res.status).toBe(201);
    expect((await res.json<{ blocks: string[] }>()).blocks).toEqual(["120255501xx"]);
    for (const tn of ["12025550100", "12025550142", "12025550199"]) {
      const { keys } = await lookup(tn);
      expect(keys.find((k) => k.x === jwk.x)?.block).toBe("120255501xx");
    }
    // Outside the range, and a number of another length with the same leading digits.
    for (const tn of ["12025550200", "12025550099", "1202555014", "120255501420"]) {
      expect(
        (await keysForTn(env.CPS_KV, tn, Math.floor(Date.now() / 1000))).map((f) => f.entry.x),
      ).not.toContain(jwk.x);
    }
  });

  it("an unaligned range splits into aligned blocks; a single number sees its own key and its block's", async () => {
    const holder = await issue([{ type: "range", start: "14155550150", count: 60 }], "Unaligned");
    const rangeKey = await newKey();
    const res = await put("14155550150", holder, { jwk: rangeKey, label: "range", count: 60 });
    expect(res.status).toBe(201);
    expect((await res.json<{ blocks: string[] }>()).blocks).toEqual([
      "1415555015x",
      "1415555016x",
      "1415555017x",
      "1415555018x",
      "1415555019x",
      "1415555020x",
    ]);
    const ownKey = await newKey();
    expect((await put("14155550163", holder, { jwk: ownKey, label: "own" })).status).toBe(201);
    const { keys } = await lookup("14155550163");
    expect(keys.map((k) => k.x)).toEqual([ownKey.x, rangeKey.x]); // most specific first
    expect((await lookup("14155550210")).keys).toEqual([]);
  });

  it("SPC coverage goes through the operator's SPC_NUMBER_BLOCKS map", async () => {
    const mapped = { ...env, SPC_NUMBER_BLOCKS: JSON.stringify({ "709J": ["1303555"] }) } as Env;
    const valid = await pki.credential("valid"); // TNAuthList has SPC 709J
    expect((await put("13035550100", valid, { jwk: await newKey(), label: "spc" }, mapped)).status).toBe(201);
    expect(
      (await put("1303555xxxx", valid, { jwk: await newKey(), label: "spc-block" }, mapped)).status,
    ).toBe(201);
    const outside = await put("1303556xxxx", valid, { jwk: await newKey(), label: "no" }, mapped);
    expect(outside.status).toBe(403);
    expect((await outside.json<{ code: string }>()).code).toBe("CERT_NOT_AUTHORISED");
    const { keys } = await lookup("13035550100", mapped);
    expect(keys.map((k) => k.block).sort()).toEqual(["13035550100", "1303555xxxx"]);
  });
});

describe("DELETE /keys/{tn}", () => {
  it("removes only what the same holder registered; another holder gets 403 NOT_OWNER and nothing is removed", async () => {
    const tn = "12155551299";
    const owner = await issue([{ type: "one", tn }], "Owner");
    const other = await issue([{ type: "one", tn }], "Other");
    const a = await newKey();
    const b = await newKey();
    const putA = await put(tn, owner, { jwk: a, label: "a" });
    await put(tn, owner, { jwk: b, label: "b" });
    const kidA = (await putA.json<{ kid: string }>()).kid;

    const before = await snapshot();
    const refused = await del(`${tn}?kid=${kidA}`, other);
    expect(refused.status).toBe(403);
    expect((await refused.json<{ code: string }>()).code).toBe("NOT_OWNER");
    const refusedAll = await del(tn, other);
    expect(refusedAll.status).toBe(403);
    expect(await snapshot()).toBe(before);

    const one = await del(`${tn}?kid=${kidA}`, owner);
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ removed: 1 });
    let xs = (await keysForTn(env.CPS_KV, tn, Math.floor(Date.now() / 1000))).map((f) => f.entry.x);
    expect(xs).toEqual([b.x]);

    expect(await (await del(tn, owner)).json()).toEqual({ removed: 1 });
    xs = (await keysForTn(env.CPS_KV, tn, Math.floor(Date.now() / 1000))).map((f) => f.entry.x);
    expect(xs).toEqual([]);
    expect((await del(tn, owner)).status).toBe(404);
  });

  it("needs coverage too (403 CERT_NOT_AUTHORISED)", async () => {
    const res = await del("19995550000", await pki.credential("valid"));
    expect(res.status).toBe(403);
    expect((await res.json<{ code: string }>()).code).toBe("CERT_NOT_AUTHORISED");
  });
});

describe("expiry", () => {
  it("a key is not served after its expiry", async () => {
    const tn = "12025550133";
    const jwk = await newKey();
    await put(tn, await pki.credential("valid"), { jwk, label: "short", ttl: 60 });
    const now = Math.floor(Date.now() / 1000);
    expect((await keysForTn(env.CPS_KV, tn, now)).map((f) => f.entry.x)).toContain(jwk.x);
    expect((await keysForTn(env.CPS_KV, tn, now + 61)).map((f) => f.entry.x)).not.toContain(jwk.x);
  });

  it("an entry whose keys have expired (KV entry still present) is filtered out by the route", async () => {
    const tn = "16505550134";
    const past = Math.floor(Date.now() / 1000) - 10;
    const record = { v: 1, keys: [{ kid: "k".repeat(43), x: (await newKey()).x, label: "dead", exp: past }] };
    await env.CPS_KV.put(`key:${tn.length}:${tn}:${"0".repeat(32)}`, JSON.stringify(record), {
      expirationTtl: 120,
      metadata: record,
    });
    expect((await lookup(tn)).keys).toEqual([]);
  });

  it("caches a lookup no longer than the soonest key expiry", async () => {
    const tn = "12025550135";
    await put(tn, await pki.credential("valid"), { jwk: await newKey(), label: "soon", ttl: 60 });
    const res = await call(`/keys/${tn}`, {}, { ...env, KEYS_CACHE_SECONDS: "3600" } as Env);
    const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get("Cache-Control") ?? "")?.[1]);
    expect(maxAge).toBeLessThanOrEqual(60);
    expect(maxAge).toBeGreaterThan(50);
  });
});

describe("GET /keys?prefix= (prefetch, §11)", () => {
  it("returns every key of a bounded block and of blocks containing it, and nothing outside", async () => {
    const holder = await issue([{ type: "range", start: "16175550000", count: 10000 }], "Prefetch");
    const inside = await newKey();
    const block = await newKey();
    await put("16175550042", holder, { jwk: inside, label: "inside" });
    await put("161755500xx", holder, { jwk: block, label: "block" });
    const outsider = await issue([{ type: "one", tn: "16175560042" }], "Outsider");
    const outside = await newKey();
    await put("16175560042", outsider, { jwk: outside, label: "outside" });

    const res = await call("/keys?prefix=1617555xxxx");
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toMatch(/^public, max-age=\d+$/);
    const xs = (await res.json<{ keys: Jwk[] }>()).keys.map((k) => k.x);
    expect(xs).toContain(inside.x);
    expect(xs).toContain(block.x);
    expect(xs).not.toContain(outside.x);
    // A smaller block inside a registered one inherits it.
    const sub = (await (await call("/keys?prefix=16175550042")).json<{ keys: Jwk[] }>()).keys.map((k) => k.x);
    expect(sub.sort()).toEqual([inside.x, block.x].sort());
  });

  it.each([
    ["too broad (5 open digits)", "161755xxxxx"],
    ["not a block (an open digit before a fixed one)", "1617x555"],
    ["not a block (two separators)", "1617--555xxxx"],
    ["missing", ""],
  ])("refuses a prefix that is %s (400 INVALID_PREFIX)", async (_n, prefix) => {
    const res = await call(`/keys?prefix=${encodeURIComponent(prefix)}`);
    expect(res.status).toBe(400);
    expect((await res.json<{ code: string }>()).code).toBe("INVALID_PREFIX");
  });
});

describe("served prefixes", () => {
  it("a CPS answers key lookups and registrations only for numbers it serves (421 NOT_SERVED)", async () => {
    const narrow = { ...env, SERVED_PREFIXES: "1415" } as Env;
    const res = await call("/keys/12155551212", {}, narrow);
    expect(res.status).toBe(421);
    expect((await res.json<{ code: string }>()).code).toBe("NOT_SERVED");
    const before = await snapshot();
    const write = await put(
      "12155551212",
      await pki.credential("valid"),
      { jwk: await newKey(), label: "x" },
      narrow,
    );
    expect(write.status).toBe(421);
    expect(await snapshot()).toBe(before);
  });
});

/** A KV binding that counts what `list` reads: the work a lookup does. */
function countingKv(kv: KVNamespace) {
  const stats = { lists: 0, names: 0 };
  const wrapped = {
    get: kv.get.bind(kv),
    getWithMetadata: kv.getWithMetadata.bind(kv),
    put: kv.put.bind(kv),
    delete: kv.delete.bind(kv),
    list: async (options: KVNamespaceListOptions) => {
      stats.lists++;
      const res = await kv.list(options);
      stats.names += res.keys.length;
      return res;
    },
  } as unknown as KVNamespace;
  return { kv: wrapped, stats };
}

const randomKid = () => encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));

/** Writes one key straight through the store (no credential round trip): fast seeding. */
async function seedKey(blockText: string, holder = "ab".repeat(16)) {
  const now = Math.floor(Date.now() / 1000);
  const entry = { kid: randomKid(), x: (await newKey()).x, label: "seed", exp: now + 3600 };
  await putKey(env.CPS_KV, [parseBlock(blockText)], holder, entry, now);
  return entry;
}

interface Page {
  keys: Jwk[];
  truncated?: boolean;
  cursor?: string;
}

describe("adversary #15: prefetch work, truncation and the cache key", () => {
  it("a short prefix over a big subtree of longer numbers reads only entries of the block's length", async () => {
    // 120 eleven-digit numbers start with "1" and sort before the one 5-digit number of `1xxxx`: a
    // prefix scan of `key:1` reads all of them to find one key (and, past 10,000, answered
    // `truncated` with no key at all).
    for (let i = 0; i < 120; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => seedKey(String(10_000_000_000 + i + j), "cd".repeat(16))),
      );
    }
    const short = await seedKey("10999");
    const { kv, stats } = countingKv(env.CPS_KV);
    const res = await call("/keys?prefix=1xxxx", {}, { ...env, CPS_KV: kv } as Env);
    expect(res.status).toBe(200);
    const page = await res.json<Page>();
    expect(page.keys.map((k) => k.kid)).toEqual([short.kid]);
    expect(page.truncated).toBeUndefined();
    // Work is bounded by the answer: every name listed is a key of the block.
    expect(stats.names).toBeLessThanOrEqual(page.keys.length);
  });

  it("paging with cursors returns every key of the block exactly once, no page empty", async () => {
    const block = "1617777xxxx";
    const expected: string[] = [];
    const inner = [
      ...Array.from({ length: 21 }, (_, i) => `161777700${String(i).padStart(2, "0")}`),
      "16177771xxx",
      "161777720xx",
    ];
    for (let i = 0; i < inner.length; i += 8) {
      const seeded = await Promise.all(inner.slice(i, i + 8).map((b) => seedKey(b)));
      expected.push(...seeded.map((e) => e.kid));
    }
    // Keys of the block itself and of a block containing it (in the first page only).
    expected.push((await seedKey(block)).kid, (await seedKey("161777xxxxx")).kid);
    // Other lengths and other blocks stay out.
    await seedKey("161777700001");
    await seedKey("1617778xxxx");

    const seen: string[] = [];
    let url = `/keys?prefix=${block}&limit=4`;
    let pages = 0;
    for (;;) {
      const res = await call(url);
      expect(res.status).toBe(200);
      const page = await res.json<Page>();
      pages++;
      expect(page.keys.length).toBeGreaterThan(0);
      seen.push(...page.keys.map((k) => k.kid));
      if (!page.truncated) {
        expect(page.cursor).toBeUndefined();
        break;
      }
      expect(page.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      url = `/keys?prefix=${block}&limit=4&cursor=${page.cursor}`;
      expect(pages).toBeLessThan(20);
    }
    expect(pages).toBeGreaterThanOrEqual(6); // 24 entries, 4 a page
    expect([...seen].sort()).toEqual([...expected].sort()); // all of them, each once
  });

  it.each([
    ["not base64url", "!!!"],
    ["empty", ""],
    ["base64url of nothing useful", encodeBase64url(new TextEncoder().encode("hello"))],
    ["a cursor of another prefix", "other-prefix"],
    ["far too long", "A".repeat(5000)],
  ])("refuses a bad cursor (%s) with 400 INVALID_PAGE", async (_name, cursor) => {
    let bad = cursor;
    if (cursor === "other-prefix") {
      for (let i = 0; i < 3; i++) await seedKey(`1303777000${i}`);
      const first = await (await call("/keys?prefix=1303777xxxx&limit=1")).json<Page>();
      expect(first.cursor).toBeDefined();
      bad = first.cursor ?? "";
    }
    const res = await call(`/keys?prefix=1303778xxxx&cursor=${encodeURIComponent(bad)}`);
    expect(res.status).toBe(400);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect((await res.json<{ code: string }>()).code).toBe("INVALID_PAGE");
  });

  it.each(["0", "1001", "abc", "1.5"])("refuses limit=%s with 400 INVALID_PAGE", async (limit) => {
    const res = await call(`/keys?prefix=1303777xxxx&limit=${limit}`);
    expect(res.status).toBe(400);
    expect((await res.json<{ code: string }>()).code).toBe("INVALID_PAGE");
  });

  it("the cache key drops unknown query parameters and canonicalises the number and prefix spelling", async () => {
    const cases: [string, string][] = [
      ["/keys/12025550177", "/keys/+1-202-555-0177?utm_source=x&_=1"],
      ["/keys?prefix=1202556xxxx", "/keys?prefix=%2B1-202-556-XXXX&nocache=123"],
      ["/keys?prefix=1202557xxxx", "/keys?nocache=1&prefix=1.202.557.xxxx"],
      ["/.well-known/stir-oob?tn=12025550178", "/.well-known/stir-oob?tn=%2B1%20202%20555%200178&x=y"],
    ];
    for (const [first, variant] of cases) {
      const a = await call(first);
      expect(a.status, first).toBe(200);
      expect(a.headers.get("X-Directory-Cache"), first).toBe("MISS");
      const b = await call(variant);
      expect(b.status, variant).toBe(200);
      expect(b.headers.get("X-Directory-Cache"), variant).toBe("HIT");
      expect(await b.text()).toBe(await a.text());
    }
  });

  it("the cache key function: one key per canonical request", () => {
    const origin = "https://cps.example.com";
    expect(prefetchCacheKey(origin, parseBlock("1202555xxxx"), undefined, undefined)).toBe(
      `${origin}/keys?prefix=1202555xxxx`,
    );
    expect(prefetchCacheKey(origin, parseBlock("1202555xxxx"), 10, "abc")).toBe(
      `${origin}/keys?prefix=1202555xxxx&limit=10&cursor=abc`,
    );
    expect(keyLookupCacheKey(origin, "12025550100")).toBe(`${origin}/keys/12025550100`);
    expect(discoveryCacheKey(origin, "12025550100")).toBe(`${origin}/.well-known/stir-oob?tn=12025550100`);
  });
});

describe("adversary #16: a key registered or deleted right after a lookup", () => {
  it("is visible at once to GET /keys/{tn} and to the prefetch of a block containing it", async () => {
    const tn = "12025550188";
    const before = await lookup(tn);
    expect(before.res.headers.get("X-Directory-Cache")).toBe("MISS");
    const prefetchBefore = await call("/keys?prefix=120255501xx");
    expect(prefetchBefore.headers.get("X-Directory-Cache")).toBe("MISS");
    // Cached now: a second lookup is a HIT.
    expect((await lookup(tn)).res.headers.get("X-Directory-Cache")).toBe("HIT");

    const jwk = await newKey();
    const cred = await pki.credential("valid");
    expect(before.keys.map((k) => k.x)).not.toContain(jwk.x);
    expect((await put(tn, cred, { jwk, label: "fresh" })).status).toBe(201);
    expect((await lookup(tn)).keys.map((k) => k.x)).toContain(jwk.x);
    const prefetched = await (await call("/keys?prefix=120255501xx")).json<Page>();
    expect(prefetched.keys.map((k) => k.x)).toContain(jwk.x);

    expect((await del(tn, cred)).status).toBe(200);
    expect((await lookup(tn)).keys.map((k) => k.x)).not.toContain(jwk.x);
  });

  it("a block of at most 100 numbers: each number's lookup is purged too", async () => {
    const tn = "12025550142";
    const before = await lookup(tn);
    expect((await lookup(tn)).res.headers.get("X-Directory-Cache")).toBe("HIT");
    const jwk = await newKey();
    // The valid certificate covers 120255501xx: register for the whole block.
    const res = await put("120255501xx", await pki.credential("valid"), { jwk, label: "pbx-fresh" });
    expect(res.status).toBe(201);
    expect(before.keys.map((k) => k.x)).not.toContain(jwk.x);
    expect((await lookup(tn)).keys.map((k) => k.x)).toContain(jwk.x);
  });

  it("names what a write makes stale: lookups of at most 100 numbers, first prefetch pages of containing blocks", () => {
    const origin = "https://cps.example.com";
    const one = purgeKeysFor(origin, [parseBlock("12025550142")], 4);
    expect(one).toEqual([
      `${origin}/keys/12025550142`,
      `${origin}/keys?prefix=12025550142`,
      `${origin}/keys?prefix=1202555014x`,
      `${origin}/keys?prefix=120255501xx`,
      `${origin}/keys?prefix=12025550xxx`,
      `${origin}/keys?prefix=1202555xxxx`,
    ]);
    const hundred = purgeKeysFor(origin, [parseBlock("120255501xx")], 4);
    expect(hundred.filter((k) => k.includes("/keys/"))).toHaveLength(100);
    expect(hundred.filter((k) => k.includes("prefix="))).toEqual([
      `${origin}/keys?prefix=120255501xx`,
      `${origin}/keys?prefix=12025550xxx`,
      `${origin}/keys?prefix=1202555xxxx`,
    ]);
    // A 10,000-number block: no per-number lookups (too many to name), its own prefetch page only.
    expect(purgeKeysFor(origin, [parseBlock("1202555xxxx")], 4)).toEqual([
      `${origin}/keys?prefix=1202555xxxx`,
    ]);
  });
});
