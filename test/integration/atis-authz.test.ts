/**
 * Who may do what on the ATIS routes (docs/design.md invariant 5; ATIS-1000096, ATIS-1000105 §7,
 * draft-wendt-stir-vesper-oob; docs/atis-api.md "Authorisation"), in workerd with the real AtisStore,
 * ReplayGuard and CRL checks:
 * - retrieval on /passports/{DEST}/{ORIG} only by a credential covering DEST (a TN or range entry, or
 *   an SPC the operator maps to numbers in SPC_NUMBER_BLOCKS);
 * - on /passports/{SPC}/{DEST}/{ORIG} also by an agreed partner (ATIS_AGREEMENTS), who sees only the
 *   rows its partners and itself published; an SPC without agreement: ATIS_NOT_PARTNER;
 * - `republish` only from a configured peer CPS (ATIS_PEERS);
 * - a token's `spc`, `iss` and `sub` must be covered by its certificate;
 * - a revoked credential is refused (RFC 5280 CRLs, served by the test PKI's CRL repository).
 * Every refusal is in the ATIS error format, stores nothing, and leaves the token's jti unspent (the
 * same jti then succeeds from a credential that may). The settings come in as an env override of the
 * integration Worker's bindings, so other tests keep the defaults.
 */
import { createExecutionContext, env, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { generateRecipientKeyPair, openPassport } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";
import { atisStore } from "../../src/storage/objects.js";
import {
  type AtisTokenInput,
  atisCredential,
  atisPath,
  atisToken,
  expectAtisError,
  freshTn,
  publishInit,
  retrieveInit,
  shakenPassport,
  storedFor,
  storeRowCounts,
  TEST_BLOCK,
  TEST_SPC,
  x5uOf,
} from "../helpers/atis.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";
import { blockFor } from "../helpers/worker.js";

const pki = loadTestPki(env.TEST_PKI);

const PEER_SPC = "PEERB";
/** The integration Worker with ATIS agreements, an SPC number map and one peer CPS configured. */
const atisEnv = {
  ...env,
  ATIS_AGREEMENTS: JSON.stringify([["SPCA", "SPCB"]]),
  SPC_NUMBER_BLOCKS: JSON.stringify({ SPCM: ["1303555"] }),
  ATIS_PEERS: JSON.stringify([{ url: "https://cps-b.stir-oob-test.example", spc: PEER_SPC }]),
} as Env;

async function call(path: string, init: RequestInit, bindings: Env = atisEnv): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`${TEST_CPS_ORIGIN}${path}`, init), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

let signer: WorkerCredential;
beforeAll(async () => {
  signer = await pki.credential("valid");
});

/** A fresh credential speaking for `list` (its own rate-limit bucket). */
const holder = (list: TnAuthList, label = "ATIS authz") => atisCredential(pki, list, label);
const spcOnly = (spc: string) => holder([{ type: "spc", spc }], `ATIS ${spc}`);

interface Call {
  readonly dest: string;
  readonly orig: string;
}
const freshCall = (): Call => ({ dest: freshTn(), orig: freshTn() });

type Overrides = Partial<AtisTokenInput>;

/** Publishes one fresh PASSporT for `c` as `cred`; returns the response, the PASSporTs and the jti. */
async function publishAs(
  cred: WorkerCredential,
  c: Call,
  o: {
    spc?: string;
    token?: Overrides;
    bindings?: Env;
    action?: string;
    body?: string;
    headers?: Record<string, string>;
  } = {},
) {
  const passports = [await shakenPassport(signer, c)];
  const t = await atisToken({
    credential: cred,
    action: o.action ?? "publish",
    dest: c.dest,
    orig: c.orig,
    passports,
    ...(o.spc === undefined ? {} : { spc: o.spc }),
    ...o.token,
  });
  const res = await call(
    atisPath(c.dest, c.orig, o.spc),
    publishInit(t.authorization, o.body ?? passports, o.headers),
    o.bindings,
  );
  return { res, passports, jti: t.jti };
}

async function published(cred: WorkerCredential, c: Call, o: Parameters<typeof publishAs>[2] = {}) {
  const r = await publishAs(cred, c, o);
  expect(r.res.status, await r.res.clone().text()).toBe(201);
  return r.passports;
}

async function retrieveAs(
  cred: WorkerCredential,
  c: Call,
  o: { spc?: string; token?: Overrides; bindings?: Env } = {},
) {
  const t = await atisToken({
    credential: cred,
    action: "retrieve",
    dest: c.dest,
    orig: c.orig,
    ...(o.spc === undefined ? {} : { spc: o.spc }),
    ...o.token,
  });
  const res = await call(atisPath(c.dest, c.orig, o.spc), retrieveInit(t.authorization), o.bindings);
  return { res, jti: t.jti };
}

async function passportsOf(res: Response): Promise<string[]> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")?.split(";")[0]).toBe("application/json");
  expect(res.headers.get("cache-control")).toBe("no-store");
  return (JSON.parse(text) as { passports: string[] }).passports;
}

/** A covering credential for TEST_BLOCK (and TEST_SPC): what a refusal's "nothing stored" is read by. */
let covering: WorkerCredential;
beforeAll(async () => {
  covering = await atisCredential(pki);
});

/** The refusal changed nothing: the same PASSporTs and row counts, and its jti is still unspent. */
async function expectNothingChanged(
  c: Call,
  before: { stored: string[]; rows: Record<string, number> },
  jti: string,
) {
  expect(await storedFor(env, c.dest, c.orig)).toEqual(before.stored);
  expect(await storeRowCounts(env, c.dest)).toEqual(before.rows);
  // The same jti from a credential that may publish here is accepted: the refusal did not spend it.
  const fixed = await publishAs(covering, c, { token: { jti } });
  expect(fixed.res.status, await fixed.res.clone().text()).toBe(201);
  expect(await storedFor(env, c.dest, c.orig)).toEqual([...before.stored, ...fixed.passports]);
}

const snapshot = async (c: Call) => ({
  stored: await storedFor(env, c.dest, c.orig),
  rows: await storeRowCounts(env, c.dest),
});

// ---------------------------------------------------------------------------------------------

describe("retrieve on /passports/{DEST}/{ORIG}: only a credential covering DEST", () => {
  it("a credential covering other numbers: 403 CERT_NOT_AUTHORISED, jti unspent; a covering one: 200", async () => {
    const c = freshCall();
    const mine = await published(covering, c);
    const other = await holder([
      { type: "spc", spc: "709J" },
      { type: "range", start: "12025550100", count: 100 },
    ]);
    const before = await snapshot(c);
    const refused = await retrieveAs(other, c);
    await expectAtisError(refused.res, 403, "CERT_NOT_AUTHORISED");
    expect(await storedFor(env, c.dest, c.orig)).toEqual(before.stored);
    // The refused retrieval's jti is still good for a covering credential.
    const ok = await retrieveAs(covering, c, { token: { jti: refused.jti } });
    expect(await passportsOf(ok.res)).toEqual(mine);
  });

  it("a range ending just before DEST does not cover it; a single-number entry for DEST does", async () => {
    const c = freshCall();
    const mine = await published(covering, c);
    const below = String(BigInt(c.dest) - 10n);
    const near = await holder([{ type: "range", start: below, count: 10 }]);
    await expectAtisError((await retrieveAs(near, c)).res, 403, "CERT_NOT_AUTHORISED");
    const exact = await holder([{ type: "one", tn: c.dest }]);
    expect(await passportsOf((await retrieveAs(exact, c)).res)).toEqual(mine);
  });

  it("an SPC-only credential covers DEST through SPC_NUMBER_BLOCKS, and not without it", async () => {
    const c = freshCall();
    const mine = await published(covering, c);
    const spcM = await spcOnly("SPCM");
    expect(await passportsOf((await retrieveAs(spcM, c)).res)).toEqual(mine);
    // The same credential where the operator maps no numbers to SPCM (the plain integration Worker).
    await expectAtisError((await retrieveAs(spcM, c, { bindings: env })).res, 403, "CERT_NOT_AUTHORISED");
  });

  it("an agreed partner's SPC does not open the DEST/ORIG path (agreements are per SPC path)", async () => {
    const c = freshCall();
    await published(await spcOnly("SPCB"), c, { spc: "SPCB" });
    await expectAtisError((await retrieveAs(await spcOnly("SPCA"), c)).res, 403, "CERT_NOT_AUTHORISED");
  });

  it("a dest claim listing a covered number beside DEST does not help: coverage is of the path's DEST", async () => {
    const c = freshCall();
    await published(covering, c);
    const mine = await holder([{ type: "one", tn: "12155551212" }]);
    const r = await retrieveAs(mine, c, { token: { claims: { dest: { tn: ["12155551212", c.dest] } } } });
    await expectAtisError(r.res, 403, "CERT_NOT_AUTHORISED");
  });

  it("a leaf whose delegate CA is scoped to other numbers (RFC 9060 §4): 403 CERT_CHAIN_INVALID", async () => {
    const c = freshCall();
    await published(covering, c);
    const subCa = await pki.delegate({
      tnAuthList: [{ type: "one", tn: "12025550142" }],
      name: "ATIS scoped sub-CA",
    });
    const leaf = await pki.issue({
      issuer: subCa,
      tnAuthList: [{ type: "one", tn: c.dest }],
      subject: `ATIS out-of-scope ${crypto.randomUUID()}`,
    });
    await expectAtisError((await retrieveAs(leaf, c)).res, 403, "CERT_CHAIN_INVALID");
  });

  it("nothing published: 404 NOT_FOUND in the ATIS format", async () => {
    await expectAtisError((await retrieveAs(covering, freshCall())).res, 404, "NOT_FOUND");
  });
});

describe("retrieve on /passports/{SPC}/{DEST}/{ORIG}: agreed partners (ATIS_AGREEMENTS SPCA<->SPCB)", () => {
  let c: Call;
  let byB: string[] = [];
  let byB2: string[] = [];
  let byC: string[] = [];
  let byNone: string[] = [];
  let spcA: WorkerCredential;

  beforeAll(async () => {
    c = freshCall();
    spcA = await spcOnly("SPCA");
    // Publisher SPC recorded per row (plan): the token's spc; else an SPC `iss` the certificate lists;
    // else the certificate's first SPC; else none.
    byB = await published(await spcOnly("SPCB"), c, { spc: "SPCB" });
    byB2 = await published(
      await holder([
        { type: "spc", spc: "SPCB" },
        { type: "spc", spc: "SPCZ" },
      ]),
      c,
    );
    byC = await published(
      await holder([
        { type: "spc", spc: "SPCB" },
        { type: "spc", spc: "SPCC" },
      ]),
      c,
      {
        token: { iss: "SPCC" },
      },
    );
    byNone = await published(
      await holder([{ type: "range", start: TEST_BLOCK.start, count: TEST_BLOCK.count }]),
      c,
    );
  });

  it("a partner sees only the rows of its partners and itself, oldest first", async () => {
    expect(await passportsOf((await retrieveAs(spcA, c, { spc: "SPCA" })).res)).toEqual([...byB, ...byB2]);
  });

  it("the agreement is symmetric, and an SPC sees its own rows", async () => {
    const c2 = freshCall();
    const ownA = await published(spcA, c2, { spc: "SPCA" });
    const ownB = await published(await spcOnly("SPCB"), c2, { spc: "SPCB" });
    expect(await passportsOf((await retrieveAs(await spcOnly("SPCB"), c2, { spc: "SPCB" })).res)).toEqual([
      ...ownA,
      ...ownB,
    ]);
  });

  it("a credential covering DEST sees every row on its SPC path, agreement or not", async () => {
    expect(await passportsOf((await retrieveAs(covering, c, { spc: TEST_SPC })).res)).toEqual([
      ...byB,
      ...byB2,
      ...byC,
      ...byNone,
    ]);
  });

  it("an SPC without agreement that does not cover DEST: 403 ATIS_NOT_PARTNER, jti unspent", async () => {
    const before = await snapshot(c);
    const refused = await retrieveAs(await spcOnly("SPCD"), c, { spc: "SPCD" });
    await expectAtisError(refused.res, 403, "ATIS_NOT_PARTNER");
    const ok = await retrieveAs(covering, c, { token: { jti: refused.jti } });
    expect(await passportsOf(ok.res)).toEqual(before.stored);
  });

  it("a partner whose partners published nothing here: 404 NOT_FOUND", async () => {
    const c3 = freshCall();
    await published(await spcOnly("SPCC"), c3, { spc: "SPCC" });
    await expectAtisError((await retrieveAs(spcA, c3, { spc: "SPCA" })).res, 404, "NOT_FOUND");
  });

  it("the partner's SPC path with a certificate that does not list that SPC: 403 CERT_NOT_AUTHORISED", async () => {
    // SPCA's credential on SPCB's path, claiming spc SPCB: the path and claim agree, the certificate does not.
    const refused = await retrieveAs(spcA, c, { spc: "SPCB" });
    await expectAtisError(refused.res, 403, "CERT_NOT_AUTHORISED");
  });
});

describe("republish: only a configured peer CPS (ATIS_PEERS)", () => {
  it("a credential that is not a peer's: 403 ATIS_PEER_UNKNOWN, nothing stored, jti unspent", async () => {
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(await spcOnly("SPCX"), c, { action: "republish" });
    await expectAtisError(r.res, 403, "ATIS_PEER_UNKNOWN");
    await expectNothingChanged(c, before, r.jti);
  });

  it("a credential covering DEST but listing no peer SPC: 403 ATIS_PEER_UNKNOWN", async () => {
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(covering, c, { action: "republish" });
    await expectAtisError(r.res, 403, "ATIS_PEER_UNKNOWN");
    await expectNothingChanged(c, before, r.jti);
  });

  it("the peer's credential where no peer is configured: 403 ATIS_PEER_UNKNOWN", async () => {
    const c = freshCall();
    const r = await publishAs(await spcOnly(PEER_SPC), c, { action: "republish", bindings: env });
    await expectAtisError(r.res, 403, "ATIS_PEER_UNKNOWN");
    expect(await storedFor(env, c.dest, c.orig)).toEqual([]);
  });

  it("the configured peer republishes (its body's original token ignored): 201, stored", async () => {
    const c = freshCall();
    const passports = [await shakenPassport(signer, c)];
    const t = await atisToken({
      credential: await spcOnly(PEER_SPC),
      action: "republish",
      dest: c.dest,
      orig: c.orig,
      passports,
      spc: PEER_SPC,
      iss: PEER_SPC,
    });
    const body = JSON.stringify({ passports, token: "the original publisher's token, not checked" });
    const res = await call(atisPath(c.dest, c.orig), publishInit(t.authorization, body));
    expect(res.status, await res.clone().text()).toBe(201);
    expect(await storedFor(env, c.dest, c.orig)).toEqual(passports);
  });
});

describe("a token's spc, iss and sub must be covered by its certificate", () => {
  it.each([
    ["spc claim an SPC the certificate does not list", { spc: "SPCX" }],
    ["iss an SPC the certificate does not list", { iss: "SPCX" }],
    ["iss a number the certificate does not cover", { iss: "12125550000" }],
    ["sub an SPC the certificate does not list", { sub: "SPCX" }],
  ] as [string, Overrides][])(
    "publish with %s: 403 CERT_NOT_AUTHORISED, nothing stored, jti unspent",
    async (_n, token) => {
      const c = freshCall();
      const before = await snapshot(c);
      const r = await publishAs(await atisCredential(pki), c, { token });
      await expectAtisError(r.res, 403, "CERT_NOT_AUTHORISED");
      await expectNothingChanged(c, before, r.jti);
    },
  );

  it("publish on the path of an SPC the certificate does not list: 403 CERT_NOT_AUTHORISED", async () => {
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(await atisCredential(pki), c, { spc: "SPCX" });
    await expectAtisError(r.res, 403, "CERT_NOT_AUTHORISED");
    await expectNothingChanged(c, before, r.jti);
  });

  it("retrieve with an spc claim the certificate does not list: 403 CERT_NOT_AUTHORISED", async () => {
    const c = freshCall();
    await published(covering, c);
    const r = await retrieveAs(await atisCredential(pki), c, { token: { spc: "SPCX" } });
    await expectAtisError(r.res, 403, "CERT_NOT_AUTHORISED");
  });

  it.each([
    ["spc, iss and sub the SPC the certificate lists", { spc: TEST_SPC, iss: TEST_SPC, sub: TEST_SPC }],
    ["iss a number the certificate covers", { iss: TEST_BLOCK.start }],
  ] as [string, Overrides][])("publish with %s: 201", async (_n, token) => {
    const c = freshCall();
    const r = await publishAs(await atisCredential(pki), c, { token });
    expect(r.res.status, await r.res.clone().text()).toBe(201);
    expect(await storedFor(env, c.dest, c.orig)).toEqual(r.passports);
  });
});

describe("revoked credentials (CRLs of the test PKI)", () => {
  const REVOKED = [
    ["a revoked leaf", "crlRevokedLeaf"],
    ["a leaf under a revoked intermediate", "underRevokedIntermediate"],
  ] as const;

  it.each(REVOKED)("publish by %s (x5c): 403 CERT_REVOKED, nothing stored, jti unspent", async (_n, name) => {
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(await pki.credential(name), c);
    await expectAtisError(r.res, 403, "CERT_REVOKED");
    await expectNothingChanged(c, before, r.jti);
  });

  it.each(REVOKED)("retrieve by %s: 403 CERT_REVOKED", async (_n, name) => {
    const c = freshCall();
    await published(covering, c);
    await expectAtisError((await retrieveAs(await pki.credential(name), c)).res, 403, "CERT_REVOKED");
  });

  it("publish by a revoked leaf named by x5u: 403 CERT_REVOKED", async () => {
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(await pki.credential("crlRevokedLeaf"), c, {
      token: { x5u: x5uOf("crlRevokedLeaf") },
    });
    await expectAtisError(r.res, 403, "CERT_REVOKED");
    await expectNothingChanged(c, before, r.jti);
  });

  it("control: an unrevoked credential naming the same CRLs publishes", async () => {
    const c = freshCall();
    const r = await publishAs(await pki.credential("crlValid"), c);
    expect(r.res.status, await r.res.clone().text()).toBe(201);
  });
});

describe("the operator's switch (ATIS_API off)", () => {
  it("the ATIS paths answer like an unknown path, read nothing and store nothing", async () => {
    const off = { ...env, ATIS_API: "off" } as Env;
    const c = freshCall();
    const before = await snapshot(c);
    const r = await publishAs(covering, c, { bindings: off });
    expect(r.res.status).toBe(404);
    expect(r.res.headers.get("content-type")).toBe("application/problem+json");
    expect((await r.res.json<{ code: string }>()).code).toBe("NOT_FOUND");
    const g = await retrieveAs(covering, c, { spc: TEST_SPC, bindings: off });
    expect(g.res.status).toBe(404);
    // Nothing parsed, so nothing spent: both jtis still publish where the routes are on.
    await expectNothingChanged(c, before, r.jti);
    const again = await publishAs(covering, c, { token: { jti: g.jti } });
    expect(again.res.status).toBe(201);
  });
});

describe("Idempotency-Key is scoped to the credential holder", () => {
  it("another credential under the same key is its own publish, neither a repeat nor a mismatch", async () => {
    const c = freshCall();
    const key = "shared-key-0001";
    const first = await publishAs(covering, c, { headers: { "Idempotency-Key": key } });
    expect(first.res.status).toBe(201);
    // Another holder, other PASSporTs, the same key: stored (not 422 for the first holder's record)...
    const other = await publishAs(await atisCredential(pki), c, { headers: { "Idempotency-Key": key } });
    expect(other.res.status, await other.res.clone().text()).toBe(201);
    expect(await storedFor(env, c.dest, c.orig)).toEqual([...first.passports, ...other.passports]);
    // ...and the first holder's key still holds its own record: other PASSporTs under it are refused.
    const again = await publishAs(covering, c, { headers: { "Idempotency-Key": key } });
    await expectAtisError(again.res, 422, "IDEMPOTENCY_KEY_MISMATCH");
    expect(await storedFor(env, c.dest, c.orig)).toEqual([...first.passports, ...other.passports]);
  });
});

describe("races and expiry: one record per request, nothing served past its time", () => {
  it("the same accepted request twice at once (no Idempotency-Key): one 201, one AUTH_REPLAYED, stored once", async () => {
    const c = freshCall();
    const passports = [await shakenPassport(signer, c)];
    const t = await atisToken({
      credential: covering,
      action: "publish",
      dest: c.dest,
      orig: c.orig,
      passports,
    });
    const init = () => publishInit(t.authorization, passports);
    const [a, b] = await Promise.all([
      call(atisPath(c.dest, c.orig), init()),
      call(atisPath(c.dest, c.orig), init()),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([201, 401]);
    const loser = a.status === 401 ? a : b;
    await expectAtisError(loser, 401, "AUTH_REPLAYED");
    expect(await storedFor(env, c.dest, c.orig)).toEqual(passports);
  });

  it("two tokens, one body, one Idempotency-Key at once: both 201, one record", async () => {
    const c = freshCall();
    const passports = [await shakenPassport(signer, c)];
    const send = async () => {
      const t = await atisToken({
        credential: covering,
        action: "publish",
        dest: c.dest,
        orig: c.orig,
        passports,
      });
      return call(
        atisPath(c.dest, c.orig),
        publishInit(t.authorization, passports, { "Idempotency-Key": "race-1" }),
      );
    };
    const [a, b] = await Promise.all([send(), send()]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(await storedFor(env, c.dest, c.orig)).toEqual(passports);
    expect((await storeRowCounts(env, c.dest)).passports).toBe(1);
  });

  it("one Idempotency-Key, two bodies at once: one 201, one IDEMPOTENCY_KEY_MISMATCH, only the winner stored", async () => {
    const c = freshCall();
    const bodies = [[await shakenPassport(signer, c)], [await shakenPassport(signer, c)]];
    const results = await Promise.all(
      bodies.map(async (passports) => {
        const t = await atisToken({
          credential: covering,
          action: "publish",
          dest: c.dest,
          orig: c.orig,
          passports,
        });
        const res = await call(
          atisPath(c.dest, c.orig),
          publishInit(t.authorization, passports, { "Idempotency-Key": "race-2" }),
        );
        return { res, passports };
      }),
    );
    const won = results.filter((r) => r.res.status === 201);
    const lost = results.filter((r) => r.res.status !== 201);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    await expectAtisError((lost[0] as (typeof results)[number]).res, 422, "IDEMPOTENCY_KEY_MISMATCH");
    expect(await storedFor(env, c.dest, c.orig)).toEqual((won[0] as (typeof results)[number]).passports);
  });

  it("a row is not served after its earliest deadline (a PASSporT's iat + 60 s, the token's exp)", async () => {
    const byIat = freshCall();
    const old = [await shakenPassport(signer, { ...byIat, iat: Math.floor(Date.now() / 1000) - 55 })];
    const t1 = await atisToken({ credential: covering, action: "publish", ...byIat, passports: old });
    expect((await call(atisPath(byIat.dest, byIat.orig), publishInit(t1.authorization, old))).status).toBe(
      201,
    );

    const byExp = freshCall();
    const fresh = [await shakenPassport(signer, byExp)];
    const iat = Math.floor(Date.now() / 1000);
    const t2 = await atisToken({
      credential: covering,
      action: "publish",
      ...byExp,
      passports: fresh,
      iat,
      exp: iat + 2,
    });
    expect((await call(atisPath(byExp.dest, byExp.orig), publishInit(t2.authorization, fresh))).status).toBe(
      201,
    );
    expect(await passportsOf((await retrieveAs(covering, byExp)).res)).toEqual(fresh);
    expect(await passportsOf((await retrieveAs(covering, byIat)).res)).toEqual(old);

    // Past both deadlines (iat + 60 = about now + 5 s; exp = now + 2 s): neither is served.
    await new Promise((r) => setTimeout(r, 6_500));
    await expectAtisError((await retrieveAs(covering, byIat)).res, 404, "NOT_FOUND");
    await expectAtisError((await retrieveAs(covering, byExp)).res, 404, "NOT_FOUND");
  });
});

describe("the bridge to RFC 8816 seals only what was accepted (docs/design.md invariant 7)", () => {
  /** The sealed blobs in DEST's RFC 8816 queue (its rows in its index block), opened with the callee's key. */
  async function sealedIn(dest: string, key: CryptoKeyPair): Promise<string[]> {
    const blobs = await runInDurableObject(blockFor(dest), (_obj, state) =>
      state.storage.sql
        .exec<{ blob: ArrayBuffer }>("SELECT blob FROM blobs WHERE tn = ?", canonicalTn(dest))
        .toArray()
        .map((r) => new Uint8Array(r.blob)),
    );
    // The queue keeps no insertion order (ids are random): compared as sorted lists.
    return (await Promise.all(blobs.map((b) => openPassport(key, canonicalTn(dest), b)))).sort();
  }

  it("refused publishes and an idempotent repeat seal nothing; an accepted publish seals each PASSporT once", async () => {
    const c = freshCall();
    const callee = await generateRecipientKeyPair();
    const put = await call(`/keys/${c.dest}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: await bearerFor(covering, "keys:put") },
      body: JSON.stringify(await signedKeyBody(covering, callee.publicKey, { blocks: [c.dest] })),
    });
    expect(put.status, await put.clone().text()).toBe(201);

    // Refused: a PASSporT from another caller, an spc the certificate does not list, a non-peer republish.
    const other = [await shakenPassport(signer, { orig: freshTn(), dest: c.dest })];
    const wrong = await atisToken({ credential: covering, action: "publish", ...c, passports: other });
    const mismatch = await call(atisPath(c.dest, c.orig), publishInit(wrong.authorization, other));
    await expectAtisError(mismatch, 400, "ATIS_PASSPORT_MISMATCH");
    const bad = await publishAs(covering, c, { token: { spc: "SPCX" } });
    await expectAtisError(bad.res, 403, "CERT_NOT_AUTHORISED");
    const nonPeer = await publishAs(covering, c, { action: "republish" });
    await expectAtisError(nonPeer.res, 403, "ATIS_PEER_UNKNOWN");
    expect(await sealedIn(c.dest, callee.keyPair)).toEqual([]);

    // Accepted, with an Idempotency-Key; then the exact resend: the stored answer, no second seal.
    const passports = [await shakenPassport(signer, c), await shakenPassport(signer, c)];
    const t = await atisToken({ credential: covering, action: "publish", ...c, passports });
    const init = () => publishInit(t.authorization, passports, { "Idempotency-Key": "bridge-1" });
    expect((await call(atisPath(c.dest, c.orig), init())).status).toBe(201);
    expect((await call(atisPath(c.dest, c.orig), init())).status).toBe(201);
    expect(await sealedIn(c.dest, callee.keyPair)).toEqual([...passports].sort());
  });
});

describe("the per-number cap (MAX_LIVE_PER_NUMBER, default 1000)", () => {
  it("a publish that would pass the cap: 429 QUEUE_FULL with Retry-After, none of its PASSporTs stored", async () => {
    const c = freshCall();
    // Seeded straight into the Durable Object (test setup, not a request): 995 live rows.
    const seeded = Array.from({ length: 995 }, (_, i) => `seed.${i}.x`);
    const store = atisStore(env, canonicalTn(c.dest));
    expect(
      await store.publish({
        orig: canonicalTn(c.orig),
        publisherSpc: null,
        passports: seeded,
        expiresAt: Date.now() + 50_000,
      }),
    ).toMatchObject({ ok: true, repeat: false });
    const before = await snapshot(c);

    const ten = await Promise.all(Array.from({ length: 10 }, () => shakenPassport(signer, c)));
    const t = await atisToken({ credential: covering, action: "publish", ...c, passports: ten });
    const res = await call(atisPath(c.dest, c.orig), publishInit(t.authorization, ten));
    await expectAtisError(res, 429, "QUEUE_FULL");
    expect(await storedFor(env, c.dest, c.orig)).toEqual(before.stored);
    expect(await storeRowCounts(env, c.dest)).toEqual(before.rows);

    // Five still fit: all-or-nothing, not first-come-first-stored.
    const five = ten.slice(0, 5);
    const t5 = await atisToken({ credential: covering, action: "publish", ...c, passports: five });
    expect((await call(atisPath(c.dest, c.orig), publishInit(t5.authorization, five))).status).toBe(201);
    expect((await storedFor(env, c.dest, c.orig)).slice(-5)).toEqual(five);
  });
});
