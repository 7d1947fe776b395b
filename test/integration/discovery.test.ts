/**
 * CPS discovery (RFC 8816 §10): longest-prefix match over this CPS's served prefixes, provisioned
 * records (DISCOVERY_RECORDS) and authenticated registrations in KV; TTLs; authorisation
 * (docs/design.md invariant 5). Real app, real KV, real ReplayGuard.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { discover } from "../../src/directory/discovery-store.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";

const BASE = TEST_CPS_ORIGIN;
const pki = loadTestPki(env.TEST_PKI);

interface Record {
  prefix: string;
  cps: string;
  keys: string;
  ttl: number;
  source: string;
}

const federated = {
  ...env,
  SERVED_PREFIXES: "1202, 1215",
  DISCOVERY_RECORDS: JSON.stringify([
    { prefix: "1", cps: "https://north-america.example", ttl: 120 },
    { prefix: "1415", cps: "https://cps-b.example", keys: "https://keys-b.example/keys", ttl: 600 },
    { prefix: "1415555xxxx", cps: "https://cps-c.example", ttl: 900 },
  ]),
} as Env;

function call(path: string, init: RequestInit = {}, bindings: Env = env) {
  return app.request(`${BASE}${path}`, init, bindings);
}

async function lookup(tn: string, bindings: Env = federated): Promise<{ res: Response; body: Record }> {
  const res = await call(`/.well-known/stir-oob?tn=${encodeURIComponent(tn)}`, {}, bindings);
  return { res, body: await res.json<Record>() };
}

async function register(
  block: string,
  cred: WorkerCredential | undefined,
  body: object,
  authorization?: string,
  bindings: Env = federated,
) {
  const headers: { [k: string]: string } = { "Content-Type": "application/json" };
  const auth = authorization ?? (cred ? await bearerFor(cred, "discovery:put") : undefined);
  if (auth) headers.Authorization = auth;
  return call(`/discovery/${block}`, { method: "PUT", headers, body: JSON.stringify(body) }, bindings);
}

const issue = (tnAuthList: TnAuthList, subject?: string) =>
  pki.issue({ tnAuthList, ...(subject ? { subject } : {}) });

async function snapshot(): Promise<string> {
  const res = await env.CPS_KV.list({ prefix: "disc:" });
  const out: string[] = [];
  for (const k of res.keys) out.push(`${k.name}=${await env.CPS_KV.get(k.name)}`);
  return out.sort().join("\n");
}

describe("GET /.well-known/stir-oob?tn= (longest prefix)", () => {
  it("a CPS that serves every number (SERVED_PREFIXES empty) names itself", async () => {
    // A number no other test looks up: answers are cached under the canonical number, and this
    // test's configuration differs from the federated one of the others.
    const { res, body } = await lookup("12155550001", env);
    expect(res.status).toBe(200);
    expect(body).toEqual({
      prefix: "",
      cps: BASE,
      keys: `${BASE}/keys`,
      ttl: 300,
      source: "served",
    });
    expect(res.headers.get("Cache-Control")).toBe("public, max-age=300");
  });

  it.each([
    ["a served prefix", "12025550123", "1202", BASE, "served", 300],
    ["another served prefix (spaces and + accepted)", "+1 215 555 1212", "1215", BASE, "served", 300],
    [
      "a provisioned prefix longer than the catch-all",
      "14155560000",
      "1415",
      "https://cps-b.example",
      "provisioned",
      600,
    ],
    [
      "the longest provisioned block",
      "14155550123",
      "1415555xxxx",
      "https://cps-c.example",
      "provisioned",
      900,
    ],
    [
      "a number of another length falls back to the shorter prefix",
      "141555501234",
      "1415",
      "https://cps-b.example",
      "provisioned",
      600,
    ],
    ["the catch-all", "13035550000", "1", "https://north-america.example", "provisioned", 120],
  ])("picks %s", async (_name, tn, prefix, cps, source, ttl) => {
    const { res, body } = await lookup(tn);
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ prefix, cps, source, ttl });
    expect(res.headers.get("Cache-Control")).toBe(`public, max-age=${ttl}`);
  });

  it("keys default to {cps}/keys and can name another directory", async () => {
    expect((await lookup("13035550000")).body.keys).toBe("https://north-america.example/keys");
    expect((await lookup("14155560000")).body.keys).toBe("https://keys-b.example/keys");
  });

  it("404 when no record matches", async () => {
    const { res, body } = await lookup("442079460000");
    expect(res.status).toBe(404);
    expect((body as unknown as { code: string }).code).toBe("NOT_FOUND");
  });

  it.each([["abc"], ["12"], [""]])("400 INVALID_TN for tn=%j", async (tn) => {
    const res = await call(`/.well-known/stir-oob?tn=${tn}`, {}, federated);
    expect(res.status).toBe(400);
    expect((await res.json<{ code: string }>()).code).toBe("INVALID_TN");
  });

  it("misconfigured records fail loudly (500 MISCONFIGURED), never silently", async () => {
    const broken = { ...env, DISCOVERY_RECORDS: '[{"prefix":"1","cps":"ftp://x"}]' } as Env;
    const res = await call("/.well-known/stir-oob?tn=12025550123", {}, broken);
    expect(res.status).toBe(500);
    expect((await res.json<{ code: string }>()).code).toBe("MISCONFIGURED");
  });
});

describe("PUT /discovery/{block}: registrations", () => {
  it("a holder covering the block registers it; the longer record wins over the served prefix", async () => {
    const res = await register("120255501xx", await pki.credential("valid"), {
      cps: "https://enterprise.example/",
      ttl: 60,
    });
    expect(res.status).toBe(201);
    const stored = await res.json<{ prefix: string; cps: string; keys: string; exp: number }>();
    expect(stored).toMatchObject({
      prefix: "120255501xx",
      cps: "https://enterprise.example",
      keys: "https://enterprise.example/keys",
    });
    const { body } = await lookup("12025550142");
    expect(body).toEqual({
      prefix: "120255501xx",
      cps: "https://enterprise.example",
      keys: "https://enterprise.example/keys",
      ttl: 60,
      source: "registered",
    });
    // Outside the block: still the served prefix.
    expect((await lookup("12025550242")).body.source).toBe("served");
  });

  const valid = () => pki.credential("valid");
  it.each([
    [
      "no token",
      async () => register("12155551212", undefined, { cps: "https://x.example" }),
      401,
      "AUTH_MISSING",
    ],
    [
      "expired certificate",
      async () => register("12155551212", await pki.credential("expired"), { cps: "https://x.example" }),
      403,
      "CERT_EXPIRED",
    ],
    [
      "certificate for another number",
      async () =>
        register("12155551212", await issue([{ type: "one", tn: "19995550000" }]), {
          cps: "https://x.example",
        }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "range that does not cover the block",
      async () => register("1202555xxxx", await valid(), { cps: "https://x.example" }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "SPC not mapped",
      async () =>
        register("1303555xxxx", await issue([{ type: "spc", spc: "999X" }]), { cps: "https://x.example" }),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "keys:put token",
      async () =>
        register(
          "12155551212",
          undefined,
          { cps: "https://x.example" },
          await bearerFor(await valid(), "keys:put"),
        ),
      403,
      "AUTH_ACTION",
    ],
    [
      "plain http URL",
      async () => register("12155551212", await valid(), { cps: "http://x.example" }),
      400,
      "INVALID_BODY",
    ],
    [
      "ttl out of range",
      async () => register("12155551212", await valid(), { cps: "https://x.example", ttl: -1 }),
      400,
      "INVALID_BODY",
    ],
  ])("refuses %s and writes nothing", async (_name, send, status, code) => {
    const before = await snapshot();
    const res = await send();
    expect(res.status).toBe(status);
    expect((await res.json<{ code: string }>()).code).toBe(code);
    expect(await snapshot()).toBe(before);
  });

  it("refuses a replayed jti and writes nothing the second time", async () => {
    const header = await bearerFor(await valid(), "discovery:put");
    expect((await register("12155551212", undefined, { cps: "https://first.example" }, header)).status).toBe(
      201,
    );
    const before = await snapshot();
    const again = await register("12155551212", undefined, { cps: "https://second.example" }, header);
    expect(again.status).toBe(401);
    expect((await again.json<{ code: string }>()).code).toBe("AUTH_REPLAYED");
    expect(await snapshot()).toBe(before);
  });

  it("SPC holders register blocks inside their mapped prefixes", async () => {
    const mapped = { ...federated, SPC_NUMBER_BLOCKS: JSON.stringify({ "709J": ["1303"] }) } as Env;
    const res = await register(
      "1303555xxxx",
      await valid(),
      { cps: "https://spc.example" },
      undefined,
      mapped,
    );
    expect(res.status).toBe(201);
    // A number no earlier test looked up: answers are edge-cached by URL.
    expect((await lookup("13035550001", mapped)).body).toMatchObject({
      prefix: "1303555xxxx",
      cps: "https://spc.example",
    });
  });

  it("only the registrant deletes a record (403 NOT_OWNER otherwise); then the lookup falls back", async () => {
    const tn = "12155551234";
    const owner = await issue([{ type: "one", tn }], "Record owner");
    const other = await issue([{ type: "one", tn }], "Someone else");
    expect((await register(tn, owner, { cps: "https://owner.example" })).status).toBe(201);
    const before = await snapshot();
    const refused = await call(
      `/discovery/${tn}`,
      { method: "DELETE", headers: { Authorization: await bearerFor(other, "discovery:delete") } },
      federated,
    );
    expect(refused.status).toBe(403);
    expect((await refused.json<{ code: string }>()).code).toBe("NOT_OWNER");
    expect(await snapshot()).toBe(before);
    const ok = await call(
      `/discovery/${tn}`,
      { method: "DELETE", headers: { Authorization: await bearerFor(owner, "discovery:delete") } },
      federated,
    );
    expect(ok.status).toBe(204);
    expect((await lookup(tn)).body).toMatchObject({ prefix: "1215", source: "served" });
  });
});

describe("record expiry", () => {
  it("a registered record is not used after its lifetime", async () => {
    const tn = "12155551255";
    expect(
      (
        await register(tn, await issue([{ type: "one", tn }], "Short-lived"), {
          cps: "https://short.example",
          lifetime: 60,
        })
      ).status,
    ).toBe(201);
    const self = { origin: BASE, served: null, provisioned: [] };
    const now = Math.floor(Date.now() / 1000);
    expect((await discover(env.CPS_KV, self, tn, now))?.cps).toBe("https://short.example");
    expect((await discover(env.CPS_KV, self, tn, now + 61))?.source).toBe("served");
  });

  it("a stored record past its exp (KV entry still present) is ignored by the route", async () => {
    const tn = "12155551256";
    const record = {
      v: 1,
      prefix: tn,
      cps: "https://dead.example",
      keys: "https://dead.example/keys",
      ttl: 60,
      exp: 1,
      holder: "h",
    };
    await env.CPS_KV.put(`disc:${tn}`, JSON.stringify(record), { expirationTtl: 120 });
    expect((await lookup(tn)).body.cps).toBe(BASE);
  });
});

describe("several CPSes per number (RFC 8816 §10)", () => {
  const REPLICA = "https://replica.example";
  const grouped = {
    ...env,
    SERVED_PREFIXES: "1202, 1650",
    DISCOVERY_RECORDS: JSON.stringify([
      // Names this CPS among several, for exactly a served prefix: replaces the served answer.
      { prefix: "1202", cps: [BASE, REPLICA], ttl: 120 },
      // Several CPSes for numbers this CPS does not serve; keys default to the first's.
      { prefix: "1707", cps: ["https://carrier.example", "https://third-party.example/"], ttl: 600 },
      // Another group for a served prefix that does not name this CPS: the served answer stays.
      { prefix: "1650", cps: ["https://x.example", "https://y.example"] },
    ]),
  } as Env;
  type Multi = Record & { cpses?: string[] };

  it("a provisioned record with a list: cps is the first (what an older client reads), cpses all", async () => {
    const res = await call("/.well-known/stir-oob?tn=17075550001", {}, grouped);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      prefix: "1707",
      cps: "https://carrier.example",
      cpses: ["https://carrier.example", "https://third-party.example"],
      keys: "https://carrier.example/keys",
      ttl: 600,
      source: "provisioned",
    });
    expect(res.headers.get("Cache-Control")).toBe("public, max-age=600");
  });

  it("a group naming this CPS takes its served prefix's answer; one that does not leaves it alone", async () => {
    const mine = (await lookup("12025559001", grouped)).body as Multi;
    expect(mine).toMatchObject({ prefix: "1202", cps: BASE, cpses: [BASE, REPLICA], source: "provisioned" });
    const other = (await lookup("16505559001", grouped)).body as Multi;
    expect(other).toEqual({ prefix: "1650", cps: BASE, keys: `${BASE}/keys`, ttl: 300, source: "served" });
  });

  it("a registration may name several CPSes; the record answers with all of them", async () => {
    const tn = "12155559001";
    const res = await register(tn, await issue([{ type: "one", tn }], "Group owner"), {
      cps: ["https://one.example", "https://two.example", "https://three.example"],
      ttl: 60,
    });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(await res.json()).toMatchObject({
      cps: "https://one.example",
      cpses: ["https://one.example", "https://two.example", "https://three.example"],
      keys: "https://one.example/keys",
    });
    expect((await lookup(tn)).body).toEqual({
      prefix: tn,
      cps: "https://one.example",
      cpses: ["https://one.example", "https://two.example", "https://three.example"],
      keys: "https://one.example/keys",
      ttl: 60,
      source: "registered",
    });
  });

  it("a one-entry list is a single CPS: no cpses member, as before", async () => {
    const tn = "12155559002";
    const res = await register(tn, await issue([{ type: "one", tn }]), { cps: ["https://solo.example"] });
    expect(res.status).toBe(201);
    expect((await lookup(tn)).body).toEqual({
      prefix: tn,
      cps: "https://solo.example",
      keys: "https://solo.example/keys",
      ttl: 300,
      source: "registered",
    });
  });

  it.each([
    ["an empty list", []],
    ["the same CPS twice (after normalising)", ["https://a.example", "https://a.example/"]],
    ["nine CPSes", Array.from({ length: 9 }, (_, i) => `https://c${i}.example`)],
    ["a member that is not a URL", ["https://a.example", 7]],
    ["a plain http member", ["https://a.example", "http://b.example"]],
  ])("refuses %s (400 INVALID_BODY) and writes nothing", async (_name, cps) => {
    const tn = "12155559003";
    const before = await snapshot();
    const res = await register(tn, await issue([{ type: "one", tn }]), { cps });
    expect(res.status).toBe(400);
    expect((await res.json<{ code: string }>()).code).toBe("INVALID_BODY");
    expect(await snapshot()).toBe(before);
  });

  it("a provisioned list naming one CPS twice is a misconfiguration (500 MISCONFIGURED)", async () => {
    const broken = {
      ...env,
      DISCOVERY_RECORDS: '[{"prefix":"1","cps":["https://a.example","https://a.example"]}]',
    } as Env;
    const res = await call("/.well-known/stir-oob?tn=12025559002", {}, broken);
    expect(res.status).toBe(500);
    expect((await res.json<{ code: string }>()).code).toBe("MISCONFIGURED");
  });

  it("a stored record with a malformed cpses member is ignored, never served", async () => {
    const tn = "12155559004";
    const record = {
      v: 1,
      prefix: tn,
      cps: "https://bad.example",
      cpses: "https://bad.example",
      keys: "https://bad.example/keys",
      ttl: 60,
      exp: Math.floor(Date.now() / 1000) + 600,
      holder: "h",
    };
    await env.CPS_KV.put(`disc:${tn}`, JSON.stringify(record), { expirationTtl: 600 });
    expect((await lookup(tn)).body).toMatchObject({ cps: BASE, source: "served" });
  });
});
