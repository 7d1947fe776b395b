/**
 * The ATIS out-of-band routes on their happy paths, inside workerd with real Durable Objects, the
 * Rate Limiting binding as miniflare runs it, and the test PKI (docs/atis-api.md):
 * publish + retrieve on both path forms (ATIS-1000096 / VESPER `/passports/{DEST}/{ORIG}`,
 * ATIS-1000105 `/passports/{SPC}/{DEST}/{ORIG}`) with x5c and x5u access tokens; the answers' exact
 * shape; expiry from the token's `exp` and from the PASSporTs' `iat`; Idempotency-Key; the rate limit
 * per credential; ATIS_API off; the bridge into the RFC 8816 queue of a number with a registered key.
 * The refusals are in atis-bad-input.test.ts and atis-authz.test.ts.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import type { TestCredential } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { atisStore } from "../../src/storage/objects.js";
import {
  atisCredential,
  atisToken,
  atisUrl,
  chainX5u,
  expectAtisError,
  freshTn,
  nowSeconds,
  publishInit,
  retrieveInit,
  shakenPassport,
  storeRowCounts,
  TEST_SPC,
} from "../helpers/atis.js";
import { cpsCredentialSecret } from "../helpers/federation.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";
import { liveCountOf } from "../helpers/worker.js";

const pki = loadTestPki(env.TEST_PKI);

function call(url: string, init: RequestInit, bindings: Env = env): Promise<Response> {
  return Promise.resolve(app.request(url, init, bindings));
}

interface Call {
  dest: string;
  orig: string;
  spc?: string;
}

/** A publish of `passports` for `call` by `cred`, its token by x5c (or by `x5u`), with `extra` headers. */
async function publish(
  cred: WorkerCredential,
  call_: Call,
  passports: string[],
  options: { x5u?: string; exp?: number; headers?: Record<string, string>; bindings?: Env } = {},
) {
  const token = await atisToken({
    credential: cred,
    action: "publish",
    dest: call_.dest,
    orig: call_.orig,
    passports,
    ...(call_.spc === undefined ? {} : { spc: call_.spc, iss: call_.spc }),
    ...(options.x5u === undefined ? {} : { x5u: options.x5u }),
    ...(options.exp === undefined ? {} : { exp: options.exp }),
  });
  const init = publishInit(token.authorization, passports, options.headers);
  return { token, init, res: await call(atisUrl(call_.dest, call_.orig, call_.spc), init, options.bindings) };
}

async function retrieve(cred: WorkerCredential, call_: Call, options: { x5u?: string; bindings?: Env } = {}) {
  const token = await atisToken({
    credential: cred,
    action: "retrieve",
    dest: call_.dest,
    orig: call_.orig,
    ...(call_.spc === undefined ? {} : { spc: call_.spc }),
    ...(options.x5u === undefined ? {} : { x5u: options.x5u }),
  });
  return call(
    atisUrl(call_.dest, call_.orig, call_.spc),
    retrieveInit(token.authorization),
    options.bindings,
  );
}

async function passportsFor(orig: string, dest: string, count = 1, iat?: number): Promise<string[]> {
  const signer = await pki.credential("valid");
  return Promise.all(
    Array.from({ length: count }, () => shakenPassport(signer, { orig, dest, ...(iat ? { iat } : {}) })),
  );
}

async function expectCreated(res: Response): Promise<void> {
  expect(res.status, await res.clone().text()).toBe(201);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(await res.json()).toEqual({ status: 201, message: "Created" });
}

async function expectPassports(res: Response, passports: string[]): Promise<void> {
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(await res.json()).toEqual({ passports });
}

/** expires_at of every row of `dest`'s AtisStore (ms). */
function rowExpiries(dest: string): Promise<number[]> {
  return runInDurableObject(atisStore(env, canonicalTn(dest)), (_obj, state) =>
    state.storage.sql
      .exec<{ e: number }>("SELECT expires_at AS e FROM passports ORDER BY seq")
      .toArray()
      .map((r) => r.e),
  );
}

describe("publish and retrieve (ATIS-1000096 / VESPER path, ATIS-1000105 path)", () => {
  it.each([
    ["/passports/{DEST}/{ORIG}", "x5c", undefined],
    ["/passports/{DEST}/{ORIG}", "x5u", undefined],
    ["/passports/{SPC}/{DEST}/{ORIG}", "x5c", TEST_SPC],
    ["/passports/{SPC}/{DEST}/{ORIG}", "x5u", TEST_SPC],
  ])("%s with an %s token: 201 Created, then 200 with the PASSporTs", async (_path, by, spc) => {
    const cred = await atisCredential(pki);
    const x5u = by === "x5u" ? chainX5u(cred.der) : undefined;
    const c: Call = { dest: freshTn(), orig: "12155551212", ...(spc === undefined ? {} : { spc }) };
    const passports = await passportsFor(c.orig, c.dest, 2);
    await expectCreated((await publish(cred, c, passports, x5u ? { x5u } : {})).res);
    await expectPassports(await retrieve(cred, c, x5u ? { x5u } : {}), passports);
  });

  it("a retrieval on one path form sees what was published on the other (one store per DEST)", async () => {
    const cred = await atisCredential(pki);
    const dest = freshTn();
    const orig = "12155551212";
    const [p1] = await passportsFor(orig, dest);
    const [p2] = await passportsFor(orig, dest);
    await expectCreated((await publish(cred, { dest, orig }, [p1 as string])).res);
    await expectCreated((await publish(cred, { dest, orig, spc: TEST_SPC }, [p2 as string])).res);
    await expectPassports(await retrieve(cred, { dest, orig, spc: TEST_SPC }), [p1 as string, p2 as string]);
    await expectPassports(await retrieve(cred, { dest, orig }), [p1 as string, p2 as string]);
  });

  it("paths take the + and dotted spellings of a number; the answer keeps oldest first, each once", async () => {
    const cred = await atisCredential(pki);
    const dest = freshTn();
    const orig = "12155551212";
    const [p1, p2] = (await passportsFor(orig, dest, 2)) as [string, string];
    await expectCreated((await publish(cred, { dest: `+${dest}`, orig }, [p1])).res);
    await expectCreated((await publish(cred, { dest, orig: "1.215.555.1212" }, [p2, p1])).res);
    await expectPassports(await retrieve(cred, { dest, orig }), [p1, p2]);
  });

  it("nothing published for the pair: 404 NOT_FOUND in the ATIS error format", async () => {
    const cred = await atisCredential(pki);
    const dest = freshTn();
    await expectAtisError(await retrieve(cred, { dest, orig: "12155551212" }), 404, "NOT_FOUND");
    // Another calling number's PASSporTs are not this pair's.
    await expectCreated(
      (await publish(cred, { dest, orig: "12155551212" }, await passportsFor("12155551212", dest))).res,
    );
    await expectAtisError(await retrieve(cred, { dest, orig: "12155550000" }), 404, "NOT_FOUND");
  });

  it("a republish from a configured peer CPS is stored like a publish", async () => {
    const peer = await atisCredential(pki, [{ type: "spc", spc: "PEERB" }], "peer CPS");
    const reader = await atisCredential(pki);
    const bindings = {
      ...env,
      ATIS_PEERS: JSON.stringify([{ url: "https://cps-b.example", spc: "PEERB" }]),
    } as Env;
    const dest = freshTn();
    const orig = "12155551212";
    const passports = await passportsFor(orig, dest);
    const token = await atisToken({
      credential: peer,
      action: "republish",
      dest,
      orig,
      passports,
      spc: "PEERB",
    });
    await expectCreated(
      await call(atisUrl(dest, orig), publishInit(token.authorization, passports), bindings),
    );
    await expectPassports(await retrieve(reader, { dest, orig }, { bindings }), passports);
  });

  it("ATIS-1000105 by agreement: a partner SPC retrieves what its partner published, nothing else", async () => {
    const publisher = await atisCredential(pki);
    const other = await atisCredential(pki, [{ type: "spc", spc: "OTHER" }], "unrelated publisher");
    const partner = await atisCredential(pki, [{ type: "spc", spc: "PARTNER" }], "partner, no numbers");
    const bindings = { ...env, ATIS_AGREEMENTS: JSON.stringify([["PARTNER", TEST_SPC]]) } as Env;
    const dest = freshTn();
    const orig = "12155551212";
    const [mine, theirs] = (await passportsFor(orig, dest, 2)) as [string, string];
    await expectCreated((await publish(publisher, { dest, orig, spc: TEST_SPC }, [mine], { bindings })).res);
    await expectCreated((await publish(other, { dest, orig, spc: "OTHER" }, [theirs], { bindings })).res);
    await expectPassports(await retrieve(partner, { dest, orig, spc: "PARTNER" }, { bindings }), [mine]);
  });
});

describe("expiry (ATIS-1000105: the publisher's exp; RFC 8224 §6.2.2: the PASSporT's iat + 60 s)", () => {
  it("a row lives until the token's exp, and is gone after it", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const exp = nowSeconds() + 2;
    const passports = await passportsFor(c.orig, c.dest);
    await expectCreated((await publish(cred, c, passports, { exp })).res);
    expect(await rowExpiries(c.dest)).toEqual([exp * 1000]);
    await expectPassports(await retrieve(cred, c), passports);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 200));
    await expectAtisError(await retrieve(cred, c), 404, "NOT_FOUND");
  });

  it("without exp: the first of the CPS policy time and the oldest PASSporT's iat + 60 s", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const iat = nowSeconds() - 50;
    const [old] = await passportsFor(c.orig, c.dest, 1, iat);
    const [fresh] = await passportsFor(c.orig, c.dest);
    await expectCreated((await publish(cred, c, [fresh as string, old as string])).res);
    expect(await rowExpiries(c.dest)).toEqual([(iat + 60) * 1000, (iat + 60) * 1000]);

    const c2: Call = { dest: freshTn(), orig: "12155551212" };
    const before = Date.now();
    await expectCreated((await publish(cred, c2, await passportsFor(c2.orig, c2.dest))).res);
    const [expiry] = await rowExpiries(c2.dest);
    // PASSPORT_TTL_SECONDS is 60 in this project: now + 60 s and iat + 60 s agree to the second.
    expect(expiry).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 59_000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 60_000);
  });
});

describe("Idempotency-Key (draft-wendt-stir-vesper-oob)", () => {
  it("the same key and request: the same answer, one row; the exact resend with its spent jti too", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const passports = await passportsFor(c.orig, c.dest);
    const headers = { "Idempotency-Key": `key-${crypto.randomUUID()}` };
    const first = await publish(cred, c, passports, { headers });
    await expectCreated(first.res);
    // A new token, same key and body: the stored answer, nothing stored again.
    await expectCreated((await publish(cred, c, passports, { headers })).res);
    // The first request sent again as it was (its answer lost): its jti is spent, still the answer.
    await expectCreated(await call(atisUrl(c.dest, c.orig), first.init));
    expect(await storeRowCounts(env, c.dest)).toEqual({ idempotency: 1, passports: 1 });
    await expectPassports(await retrieve(cred, c), passports);
  });

  it("the same key with another body: 422 IDEMPOTENCY_KEY_MISMATCH, nothing stored", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const headers = { "Idempotency-Key": "order-1" };
    const passports = await passportsFor(c.orig, c.dest);
    await expectCreated((await publish(cred, c, passports, { headers })).res);
    const before = await storeRowCounts(env, c.dest);
    const other = await passportsFor(c.orig, c.dest);
    await expectAtisError((await publish(cred, c, other, { headers })).res, 422, "IDEMPOTENCY_KEY_MISMATCH");
    expect(await storeRowCounts(env, c.dest)).toEqual(before);
    // Another credential's same key is its own.
    const someoneElse = await atisCredential(pki);
    await expectCreated((await publish(someoneElse, c, other, { headers })).res);
  });

  it("without a key, the resent request is a replay: 401 AUTH_REPLAYED", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const first = await publish(cred, c, await passportsFor(c.orig, c.dest));
    await expectCreated(first.res);
    await expectAtisError(await call(atisUrl(c.dest, c.orig), first.init), 401, "AUTH_REPLAYED");
  });
});

describe("rate limit per credential (ATIS_RATE_LIMITER: 100 per 10 s in this project)", () => {
  it("a credential over the limit gets 429 ATIS_RATE_LIMITED with Retry-After 10; another is not held back", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    // One token sent again and again: each counts before its jti is found spent (401 AUTH_REPLAYED).
    const token = await atisToken({ credential: cred, action: "retrieve", dest: c.dest, orig: c.orig });
    let limited: Response | undefined;
    const seen = new Set<number>();
    // The window is fixed and aligned to the clock: 2 x limit + 1 requests cross at most one boundary.
    for (let i = 0; i < 201 && limited === undefined; i++) {
      const res = await call(atisUrl(c.dest, c.orig), retrieveInit(token.authorization));
      seen.add(res.status);
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    expect(seen).toEqual(new Set([404, 401, 429]));
    const body = await expectAtisError(limited as Response, 429, "ATIS_RATE_LIMITED");
    expect(body.message).not.toMatch(/[0-9a-f]{32}/); // never the holder id
    expect(limited?.headers.get("retry-after")).toBe("10");
    const other = await atisCredential(pki);
    await expectAtisError(await retrieve(other, c), 404, "NOT_FOUND");
  });
});

describe("ATIS_API", () => {
  const off = { ...env, ATIS_API: "off" } as Env;

  it.each([
    ["GET", "/passports/12025550123/12155551212"],
    ["POST", "/passports/12025550123/12155551212"],
    ["PUT", "/passports/12025550123/12155551212"],
    ["GET", "/passports/SPCW/12025550123/12155551212"],
    ["POST", "/passports/SPCW/not-a-number/12155551212"],
  ])('"off": %s %s answers exactly like an unknown path', async (method, path) => {
    const init: RequestInit = {
      method,
      headers: { Authorization: "Bearer x.y.z", "Content-Type": "text/plain" },
    };
    const res = await call(`${TEST_CPS_ORIGIN}${path}`, init, off);
    const unknown = await call(`${TEST_CPS_ORIGIN}/no/such/path`, { method }, off);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toEqual(await unknown.json());
  });

  it('"on" (wrangler.toml) serves them; any other value is MISCONFIGURED like other bad vars', async () => {
    expect(env.ATIS_API).toBe("on");
    const cred = await atisCredential(pki);
    await expectAtisError(await retrieve(cred, { dest: freshTn(), orig: "12155551212" }), 404, "NOT_FOUND");
    const bad = { ...env, ATIS_API: "yes" } as Env;
    const res = await call(atisUrl("12025550123", "12155551212"), { method: "GET" }, bad);
    expect(res.status).toBe(500);
    expect(((await res.json()) as { code: string }).code).toBe("MISCONFIGURED");
  });
});

describe("re-publishing to peers (ATIS_PEERS, the ATIS_REPUBLISH queue)", () => {
  const peers = JSON.stringify([{ url: "https://cps-b.example", spc: "PEERB" }]);

  async function withQueue(send: (body: unknown) => Promise<void>): Promise<Env> {
    const own = await atisCredential(pki, [{ type: "spc", spc: "CPSA" }], "this CPS");
    return {
      ...env,
      ATIS_PEERS: peers,
      ATIS_CPS_CREDENTIAL: await cpsCredentialSecret(own as unknown as TestCredential),
      ATIS_REPUBLISH: { send } as unknown as Queue,
    } as Env;
  }

  it("a publish is queued once per peer before its 201; a republish and a repeat are not", async () => {
    const sent: unknown[] = [];
    const bindings = await withQueue(async (body) => void sent.push(body));
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const passports = await passportsFor(c.orig, c.dest);
    const headers = { "Idempotency-Key": "queued-once" };
    await expectCreated((await publish(cred, c, passports, { headers, bindings })).res);
    expect(sent).toEqual([
      expect.objectContaining({ v: 1, peer: "https://cps-b.example", dest: c.dest, orig: c.orig, passports }),
    ]);
    await expectCreated((await publish(cred, c, passports, { headers, bindings })).res);
    const peer = await atisCredential(pki, [{ type: "spc", spc: "PEERB" }], "peer CPS");
    const more = await passportsFor(c.orig, c.dest);
    const token = await atisToken({
      credential: peer,
      action: "republish",
      ...c,
      passports: more,
      spc: "PEERB",
    });
    await expectCreated(
      await call(atisUrl(c.dest, c.orig), publishInit(token.authorization, more), bindings),
    );
    expect(sent).toHaveLength(1);
  });

  // A test double for the queue: the point is a queue that fails (the platform's, unreachable).
  it("the queue failing: 503 UNAVAILABLE leaves nothing (no row, no Idempotency-Key), so a retry queues", async () => {
    let up = false;
    const sent: unknown[] = [];
    const bindings = await withQueue(async (body) => {
      if (!up) throw new Error("queue down");
      sent.push(body);
    });
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const passports = await passportsFor(c.orig, c.dest);
    const headers = { "Idempotency-Key": "retry-after-503" };
    await expectAtisError((await publish(cred, c, passports, { headers, bindings })).res, 503, "UNAVAILABLE");
    expect(await storeRowCounts(env, c.dest)).toEqual({ idempotency: 0, passports: 0 });
    // A retry without the key is a new publish too (nothing of the failed one is left to dedupe it).
    await expectAtisError((await publish(cred, c, passports, { bindings })).res, 503, "UNAVAILABLE");
    up = true;
    await expectCreated((await publish(cred, c, passports, { headers, bindings })).res);
    expect(sent).toHaveLength(1);
    expect(await storeRowCounts(env, c.dest)).toEqual({ idempotency: 1, passports: 1 });
  });
});

describe("what the route itself guards beyond the protocol code", () => {
  it("a body nested 20,000 deep (JSON.parse takes it; hashing it would recurse): 400 INVALID_BODY", async () => {
    const cred = await atisCredential(pki);
    const c: Call = { dest: freshTn(), orig: "12155551212" };
    const passports = await passportsFor(c.orig, c.dest);
    const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
    const text = `{"passports":${JSON.stringify(passports)},"x":${deep}}`;
    const token = await atisToken({
      credential: cred,
      action: "publish",
      dest: c.dest,
      orig: c.orig,
      passports,
    });
    const res = await call(atisUrl(c.dest, c.orig), publishInit(token.authorization, text));
    await expectAtisError(res, 400, "INVALID_BODY");
    expect(await storeRowCounts(env, c.dest)).toEqual({ idempotency: 0, passports: 0 });
  });
});

describe("the bridge to RFC 8816 (a number with a registered encryption key)", () => {
  it("an ATIS publish is also sealed into the number's RFC 8816 queue, once per key and PASSporT", async () => {
    const cred = await atisCredential(pki);
    const dest = freshTn();
    const orig = "12155551212";
    const { publicKey } = await generateRecipientKeyPair();
    const body = await signedKeyBody(cred, { x: encodeBase64url(publicKey) }, { blocks: [dest] });
    const put = await call(`${TEST_CPS_ORIGIN}/keys/${dest}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: await bearerFor(cred, "keys:put") },
      body: JSON.stringify(body),
    });
    expect(put.status, await put.clone().text()).toBe(201);
    const before = await liveCountOf(dest);
    await expectCreated((await publish(cred, { dest, orig }, await passportsFor(orig, dest, 2))).res);
    expect(await liveCountOf(dest)).toBe(before + 2);
    // An idempotent repeat bridges nothing again.
    const passports = await passportsFor(orig, dest);
    const headers = { "Idempotency-Key": "bridge-once" };
    await expectCreated((await publish(cred, { dest, orig }, passports, { headers })).res);
    await expectCreated((await publish(cred, { dest, orig }, passports, { headers })).res);
    expect(await liveCountOf(dest)).toBe(before + 3);
    // A resend without a key (a new token, the same live PASSporT) stores no row and seals no second copy.
    await expectCreated((await publish(cred, { dest, orig }, passports)).res);
    expect(await liveCountOf(dest)).toBe(before + 3);
  });
});
