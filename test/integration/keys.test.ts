/**
 * Key directory (RFC 8816 §11; docs/design.md invariant 5) against the real app, real KV and the real
 * ReplayGuard Durable Object, with certificates from the test PKI the Worker trusts. Keys are
 * registered as signed key records (docs/key-directory.md "Signed key records"), made with
 * test/helpers/key-records.ts.
 */
import { env } from "cloudflare:test";
import type { X509Certificate } from "@peculiar/x509";
import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { keysForTn, putKey } from "../../src/directory/key-store.js";
import { discoveryCacheKey, keyLookupCacheKey, prefetchCacheKey } from "../../src/http/edge-cache.js";
import { purgeKeysFor } from "../../src/routes/keys.js";
import { hash128Hex } from "../../src/stir/authority.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { formatBlock, parseBlock, rangeToBlocks } from "../../src/stir/number-blocks.js";
import { MAX_KEY_RECORD_LENGTH, verifyKeyRecord } from "../../src/stir/signed-key-record.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";
import {
  recordHeader,
  recordPayload,
  type SignedKeyOptions,
  signedKeyBody,
  signedKeyRecord,
  signRawRecord,
} from "../helpers/key-records.js";
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
  record?: string;
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

/**
 * `PUT /keys/{path}` of `jwk` in a record signed by `cred` (or `options.signer`): blocks default to
 * the path alone.
 */
async function reg(
  path: string,
  cred: WorkerCredential,
  jwk: { x: string },
  options: Partial<SignedKeyOptions> & { signer?: WorkerCredential; bindings?: Env } = {},
) {
  const { signer, bindings, ...rest } = options;
  const blocks = rest.blocks ?? [formatBlock(parseBlock(path))];
  const body = await signedKeyBody(signer ?? cred, jwk, { ...rest, blocks });
  return put(path, cred, body, bindings ?? env);
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

/** A validator of the Worker's own trust anchors, as a client would build one. */
let validator: CertificateValidator | undefined;
async function anchors(): Promise<CertificateValidator> {
  validator ??= new CertificateValidator({
    anchors: (await parseCertificateChain(pki.rootPem)).certificates,
  });
  return validator;
}

/** The leaf certificate of a test credential. */
async function anchorsLeaf(cred: WorkerCredential) {
  return (await parseCertificateChain(cred.der)).certificates[0] as X509Certificate;
}

const decodeB64url = (text: string) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (ch) => ch.charCodeAt(0));

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
  /** A good record of `cred` (default: the valid credential) for `tn`. */
  const body = async (tn = "12155551212", cred?: WorkerCredential) =>
    signedKeyBody(cred ?? (await valid()), await newKey(), { blocks: [tn] });
  it.each([
    ["no token", async () => put("12155551212", undefined, await body()), 401, "AUTH_MISSING"],
    [
      "expired certificate (token and record)",
      async () => {
        const cred = await pki.credential("expired");
        return put("12155551212", cred, await body("12155551212", cred));
      },
      403,
      "CERT_EXPIRED",
    ],
    [
      "certificate for another number",
      async () => {
        const cred = await issue([{ type: "one", tn: "19995550000" }], "Elsewhere");
        return put("12155551212", cred, await body("12155551212", cred));
      },
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "range that does not cover the block (100-number range, 10,000-number block)",
      async () => put("1202555xxxx", await valid(), await body("1202555xxxx")),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "range that does not cover the blocks of a start+count range (count runs past the certificate's range)",
      async () =>
        put(
          "1202555015x",
          await valid(),
          await signedKeyBody(await valid(), await newKey(), {
            blocks: [
              "1202555015x",
              "1202555016x",
              "1202555017x",
              "1202555018x",
              "1202555019x",
              "1202555020x",
            ],
          }),
        ),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "SPC that the operator has not mapped to numbers",
      async () => {
        const cred = await issue([{ type: "spc", spc: "999X" }], "Unmapped SPC");
        return put("13035550100", cred, await body("13035550100", cred));
      },
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "token for another action",
      async () =>
        put("12155551212", undefined, await body(), env, await bearerFor(await valid(), "keys:delete")),
      403,
      "AUTH_ACTION",
    ],
    [
      "token for another CPS",
      async () =>
        put(
          "12155551212",
          undefined,
          await body(),
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
    const first = await put("12155551212", undefined, await body(), env, header);
    expect(first.status).toBe(201);
    const before = await snapshot();
    const again = await put("12155551212", undefined, await body(), env, header);
    expect(again.status).toBe(401);
    expect((await again.json<{ code: string }>()).code).toBe("AUTH_REPLAYED");
    expect(await snapshot()).toBe(before);
  });
});

describe("PUT /keys/{tn}: signed key records, bad input table (4xx problem, KV unchanged)", () => {
  const TN = "12155551212";
  const valid = () => pki.credential("valid");
  /** PUT of `body` (an object, sent as JSON) with the valid credential's token. */
  const send = async (body: unknown, path = TN) => put(path, await valid(), body as Record<string, unknown>);
  /** PUT of a raw record: the valid credential's header and payload with `change` applied. */
  const raw = async (
    change: {
      header?: Record<string, unknown>;
      payload?: Record<string, unknown>;
      signer?: WorkerCredential;
    } = {},
  ) => {
    const cred = await valid();
    const header = { ...recordHeader(cred), ...change.header };
    for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k];
    const payload = recordPayload(await newKey(), [TN], change.payload);
    return send({ record: await signRawRecord(change.signer ?? cred, header, payload) });
  };
  const now = () => Math.floor(Date.now() / 1000);

  it.each<[string, () => Promise<Response>, number, string]>([
    [
      "an unsigned body (the shape of earlier versions)",
      async () => send({ jwk: await newKey(), label: "old", ttl: 3600 }),
      400,
      "KEY_RECORD_REQUIRED",
    ],
    ["an empty object", async () => send({}), 400, "KEY_RECORD_REQUIRED"],
    [
      "a record with other members beside it",
      async () =>
        send({ ...(await signedKeyBody(await valid(), await newKey(), { blocks: [TN] })), label: "x" }),
      400,
      "INVALID_BODY",
    ],
    ["a record that is not a string", async () => send({ record: 42 }), 400, "KEY_RECORD_INVALID"],
    ["a record that is not a JWS", async () => send({ record: "not.a-jws" }), 400, "KEY_RECORD_INVALID"],
    [
      "a bad signature (another key signed, the valid chain in x5c)",
      async () => raw({ signer: { privateKey: (await pki.credential("wrongAnchor")).privateKey, der: [] } }),
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "a tampered payload (the key swapped after signing)",
      async () => {
        const jws = await signedKeyRecord(await valid(), await newKey(), { blocks: [TN] });
        const [h, p, sig] = jws.split(".") as [string, string, string];
        const payload = JSON.parse(new TextDecoder().decode(decodeB64url(p)));
        payload.jwk.x = (await newKey()).x;
        const swapped = encodeBase64url(new TextEncoder().encode(JSON.stringify(payload)));
        return send({ record: `${h}.${swapped}.${sig}` });
      },
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "a chain that does not reach the trust anchor",
      async () =>
        send(await signedKeyBody(await pki.credential("wrongAnchor"), await newKey(), { blocks: [TN] })),
      403,
      "CERT_UNTRUSTED",
    ],
    [
      "a record signed with an expired certificate (the token's is valid)",
      async () =>
        send(await signedKeyBody(await pki.credential("expired"), await newKey(), { blocks: [TN] })),
      403,
      "CERT_EXPIRED",
    ],
    [
      "a record whose certificate has no TNAuthList",
      async () =>
        send(await signedKeyBody(await pki.credential("noTnAuthList"), await newKey(), { blocks: [TN] })),
      403,
      "CERT_NO_TNAUTHLIST",
    ],
    [
      "blocks outside the credential",
      async () =>
        send(await signedKeyBody(await valid(), await newKey(), { blocks: ["19995550000"] }), "19995550000"),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "one block of several outside the credential",
      async () =>
        send(
          await signedKeyBody(await valid(), await newKey(), { blocks: [TN, "120255501xx", "12025550200"] }),
        ),
      403,
      "CERT_NOT_AUTHORISED",
    ],
    [
      "an expired record window",
      async () =>
        send(
          await signedKeyBody(await valid(), await newKey(), {
            blocks: [TN],
            nbf: now() - 7200,
            ttlSeconds: 3600,
          }),
        ),
      400,
      "KEY_RECORD_EXPIRED",
    ],
    [
      "a record not valid yet",
      async () =>
        send(await signedKeyBody(await valid(), await newKey(), { blocks: [TN], nbf: now() + 3600 })),
      400,
      "KEY_RECORD_EXPIRED",
    ],
    [
      "exp more than 400 days after nbf",
      async () => raw({ payload: { nbf: now(), exp: now() + 401 * 86_400 } }),
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "an unknown critical header",
      async () => raw({ header: { crit: ["x-unknown"], "x-unknown": 1 } }),
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "an oversized chain (9 certificates)",
      async () => {
        const x5c = recordHeader(await valid()).x5c as string[];
        return raw({ header: { x5c: [...x5c, ...x5c, ...x5c, ...x5c, ...x5c].slice(0, 9) } });
      },
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "an oversized record (over 16,384 characters, body within the limit)",
      async () => {
        // Pad the header so that the record is just over the limit, and the body within its own.
        const cred = await valid();
        const bare = await signRawRecord(cred, recordHeader(cred), recordPayload(await newKey(), [TN]));
        const pad = "a".repeat(Math.ceil(((MAX_KEY_RECORD_LENGTH + 200 - bare.length) * 3) / 4));
        const record = await signRawRecord(
          cred,
          { ...recordHeader(cred), pad },
          recordPayload(await newKey(), [TN]),
        );
        expect(record.length).toBeGreaterThan(MAX_KEY_RECORD_LENGTH);
        expect(record.length).toBeLessThan(MAX_KEY_RECORD_LENGTH + 1000);
        return send({ record });
      },
      400,
      "KEY_RECORD_INVALID",
    ],
    ["an oversized body", async () => raw({ header: { pad: "a".repeat(20_000) } }), 413, "BODY_TOO_LARGE"],
    [
      "both x5c and x5u",
      async () => raw({ header: { x5u: "https://certs.example.net/a.pem" } }),
      400,
      "KEY_RECORD_INVALID",
    ],
    ["neither x5c nor x5u", async () => raw({ header: { x5c: undefined } }), 400, "KEY_RECORD_INVALID"],
    [
      "an x5u the CPS may not fetch (checked before any fetch)",
      async () => raw({ header: { x5c: undefined, x5u: "https://10.0.0.1/chain.pem" } }),
      400,
      "X5U_FETCH_FAILED",
    ],
    ["a wrong typ", async () => raw({ header: { typ: "JWT" } }), 400, "KEY_RECORD_INVALID"],
    ["a wrong alg", async () => raw({ header: { alg: "ES384" } }), 400, "KEY_RECORD_INVALID"],
    ["an unknown payload member", async () => raw({ payload: { ttl: 60 } }), 400, "KEY_RECORD_INVALID"],
    ["duplicate blocks", async () => raw({ payload: { blocks: [TN, TN] } }), 400, "KEY_RECORD_INVALID"],
    [
      "a private key in the jwk",
      async () => raw({ payload: { jwk: { ...(await newKey()), d: (await newKey()).x } } }),
      400,
      "KEY_RECORD_INVALID",
    ],
    [
      "a path that is not the record's first block",
      async () => send(await signedKeyBody(await valid(), await newKey(), { blocks: ["120255501xx", TN] })),
      400,
      "KEY_RECORD_MISMATCH",
    ],
    [
      "a path naming another number than the record",
      async () => send(await signedKeyBody(await valid(), await newKey(), { blocks: ["12025550142"] })),
      400,
      "KEY_RECORD_MISMATCH",
    ],
    [
      "a record signed by another holder than the token's",
      async () => {
        const other = await issue([{ type: "one", tn: TN }], "Someone Else");
        return send(await signedKeyBody(other, await newKey(), { blocks: [TN] }));
      },
      403,
      "KEY_RECORD_SIGNER",
    ],
    [
      "a token whose certificate does not cover the record's blocks (same holder)",
      async () => {
        // Same subject and issuer as the valid credential (same holder), another TNAuthList.
        const narrow = await issue([{ type: "one", tn: "19995550000" }]);
        return put(TN, narrow, await signedKeyBody(await valid(), await newKey(), { blocks: [TN] }));
      },
      403,
      "CERT_NOT_AUTHORISED",
    ],
  ])("refuses %s", async (_name, sendIt, status, code) => {
    const before = await snapshot();
    const res = await sendIt();
    expect(res.status).toBe(status);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect((await res.json<{ code: string }>()).code).toBe(code);
    expect(await snapshot()).toBe(before);
  });

  it("a path in another spelling of the record's first block is the same target", async () => {
    const jwk = await newKey();
    const res = await put(
      "+1-215-555-1212",
      await valid(),
      await signedKeyBody(await valid(), jwk, { blocks: [TN] }),
    );
    expect(res.status).toBe(201);
    const block = await put(
      "120255501XX",
      await valid(),
      await signedKeyBody(await valid(), jwk, { blocks: ["120255501xx"] }),
    );
    expect(block.status).toBe(201);
  });

  it("a renewed certificate (same holder, new key) may sign the record of the old one's token", async () => {
    const renewed = await issue([{ type: "one", tn: TN }]); // default subject: the valid credential's
    const res = await put(TN, await valid(), await signedKeyBody(renewed, await newKey(), { blocks: [TN] }));
    expect(res.status).toBe(201);
  });
});

describe("registration and lookup", () => {
  it("registers a key and serves it as an OKP/X25519 JWK Set with cache headers; kid is the RFC 7638 thumbprint", async () => {
    const jwk = await newKey();
    const cred = await pki.credential("valid");
    const sent = await signedKeyBody(cred, jwk, {
      blocks: ["12155551212"],
      label: "carrier",
      ttlSeconds: 3600,
    });
    const res = await put("12155551212", cred, sent);
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
      // The signed record, byte for byte as registered: what a client verifies.
      record: sent.record,
    });
    expect(mine?.exp).toBeGreaterThan(Date.now() / 1000 + 3500);
    // The outer members repeat the record's payload (for readers of the JWK Set as before).
    const verified = await verifyKeyRecord(mine?.record, { validator: await anchors(), tn: "12155551212" });
    expect(mine?.exp).toBe(verified.claims.exp);
    expect(mine?.kid).toBe(verified.kid);
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
    expect((await reg(tn, carrier, keys.carrier, { label: "carrier-a" })).status).toBe(201);
    expect((await reg(tn, carrier, keys.carrier2, { label: "carrier-b" })).status).toBe(201);
    expect((await reg(tn, reseller, keys.reseller, { label: "reseller" })).status).toBe(201);
    expect((await reg(tn, enterprise, keys.enterprise, { label: "enterprise" })).status).toBe(201);
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
    await reg(tn, holder, jwk, { label: "old", ttlSeconds: 600 });
    await reg(tn, holder, jwk, { label: "new", ttlSeconds: 7200 });
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
      expect((await reg(tn, holder, await newKey(), { label: `k${i}` })).status).toBe(201);
    const before = await snapshot();
    const res = await reg(tn, holder, await newKey(), { label: "k5" });
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
    await reg("12025550111", await pki.credential("valid"), await newKey(), { label: "cached" });
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
    const res = await reg("120255501xx", await pki.credential("valid"), jwk, { label: "pbx" });
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
    const range = rangeToBlocks("14155550150", 60).map(formatBlock);
    const res = await reg(range[0] as string, holder, rangeKey, { label: "range", blocks: range });
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
    expect((await reg("14155550163", holder, ownKey, { label: "own" })).status).toBe(201);
    const { keys } = await lookup("14155550163");
    expect(keys.map((k) => k.x)).toEqual([ownKey.x, rangeKey.x]); // most specific first
    expect((await lookup("14155550210")).keys).toEqual([]);
  });

  it("SPC coverage goes through the operator's SPC_NUMBER_BLOCKS map", async () => {
    const mapped = { ...env, SPC_NUMBER_BLOCKS: JSON.stringify({ "709J": ["1303555"] }) } as Env;
    const valid = await pki.credential("valid"); // TNAuthList has SPC 709J
    expect((await reg("13035550100", valid, await newKey(), { label: "spc", bindings: mapped })).status).toBe(
      201,
    );
    expect(
      (await reg("1303555xxxx", valid, await newKey(), { label: "spc-block", bindings: mapped })).status,
    ).toBe(201);
    const outside = await reg("1303556xxxx", valid, await newKey(), { label: "no", bindings: mapped });
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
    const putA = await reg(tn, owner, a, { label: "a" });
    await reg(tn, owner, b, { label: "b" });
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
    await reg(tn, await pki.credential("valid"), jwk, { label: "short", ttlSeconds: 60 });
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
    await reg(tn, await pki.credential("valid"), await newKey(), { label: "soon", ttlSeconds: 60 });
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
    await reg("16175550042", holder, inside, { label: "inside" });
    await reg("161755500xx", holder, block, { label: "block" });
    const outsider = await issue([{ type: "one", tn: "16175560042" }], "Outsider");
    const outside = await newKey();
    await reg("16175560042", outsider, outside, { label: "outside" });

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
    const write = await reg("12155551212", await pki.credential("valid"), await newKey(), {
      label: "x",
      bindings: narrow,
    });
    expect(write.status).toBe(421);
    expect(await snapshot()).toBe(before);
  });
});

/** A KV binding that counts what `list` reads: the work a lookup does. */
function countingKv(kv: KVNamespace) {
  const stats = { lists: 0, names: 0, gets: 0, getNames: 0, largestGet: 0 };
  const wrapped = {
    get: (key: string | string[], type?: unknown) => {
      stats.gets++;
      const n = Array.isArray(key) ? key.length : 1;
      stats.getNames += n;
      stats.largestGet = Math.max(stats.largestGet, n);
      return (kv.get as (k: unknown, t?: unknown) => Promise<unknown>)(key, type);
    },
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

describe("signed records: storage and answers", () => {
  it("stores the record unchanged in the value, a small summary in the list metadata, and expires the entry with the record", async () => {
    const tn = "12025550161";
    const cred = await pki.credential("valid");
    const { record } = await signedKeyBody(cred, await newKey(), {
      blocks: [tn],
      label: "stored",
      ttlSeconds: 7200,
    });
    const res = await put(tn, cred, { record });
    expect(res.status).toBe(201);
    const { exp, kid } = await res.json<{ exp: number; kid: string }>();
    const listed = (await env.CPS_KV.list({ prefix: `key:11:${tn}:` })).keys;
    expect(listed).toHaveLength(1);
    const entry = listed[0] as KVNamespaceListKey<unknown>;
    // The record with its x5c chain would not fit KV's 1,024-byte metadata; the summary does.
    expect(record.length).toBeGreaterThan(1024);
    expect(entry.metadata).toEqual({ v: 2, keys: [{ kid, exp }] });
    expect(new TextEncoder().encode(JSON.stringify(entry.metadata)).length).toBeLessThan(200);
    expect(entry.expiration).toBe(exp);
    const value = await env.CPS_KV.get<{ v: number; keys: { record: string }[] }>(entry.name, "json");
    expect(value?.v).toBe(2);
    expect(value?.keys.map((k) => k.record)).toEqual([record]);
  });

  it("a record for several blocks is stored under each and served, unchanged, by every lookup that reaches it", async () => {
    const cred = await pki.credential("valid");
    const blocks = ["1202555016x", "12155551212", "1202555017x"];
    const jwk = await newKey();
    const { record } = await signedKeyBody(cred, jwk, { blocks, label: "multi" });
    const res = await put("1202555016x", cred, { record });
    expect(res.status).toBe(201);
    expect((await res.json<{ blocks: string[] }>()).blocks).toEqual(blocks);
    for (const [tn, block] of [
      ["12025550163", "1202555016x"],
      ["12155551212", "12155551212"],
      ["12025550179", "1202555017x"],
    ] as const) {
      const mine = (await lookup(tn)).keys.find((k) => k.x === jwk.x);
      expect(mine, tn).toMatchObject({ block, record });
      expect((await verifyKeyRecord(mine?.record, { validator: await anchors(), tn })).claims.blocks).toEqual(
        blocks,
      );
    }
    const page = await (await call("/keys?prefix=120255501xx")).json<{ keys: Jwk[] }>();
    const served = page.keys.filter((k) => k.x === jwk.x);
    expect(served.map((k) => k.block).sort()).toEqual(["1202555016x", "1202555017x"]);
    for (const k of served) expect(k.record).toBe(record);
  });

  it("entries written before signed records (metadata v1) are still served, without a record", async () => {
    const tn = "16505550135";
    const live = Math.floor(Date.now() / 1000) + 600;
    const old = { v: 1, keys: [{ kid: "u".repeat(43), x: (await newKey()).x, label: "legacy", exp: live }] };
    await env.CPS_KV.put(`key:${tn.length}:${tn}:${"1".repeat(32)}`, JSON.stringify(old), {
      expiration: live,
      metadata: old,
    });
    const { keys } = await lookup(tn);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kid: "u".repeat(43), label: "legacy", block: tn });
    expect(keys[0]?.record).toBeUndefined();
  });

  it("an entry whose metadata is live but whose value has gone is skipped, never a 500", async () => {
    const tn = "16505550136";
    const live = Math.floor(Date.now() / 1000) + 600;
    // Metadata says a live key, the value is not JSON: a torn or foreign entry.
    await env.CPS_KV.put(`key:${tn.length}:${tn}:${"2".repeat(32)}`, "not json", {
      expiration: live,
      metadata: { v: 2, keys: [{ kid: "k".repeat(43), exp: live }] },
    });
    const res = await call(`/keys/${tn}`);
    expect(res.status).toBe(200);
    expect((await res.json<{ keys: Jwk[] }>()).keys).toEqual([]);
  });

  it("a holder's own torn entry is replaced by its next registration, never a 500", async () => {
    const tn = "12025550166";
    const cred = await pki.credential("valid");
    const holder = await hash128Hex(
      `${(await anchorsLeaf(cred)).issuer}\n${(await anchorsLeaf(cred)).subject}`,
    );
    await env.CPS_KV.put(`key:11:${tn}:${holder}`, "{torn", {
      expirationTtl: 600,
      metadata: { v: 2, keys: [{ kid: "k".repeat(43), exp: Math.floor(Date.now() / 1000) + 600 }] },
    });
    const jwk = await newKey();
    expect((await reg(tn, cred, jwk, { label: "fresh" })).status).toBe(201);
    expect((await lookup(tn)).keys.filter((k) => k.block === tn).map((k) => k.x)).toEqual([jwk.x]);
  });

  it("lookups read values with bulk gets of at most 100 names, only for entries with a live key", async () => {
    const tn = "13045550777";
    // 150 holders with a key for the number, 30 whose keys are all dead.
    for (let i = 0; i < 150; i += 25) {
      await Promise.all(
        Array.from({ length: 25 }, (_, j) => seedKey(tn, (i + j).toString(16).padStart(32, "0"))),
      );
    }
    const past = Math.floor(Date.now() / 1000) - 10;
    for (let i = 0; i < 30; i++) {
      const dead = {
        v: 1 as const,
        keys: [{ kid: randomKid(), x: (await newKey()).x, label: "dead", exp: past }],
      };
      await env.CPS_KV.put(`key:11:${tn}:${`d${i}`.padStart(32, "e")}`, JSON.stringify(dead), {
        expirationTtl: 120,
        metadata: { v: 2, keys: [{ kid: dead.keys[0]?.kid, exp: past }] },
      });
    }
    const { kv, stats } = countingKv(env.CPS_KV);
    const res = await call(`/keys/${tn}`, {}, { ...env, CPS_KV: kv } as Env);
    expect(res.status).toBe(200);
    expect((await res.json<{ keys: Jwk[] }>()).keys).toHaveLength(150);
    expect(stats.getNames).toBe(150); // the dead ones were never read
    expect(stats.gets).toBe(2);
    expect(stats.largestGet).toBeLessThanOrEqual(100);
    expect(stats.lists + stats.gets).toBeLessThan(50); // far below KV's 1,000 operations a request
  });
});

describe("issue 15: a key registered after a cached lookup is visible at once, by number and by prefix", () => {
  it("registers, looks up (cached), registers a second key, sees both through GET /keys/{tn} and GET /keys?prefix=", async () => {
    const tn = "12025550171";
    const cred = await pki.credential("valid");
    const first = await newKey();
    expect((await reg(tn, cred, first, { label: "first" })).status).toBe(201);
    // Both answers are now cached in the colo.
    for (const path of [`/keys/${tn}`, "/keys?prefix=1202555xxxx", "/keys?prefix=120255501xx"]) {
      expect((await call(path)).headers.get("X-Directory-Cache"), path).toBe("MISS");
      const again = await call(path);
      expect(again.headers.get("X-Directory-Cache"), path).toBe("HIT");
      expect(
        (await again.json<{ keys: Jwk[] }>()).keys.map((k) => k.x),
        path,
      ).toContain(first.x);
    }
    const second = await newKey();
    expect((await reg(tn, cred, second, { label: "second" })).status).toBe(201);
    for (const path of [`/keys/${tn}`, "/keys?prefix=1202555xxxx", "/keys?prefix=120255501xx"]) {
      const res = await call(path);
      expect(res.headers.get("X-Directory-Cache"), path).toBe("MISS");
      const xs = (await res.json<{ keys: Jwk[] }>()).keys.map((k) => k.x);
      expect(xs, path).toContain(first.x);
      expect(xs, path).toContain(second.x);
    }
    // And a deletion likewise.
    const kid = await calculateJwkThumbprint({ kty: "OKP", crv: "X25519", x: first.x }, "sha256");
    for (const path of [`/keys/${tn}`, "/keys?prefix=1202555xxxx"]) await call(path);
    expect((await del(`${tn}?kid=${kid}`, cred)).status).toBe(200);
    for (const path of [`/keys/${tn}`, "/keys?prefix=1202555xxxx"]) {
      const xs = (await (await call(path)).json<{ keys: Jwk[] }>()).keys.map((k) => k.x);
      expect(xs, path).not.toContain(first.x);
      expect(xs, path).toContain(second.x);
    }
  });
});

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
    expect((await reg(tn, cred, jwk, { label: "fresh" })).status).toBe(201);
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
    const res = await reg("120255501xx", await pki.credential("valid"), jwk, { label: "pbx-fresh" });
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
    // A record for a 100-number block and one number: the one number's lookup first (smallest first),
    // then as many numbers as stay within 100 in all (none of the block's here).
    const mixed = purgeKeysFor(origin, [parseBlock("120255501xx"), parseBlock("12155551212")], 4);
    expect(mixed.filter((k) => k.includes("/keys/"))).toEqual([`${origin}/keys/12155551212`]);
    expect(mixed).toContain(`${origin}/keys?prefix=120255501xx`);
    expect(mixed).toContain(`${origin}/keys?prefix=1215555121x`);
    // A 10,000-number block: no per-number lookups (too many to name), its own prefetch page only.
    expect(purgeKeysFor(origin, [parseBlock("1202555xxxx")], 4)).toEqual([
      `${origin}/keys?prefix=1202555xxxx`,
    ]);
  });
});
