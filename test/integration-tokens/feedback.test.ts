/**
 * Feedback on bogus PASSporTs (RFC 8816 §7.5; docs/tokens.md "Feedback"), in workerd with tokens
 * enforced and multi-use tokens (TOKEN_MAX_USES 10), so a token has uses left after the store a
 * report is about. The attacks first: a forged report (a secret that does not open the blob), a
 * report of a genuine PASSporT, of a blob whose tag no store sent, a replayed report: each changes
 * nothing in the paying token's ledger shard and leaves the token usable. A report that proves a blob
 * bogus makes the paying token's remaining uses refused (403 TOKEN_REVOKED), and nothing else.
 */

import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ledgerShard } from "../../src/durable-objects/token-ledger.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import {
  encodeEnvelope,
  envelopeInfo,
  generateRecipientKeyPair,
  openPassportForReport,
  type RecipientKeyPair,
  sealPassportWithTag,
} from "../../src/stir/envelope.js";
import { encodeFeedbackTag, FEEDBACK_TAG_HEADER, feedbackBody } from "../../src/stir/feedback.js";
import { type StorageToken, tokenIdOf } from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { TOKEN_LEDGER_SCHEMA } from "../../src/storage/layout.js";
import { tokenLedgerShard } from "../../src/storage/objects.js";
import { badSignature, nowSeconds, rawJws, shakenPassport, x5uOf } from "../helpers/atis.js";
import { BASE, directToken, issuerPrivateKey, liveCount, pki, store, tokenHeaders } from "./helpers.js";

/** A calling number inside the `valid` test credential's TNAuthList (range 12025550100 + 100). */
const ORIG = "12025550123";
let n = 0;
/** A fresh called number per store, so per-number limits never interfere. */
const freshTn = () => `1303555${String(2000 + n++).padStart(4, "0")}`;

interface PaidToken {
  token: StorageToken;
  privateKey: CryptoKey;
  shard: number;
  /** base64url of the token id, as the ledger keys it. */
  id: string;
}

let current: CryptoKey;
beforeAll(async () => {
  current = await issuerPrivateKey("test-current");
});

async function newToken(): Promise<PaidToken> {
  const { token, privateKey } = await directToken("test-current", current);
  const tokenId = await tokenIdOf(token.kTempSpki);
  return { token, privateKey, shard: ledgerShard(tokenId), id: encodeBase64url(tokenId) };
}

interface Stored {
  tn: string;
  callee: RecipientKeyPair;
  blob: Uint8Array;
  tag: Uint8Array;
  status: number;
  code: unknown;
  id: unknown;
}

/** An AS's store: `passport` sealed to a fresh callee key for `tn`, paid with `paid`, tag sent unless `tag: false`. */
async function storeSealed(
  paid: PaidToken,
  passport: string,
  options: { tn?: string; tag?: boolean | string } = {},
): Promise<Stored> {
  const tn = options.tn ?? freshTn();
  const callee = await generateRecipientKeyPair();
  const sealed = await sealPassportWithTag(callee.publicKey, canonicalTn(tn), passport);
  const text = encodeEnvelope(sealed.blob);
  const headers: Record<string, string> = await tokenHeaders(paid.token, paid.privateKey, tn, text);
  if (options.tag !== false) {
    headers[FEEDBACK_TAG_HEADER] =
      typeof options.tag === "string" ? options.tag : encodeFeedbackTag(sealed.tag);
  }
  const res = await store(tn, text, headers);
  return {
    tn,
    callee,
    blob: sealed.blob,
    tag: sealed.tag,
    status: res.status,
    code: res.body.code,
    id: res.body.id,
  };
}

/** The callee's report of a blob it opened: its shared secret, or `secret` instead. */
async function report(s: Pick<Stored, "tn" | "callee" | "blob">, secret?: Uint8Array) {
  const opened = await openPassportForReport(s.callee.keyPair, canonicalTn(s.tn), s.blob);
  return postFeedback(feedbackBody(canonicalTn(s.tn), s.blob, secret ?? opened.secret));
}

async function postFeedback(body: string, contentType = "application/json") {
  const res = await SELF.fetch(`${BASE}/feedback`, {
    method: "POST",
    headers: { "Content-Type": contentType },
    body,
  });
  const type = res.headers.get("content-type") ?? "";
  return { status: res.status, type, body: await res.json<Record<string, unknown>>() };
}

/**
 * Every row of the token's ledger shard that concerns tokens: what a report could change. The shard
 * also holds other tests' tokens (64 shards); `tags` lists this token's rows only.
 */
async function shardState(paid: PaidToken): Promise<Record<string, unknown[]>> {
  return runInDurableObject(tokenLedgerShard(env, paid.shard), (_obj, state) => {
    const sql = state.storage.sql;
    const all = (q: string) => sql.exec(q).toArray();
    return {
      tokens: all("SELECT * FROM tokens ORDER BY token"),
      spends: all("SELECT * FROM spends ORDER BY receipt"),
      tags: sql.exec("SELECT * FROM tags WHERE token = ? ORDER BY tag", paid.id).toArray(),
      allTags: all("SELECT * FROM tags ORDER BY tag, token"),
      revoked: all("SELECT * FROM revoked ORDER BY token"),
    };
  });
}

/** Whether `paid` can still pay for a store (a genuine PASSporT, to a new number). */
async function canStore(paid: PaidToken): Promise<number> {
  const tn = freshTn();
  const passport = await shakenPassport(await pki.credential("valid"), { orig: ORIG, dest: tn });
  const s = await storeSealed(paid, passport, { tn });
  return s.status;
}

async function genuine(tn: string): Promise<string> {
  return shakenPassport(await pki.credential("valid"), { orig: ORIG, dest: tn });
}

describe("attacks: a report that is not a proof changes nothing", () => {
  it("a forged report (a secret that does not open the blob): 403 FEEDBACK_SECRET_INVALID", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, badSignature(await genuine(tn)), { tn });
    expect(s.status).toBe(201);
    const before = await shardState(paid);
    const res = await report(s, crypto.getRandomValues(new Uint8Array(32)));
    expect(res.status).toBe(403);
    expect(res.type).toContain("application/problem+json");
    expect(res.body.code).toBe("FEEDBACK_SECRET_INVALID");
    expect(await shardState(paid)).toEqual(before);
    expect(await canStore(paid)).toBe(201);
  });

  it("the right secret under another number: 403 FEEDBACK_SECRET_INVALID (the HPKE info binds the number)", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, badSignature(await genuine(tn)), { tn });
    const opened = await openPassportForReport(s.callee.keyPair, canonicalTn(tn), s.blob);
    const before = await shardState(paid);
    const res = await postFeedback(feedbackBody(canonicalTn(freshTn()), s.blob, opened.secret));
    expect(res.body.code).toBe("FEEDBACK_SECRET_INVALID");
    expect(await shardState(paid)).toEqual(before);
    expect(await canStore(paid)).toBe(201);
  });

  it("a report of a genuine PASSporT: 422 FEEDBACK_NOT_BOGUS, the token keeps its uses", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, await genuine(tn), { tn });
    expect(s.status).toBe(201);
    const before = await shardState(paid);
    const res = await report(s);
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("FEEDBACK_NOT_BOGUS");
    expect(await shardState(paid)).toEqual(before);
    expect(await canStore(paid)).toBe(201);
  });

  it("a bogus blob stored without a tag: 404 FEEDBACK_UNKNOWN (the limit of feedback: docs/tokens.md)", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, badSignature(await genuine(tn)), { tn, tag: false });
    expect(s.status).toBe(201);
    const before = await shardState(paid);
    const res = await report(s);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("FEEDBACK_UNKNOWN");
    expect(await shardState(paid)).toEqual(before);
    expect(await canStore(paid)).toBe(201);
  });

  it("a bogus blob nobody stored: 404 FEEDBACK_UNKNOWN", async () => {
    const tn = freshTn();
    const callee = await generateRecipientKeyPair();
    const sealed = await sealPassportWithTag(callee.publicKey, canonicalTn(tn), "not a passport");
    const res = await report({ tn, callee, blob: sealed.blob });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("FEEDBACK_UNKNOWN");
  });

  it("a bogus blob whose store sent another blob's tag cannot revoke that other store's token", async () => {
    // The attacker pays with its own token and sends the tag of an honest store, which it cannot know
    // (only that blob's sender and recipient can derive it); the test gives it anyway, the worst case.
    // The attacker's blob, reported, derives its own tag, which no store sent; the honest blob,
    // reported, is genuine. The honest token is untouched either way.
    const honest = await newToken();
    const tn = freshTn();
    const h = await storeSealed(honest, await genuine(tn), { tn });
    expect(h.status).toBe(201);
    const honestBefore = await shardState(honest);
    const attacker = await newToken();
    const tn2 = freshTn();
    const a = await storeSealed(attacker, badSignature(await genuine(tn2)), {
      tn: tn2,
      tag: encodeFeedbackTag(h.tag),
    });
    expect(a.status).toBe(201);
    expect((await report(a)).body.code).toBe("FEEDBACK_UNKNOWN");
    // And the honest blob, reported, is genuine.
    expect((await report(h)).body.code).toBe("FEEDBACK_NOT_BOGUS");
    expect(await shardState(honest)).toEqual(honestBefore);
    expect(await canStore(honest)).toBe(201);
  });
});

describe("a report that proves a blob bogus revokes the token that paid for it", () => {
  type Bogus = [string, string, (tn: string) => Promise<string>];
  const bogus: Bogus[] = [
    ["a signature that does not verify", "SIGNATURE", async (tn) => badSignature(await genuine(tn))],
    [
      "a dest that does not name the called number (re-sealed, RFC 8816 §7.4)",
      "DEST_MISMATCH",
      async () => genuine("12025550199"),
    ],
    [
      "an iat stale at the store time",
      "STALE",
      async (tn) =>
        shakenPassport(await pki.credential("valid"), { orig: ORIG, dest: tn, iat: nowSeconds() - 600 }),
    ],
    [
      "a signer chained to another root",
      "UNTRUSTED",
      async (tn) =>
        shakenPassport(await pki.credential("wrongAnchor"), {
          orig: ORIG,
          dest: tn,
          x5u: x5uOf("wrongAnchor"),
        }),
    ],
    [
      "an orig the signer's certificate does not cover",
      "NOT_AUTHORISED",
      async (tn) => shakenPassport(await pki.credential("valid"), { orig: "19995550000", dest: tn }),
    ],
    [
      "alg none",
      "MALFORMED",
      async (tn) =>
        rawJws(
          { alg: "none", typ: "passport", ppt: "shaken", x5u: x5uOf("valid") },
          { attest: "A", dest: { tn: [tn] }, iat: nowSeconds(), orig: { tn: ORIG }, origid: "x" },
        ),
    ],
    ["not a PASSporT at all", "MALFORMED", async () => "hello"],
  ];

  it.each(bogus)(
    "%s: 200 revoked (%s), the token's further stores 403 TOKEN_REVOKED",
    async (_n, reason, make) => {
      const paid = await newToken();
      const tn = freshTn();
      const s = await storeSealed(paid, await make(tn), { tn });
      expect(s.status).toBe(201);
      const res = await report(s);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ revoked: 1, reason });

      // The remaining uses (TOKEN_MAX_USES 10, one spent) are refused, and nothing is stored.
      const tn2 = freshTn();
      const again = await storeSealed(paid, await genuine(tn2), { tn: tn2 });
      expect(again.status).toBe(403);
      expect(again.code).toBe("TOKEN_REVOKED");
      expect(await liveCount(tn2)).toBe(0);
      // Another token is unaffected.
      expect(await canStore(await newToken())).toBe(201);
    },
  );

  it("a refused store reports TOKEN_REVOKED as problem+json and spends nothing", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, badSignature(await genuine(tn)), { tn });
    expect((await report(s)).status).toBe(200);
    const before = await shardState(paid);
    const tn2 = freshTn();
    const callee = await generateRecipientKeyPair();
    const sealed = await sealPassportWithTag(callee.publicKey, canonicalTn(tn2), await genuine(tn2));
    const text = encodeEnvelope(sealed.blob);
    const res = await store(tn2, text, await tokenHeaders(paid.token, paid.privateKey, tn2, text));
    expect(res.status).toBe(403);
    expect(res.body.code).toBe("TOKEN_REVOKED");
    expect(await shardState(paid)).toEqual(before);
  });

  it("a replayed report changes nothing: 200 with nothing newly revoked, the shard unchanged", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, badSignature(await genuine(tn)), { tn });
    expect((await report(s)).body).toMatchObject({ revoked: 1 });
    const before = await shardState(paid);
    const replay = await report(s);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ revoked: 0, already: 1 });
    expect(await shardState(paid)).toEqual(before);
  });

  it("a retried store (the identical request) keeps one tag row, and the report still finds it", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const callee = await generateRecipientKeyPair();
    const sealed = await sealPassportWithTag(
      callee.publicKey,
      canonicalTn(tn),
      badSignature(await genuine(tn)),
    );
    const text = encodeEnvelope(sealed.blob);
    const headers = {
      ...(await tokenHeaders(paid.token, paid.privateKey, tn, text)),
      [FEEDBACK_TAG_HEADER]: encodeFeedbackTag(sealed.tag),
    };
    expect((await store(tn, text, headers)).status).toBe(201);
    expect((await store(tn, text, headers)).status).toBe(201);
    expect((await shardState(paid)).tags).toHaveLength(1);
    expect((await report({ tn, callee, blob: sealed.blob })).body).toMatchObject({ revoked: 1 });
  });

  it("the ledger keeps the tag beside the token only: no blob, blob id or number (docs/design.md invariant 3)", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const s = await storeSealed(paid, await genuine(tn), { tn });
    const state = await shardState(paid);
    const text = JSON.stringify(state);
    expect(text).not.toContain(tn);
    expect(typeof s.id).toBe("string");
    expect(text).not.toContain(s.id as string);
    expect(text).not.toContain(encodeEnvelope(s.blob).slice(0, 32));
    expect(state.tags).toHaveLength(1);
    expect(Object.keys(state.tags?.[0] as object).sort()).toEqual(["expires_at", "spent_at", "tag", "token"]);
  });
});

describe("the ledger schema change is safe for objects made before it", () => {
  it("an object without the feedback tables keeps its rows, gains the tables empty, and counts with tags", async () => {
    const stub = env.TOKEN_LEDGER.getByName("token-shard-migration-test");
    await runInDurableObject(stub, async (instance, state) => {
      const sql = state.storage.sql;
      // The object as an older version left it: no tags, revoked or report_rate, a token with a use.
      for (const t of ["tags", "revoked", "report_rate"]) sql.exec(`DROP TABLE IF EXISTS ${t}`);
      sql.exec("INSERT INTO tokens (token, uses, expires_at) VALUES ('old', 1, ?)", Date.now() + 3_600_000);
      sql.exec("INSERT INTO spends (receipt, pair, at) VALUES ('r-old', 'p-old', ?)", Date.now());
      // What the constructor runs on the object's next start.
      sql.exec(TOKEN_LEDGER_SCHEMA);
      const count = (t: string) => Number(sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t}`).one().n);
      expect([
        count("tokens"),
        count("spends"),
        count("tags"),
        count("revoked"),
        count("report_rate"),
      ]).toEqual([1, 1, 0, 0, 0]);
      const tag = encodeBase64url(new Uint8Array(32).fill(1));
      expect(await instance.spend("old", "p-new", Date.now() + 3_600_000, "r-new", tag)).toEqual({
        ok: true,
        uses: 2,
      });
      expect(await instance.feedbackLookup(tag)).toEqual([
        expect.objectContaining({ token: "old", revoked: false }),
      ]);
    });
  });
});

describe("bad input: 4xx problem, nothing changes", () => {
  it("a malformed CPS-Feedback-Tag on a store: 400 FEEDBACK_TAG_MALFORMED, not stored, not counted", async () => {
    for (const tag of ["", "short", `${"A".repeat(42)}B`, "!".repeat(43), "A".repeat(44)]) {
      const paid = await newToken();
      const tn = freshTn();
      const before = await shardState(paid);
      const s = await storeSealed(paid, await genuine(tn), { tn, tag });
      expect(s.status, tag).toBe(400);
      expect(s.code, tag).toBe("FEEDBACK_TAG_MALFORMED");
      expect(await liveCount(tn)).toBe(0);
      expect(await shardState(paid)).toEqual(before);
    }
  });

  const tn = "13035559999";
  const blobText = "A".repeat(1430);
  const secret = encodeBase64url(new Uint8Array(32));
  const cases: [string, string, string, number, string][] = [
    ["not JSON", "application/json", "{", 400, "INVALID_BODY"],
    ["a JSON array", "application/json", "[]", 400, "INVALID_BODY"],
    ["no secret", "application/json", JSON.stringify({ tn, blob: blobText }), 400, "FEEDBACK_INVALID"],
    [
      "a 31-byte secret",
      "application/json",
      JSON.stringify({ tn, blob: blobText, secret: encodeBase64url(new Uint8Array(31)) }),
      400,
      "FEEDBACK_INVALID",
    ],
    ["a short blob", "application/json", JSON.stringify({ tn, blob: "AAAA", secret }), 400, "BLOB_SIZE"],
    [
      "tn not a number",
      "application/json",
      JSON.stringify({ tn: "abc", blob: blobText, secret }),
      400,
      "INVALID_TN",
    ],
    [
      "tn a number type",
      "application/json",
      JSON.stringify({ tn: 1, blob: blobText, secret }),
      400,
      "FEEDBACK_INVALID",
    ],
    [
      "text/plain",
      "text/plain",
      JSON.stringify({ tn, blob: blobText, secret }),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    ],
    [
      "a body over 4 KiB",
      "application/json",
      JSON.stringify({ tn, blob: blobText, secret, x: "x".repeat(5000) }),
      413,
      "BODY_TOO_LARGE",
    ],
    [
      "a blob of zeros (does not open)",
      "application/json",
      JSON.stringify({ tn, blob: blobText, secret }),
      403,
      "FEEDBACK_SECRET_INVALID",
    ],
  ];
  it.each(cases)("%s -> %i %s", async (_name, type, body, status, code) => {
    const res = await postFeedback(body, type);
    expect(res.status).toBe(status);
    expect(res.type).toContain("application/problem+json");
    expect(res.body.code).toBe(code);
  });

  it("random bodies, shaped and not: always a 4xx problem, never a 5xx (docs/design.md invariant 7)", async () => {
    const b64 = fc.string({
      unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    });
    const field = fc.oneof(fc.string(), b64, fc.integer(), fc.constant(null), fc.array(fc.string()));
    const body = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ tn: field, blob: field, secret: field }, { requiredKeys: [] }),
      fc.record({
        tn: fc.constantFrom("13035550101", "+1 303 555 0101", "x"),
        blob: b64.map((t) => `${t}${"A".repeat(1430)}`.slice(0, 1430)),
        secret: b64.map((t) => `${t}${"A".repeat(43)}`.slice(0, 43)),
      }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await postFeedback(typeof b === "string" ? b : JSON.stringify(b));
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.type).toContain("application/problem+json");
      }),
      { numRuns: 150 },
    );
  });

  it("GET /feedback: 405", async () => {
    const res = await SELF.fetch(`${BASE}/feedback`);
    expect(res.status).toBe(405);
    await res.body?.cancel();
  });

  it("reports for one number are rate-limited: 429 FEEDBACK_RATE_LIMITED with Retry-After", async () => {
    const tn = freshTn();
    const callee = await generateRecipientKeyPair();
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 11; i++) {
      const sealed = await sealPassportWithTag(callee.publicKey, canonicalTn(tn), "x");
      const opened = await openPassportForReport(callee.keyPair, canonicalTn(tn), sealed.blob);
      const res = await SELF.fetch(`${BASE}/feedback`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: feedbackBody(canonicalTn(tn), sealed.blob, opened.secret),
      });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get("retry-after");
      await res.body?.cancel();
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(404));
    expect(statuses[10]).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});

/**
 * The attacker of the review's first finding: a KEM whose encap "yields" a shared secret it learnt by
 * opening a genuine blob, with a random `enc`. With a given secret the HPKE key schedule depends on the
 * secret and info only, so what it seals opens under that secret like the genuine blob does.
 */
class KnownSecretKem extends DhkemX25519HkdfSha256 {
  readonly #secret: Uint8Array;
  constructor(secret: Uint8Array) {
    super();
    this.#secret = secret;
  }
  override async encap(): Promise<{ sharedSecret: ArrayBuffer; enc: ArrayBuffer }> {
    return {
      sharedSecret: this.#secret.slice().buffer as ArrayBuffer,
      enc: crypto.getRandomValues(new Uint8Array(32)).buffer as ArrayBuffer,
    };
  }
}

/** A blob B' of `plaintext` sealed under `secret` (a genuine blob's) with a fresh random `enc`. */
async function resealUnderSecret(secret: Uint8Array, tn: string, plaintext: string): Promise<Uint8Array> {
  const suite = new CipherSuite({
    kem: new KnownSecretKem(secret),
    kdf: new HkdfSha256(),
    aead: new Aes128Gcm(),
  });
  const bytes = new TextEncoder().encode(plaintext);
  const padded = new Uint8Array(1024);
  new DataView(padded.buffer).setUint16(0, bytes.length);
  padded.set(bytes, 2);
  const { enc, ct } = await suite.seal(
    {
      recipientPublicKey: (await generateRecipientKeyPair()).keyPair.publicKey,
      info: envelopeInfo(canonicalTn(tn)),
    },
    padded,
  );
  const blob = new Uint8Array(enc.byteLength + ct.byteLength);
  blob.set(new Uint8Array(enc), 0);
  blob.set(new Uint8Array(ct), enc.byteLength);
  return blob;
}

/** A fresh token whose ledger shard differs from every shard in `taken`. */
async function tokenOutside(taken: readonly number[]): Promise<PaidToken> {
  for (;;) {
    const t = await newToken();
    if (!taken.includes(t.shard)) return t;
  }
}

describe("attacks from the feedback review: a report cannot reach further than the blob it proves", () => {
  it("a callee re-sealing junk under a genuine blob's shared secret (random enc) cannot revoke the honest token: 404 FEEDBACK_UNKNOWN", async () => {
    const honest = await newToken();
    const tn = freshTn();
    const h = await storeSealed(honest, await genuine(tn), { tn });
    expect(h.status).toBe(201);
    const before = await shardState(honest);
    // The callee opened the genuine blob, so it holds the blob's secret; B' opens under it too.
    const { secret } = await openPassportForReport(h.callee.keyPair, canonicalTn(tn), h.blob);
    const forged = await resealUnderSecret(secret, tn, "hello");
    expect(forged.length).toBe(h.blob.length);
    const res = await postFeedback(feedbackBody(canonicalTn(tn), forged, secret));
    expect(res.status).toBe(404);
    expect(res.type).toContain("application/problem+json");
    expect(res.body.code).toBe("FEEDBACK_UNKNOWN");
    expect(await shardState(honest)).toEqual(before);
    expect(await canStore(honest)).toBe(201);
  });

  it("a retried store carrying other CPS-Feedback-Tag values adds no tag row: the first store's tag stays alone", async () => {
    const paid = await newToken();
    const tn = freshTn();
    const callee = await generateRecipientKeyPair();
    const sealed = await sealPassportWithTag(callee.publicKey, canonicalTn(tn), await genuine(tn));
    const text = encodeEnvelope(sealed.blob);
    const headers = await tokenHeaders(paid.token, paid.privateKey, tn, text);
    const first = encodeFeedbackTag(sealed.tag);
    expect((await store(tn, text, { ...headers, [FEEDBACK_TAG_HEADER]: first })).status).toBe(201);
    const before = await shardState(paid);
    for (let i = 0; i < 5; i++) {
      const other = encodeFeedbackTag(crypto.getRandomValues(new Uint8Array(32)));
      expect((await store(tn, text, { ...headers, [FEEDBACK_TAG_HEADER]: other })).status).toBe(201);
    }
    // A retry without a tag adds nothing either.
    expect((await store(tn, text, headers)).status).toBe(201);
    const after = await shardState(paid);
    expect(after.tags).toEqual(before.tags);
    expect(after.tags).toEqual([expect.objectContaining({ tag: first, token: paid.id })]);
  });

  it("a shard keeps one row per tag (the earliest): one tag sent with many tokens is one row, one lookup answer", async () => {
    const stub = env.TOKEN_LEDGER.getByName("token-shard-one-row-per-tag-test");
    await runInDurableObject(stub, async (instance, state) => {
      const tag = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
      const expires = Date.now() + 3_600_000;
      for (let i = 0; i < 20; i++) {
        expect(await instance.spend(`tok-${i}`, `pair-${i}`, expires, `receipt-${i}`, tag)).toMatchObject({
          ok: true,
        });
      }
      const rows = state.storage.sql.exec("SELECT token FROM tags WHERE tag = ?", tag).toArray();
      expect(rows).toEqual([{ token: "tok-0" }]);
      expect(await instance.feedbackLookup(tag)).toEqual([
        expect.objectContaining({ token: "tok-0", revoked: false }),
      ]);
      // Rows an older version left (several per tag): the lookup still answers the earliest one only.
      state.storage.sql.exec(
        "INSERT INTO tags (tag, token, spent_at, expires_at) VALUES (?, 'old-a', 5, ?), (?, 'old-b', 3, ?)",
        tag,
        expires,
        tag,
        expires,
      );
      expect(await instance.feedbackLookup(tag)).toEqual([{ token: "old-b", spentAt: 3, revoked: false }]);
    });
  });

  it("one tag sent with stores paid by tokens in other shards: one report judges once and revokes each", async () => {
    const a = await newToken();
    const tn = freshTn();
    const s = await storeSealed(a, badSignature(await genuine(tn)), { tn });
    expect(s.status).toBe(201);
    // The bogus blob's sender attaches the same tag to stores paid with two more tokens.
    const b = await tokenOutside([a.shard]);
    const c = await tokenOutside([a.shard, b.shard]);
    for (const paid of [b, c]) {
      const tn2 = freshTn();
      const other = await storeSealed(paid, await genuine(tn2), { tn: tn2, tag: encodeFeedbackTag(s.tag) });
      expect(other.status).toBe(201);
    }
    const res = await report(s);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ revoked: 3, already: 0, reason: "SIGNATURE" });
    for (const paid of [a, b, c]) expect(await canStore(paid)).toBe(403);
  });

  it("the alarm forgets report_rate rows past the window: a number's hash lives about one window", async () => {
    const stub = env.TOKEN_LEDGER.getByName("feedback-rate-alarm-test");
    await runInDurableObject(stub, async (instance, state) => {
      expect(await instance.admitReport([{ key: "number-hash", limit: 10 }])).toEqual({ ok: true });
      const alarm = await state.storage.getAlarm();
      expect(alarm).not.toBeNull();
      expect(alarm as number).toBeLessThanOrEqual(Date.now() + 60_000);
      // As if the window had passed since the report.
      state.storage.sql.exec("UPDATE report_rate SET at = at - 61000");
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await runInDurableObject(stub, (_instance, state) => {
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM report_rate").one().n).toBe(0);
    });
  });
});
