/**
 * Client library: the AS (RFC 8816 §8.1), the VS (§8.2) and the gateways (§8.3) against an in-memory
 * CPS (client-fake-cps.ts). The same flows run against the real server in test/e2e/use-cases.test.ts.
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { CpsClient, CpsUnavailableError } from "../../src/client/cps-client.js";
import { Discovery, keysFromJwkSet } from "../../src/client/discovery.js";
import { StirClientError, StirOobError } from "../../src/client/errors.js";
import { Gateway, ReverseGateway } from "../../src/client/gateway.js";
import { type StoreTokenSource, walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { CpsError } from "../../src/errors.js";
import { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "../../src/stir/envelope.js";
import { parseIdentityHeader } from "../../src/stir/identity-header.js";
import { jwkThumbprint } from "../../src/stir/key-records.js";
import { createPassport, toCompactForm } from "../../src/stir/passport.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { x5uUrl as x5u, x5uMap } from "../helpers/x5u.js";
import { fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = "+2 222 555 2222";
const ALICE_TN = canonicalTn(ALICE);
const BOB_TN = canonicalTn(BOB);
const MALLORY = "+1 111 555 9999";

let pki: TestPki;
let otherPki: TestPki;
/** The callees' credential: covers Bob and Carol, signs their key records. */
let calleeCred: TestCredential;
const CAROL = "+3 333 555 3333";
const { signing: credential, resolveCertificate } = x5uMap();

async function calleeKey(kid: string): Promise<{ key: CalleeKey; publicKey: Uint8Array }> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  return { key: { kid, privateKey: keyPair }, publicKey };
}

function setup(
  options: {
    discoveryTtl?: number;
    keysMaxAge?: number;
    now?: () => number;
    lookupOpenDigits?: number;
    pageSize?: number;
  } = {},
) {
  // Every key the fake directory serves carries a record signed by the callees' credential.
  const cps = fakeCps({ ...options, signer: calleeCred });
  const discovery = new Discovery({
    bootstrap: cps.base,
    fetch: cps.fetch,
    ...(options.now ? { now: options.now } : {}),
    ...(options.lookupOpenDigits === undefined ? {} : { lookupOpenDigits: options.lookupOpenDigits }),
  });
  const as = new AuthenticationService({
    credential: credential("alice", pki.valid),
    trustAnchors: [pki.root.certificate],
    discovery,
    fetch: cps.fetch,
  });
  const vsFor = (keys: CalleeKey[], extra: { now?: () => number } = {}) =>
    new VerificationService({
      keys,
      trustAnchors: [pki.root.certificate],
      resolveCertificate,
      cps: cps.base,
      fetch: cps.fetch,
      ...extra,
    });
  return { cps, discovery, as, vsFor };
}

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE_TN }] });
  otherPki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE_TN }] });
  calleeCred = await pki.issue({
    tnAuthList: [
      { type: "one", tn: BOB_TN },
      { type: "one", tn: canonicalTn(CAROL) },
    ],
    subject: "callees",
  });
});

describe("AS (RFC 8816 §8.1)", () => {
  it("places a call: one sealed copy per destination key, stored, then proceed, with per-step timings", async () => {
    const { cps, as } = setup();
    const [k1, k2] = [await calleeKey("bob-phone"), await calleeKey("bob-desk")];
    await cps.registerKey(BOB, "bob-phone", k1.publicKey);
    await cps.registerKey(BOB, "bob-desk", k2.publicKey);
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.proceed).toBe(true);
    // kid is the RFC 7638 thumbprint of the record's key (computed, not the directory's "kid").
    const kids = [await jwkThumbprint(k1.publicKey), await jwkThumbprint(k2.publicKey)];
    expect(call.stored.map((s) => s.kid).sort()).toEqual(kids.sort());
    expect(call.skipped).toEqual([]);
    expect(cps.stored.get(BOB_TN)).toHaveLength(2);
    for (const key of ["authorize", "discover", "sign", "seal", "tokens", "store", "total"] as const) {
      expect(call.timings[key]).toBeGreaterThanOrEqual(0);
    }
    // The two copies differ (fresh HPKE enc each) but carry the same full-form PASSporT.
    const [a, b] = cps.stored.get(BOB_TN) ?? [];
    expect(a?.blob).not.toBe(b?.blob);
    expect(call.passport.split(".")).toHaveLength(3);
    expect(call.passport.split(".")[1]).not.toBe("");
  });

  it("step 1: refuses to sign for a number its certificate does not cover, and stores nothing", async () => {
    const { cps, as } = setup();
    await cps.registerKey(BOB, "k", (await calleeKey("k")).publicKey);
    await expect(as.placeCall({ from: MALLORY, to: BOB })).rejects.toMatchObject({
      code: "NOT_AUTHORITATIVE",
    });
    expect(cps.log.filter((l) => l.startsWith("POST"))).toEqual([]);
  });

  it("step 3: no key for the destination is NO_KEYS, nothing stored", async () => {
    const { cps, as } = setup();
    const err = await as.placeCall({ from: ALICE, to: BOB }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StirClientError);
    expect((err as StirClientError).code).toBe("NO_KEYS");
    expect(cps.stored.size).toBe(0);
  });

  it("step 3: discovery and keys are cached per their TTLs (ttl 300 s, max-age 60 s)", async () => {
    let nowMs = 1_000_000;
    const { cps, as } = setup({ discoveryTtl: 300, keysMaxAge: 60, now: () => nowMs });
    await cps.registerKey(BOB, "k", (await calleeKey("k")).publicKey);
    const reads = () => cps.log.filter((l) => l.startsWith("GET"));
    await as.placeCall({ from: ALICE, to: BOB });
    // §11: by prefix, two digits open by default: the directory learns the block, not the number.
    const lookup = "GET /keys?prefix=222255522xx";
    expect(reads()).toEqual(["GET /.well-known/stir-oob", lookup]);
    await as.placeCall({ from: ALICE, to: BOB });
    expect(reads()).toHaveLength(2);
    nowMs += 61_000; // keys stale, discovery still fresh
    await as.placeCall({ from: ALICE, to: BOB });
    expect(reads()).toEqual(["GET /.well-known/stir-oob", lookup, lookup]);
    nowMs += 300_000; // both stale
    await as.placeCall({ from: ALICE, to: BOB });
    expect(reads()).toHaveLength(5);
  });

  it("spends one token per store and asks the wallet to have enough ahead of the stores", async () => {
    const { cps, discovery } = setup();
    await cps.registerKey(BOB, "a", (await calleeKey("a")).publicKey);
    await cps.registerKey(BOB, "b", (await calleeKey("b")).publicKey);
    let n = 0;
    const tokens: StoreTokenSource = {
      prefetch: vi.fn(async () => {}),
      headersForStore: vi.fn(async () => ({ "CPS-Token": `t${++n}`, "CPS-Token-Signature": "s" })),
    };
    const as = new AuthenticationService({
      credential: credential("alice", pki.valid),
      trustAnchors: [pki.root.certificate],
      discovery,
      tokens,
      fetch: cps.fetch,
    });
    await as.placeCall({ from: ALICE, to: BOB });
    expect(tokens.prefetch).toHaveBeenCalledWith(cps.base, 2);
    expect(tokens.headersForStore).toHaveBeenCalledTimes(2);
    expect(cps.storeHeaders.map((h) => h.get("cps-token")).sort()).toEqual(["t1", "t2"]);
  });

  it("a wallet with no tokens and no credential says NO_CREDENTIAL, and nothing is stored", async () => {
    const { cps, discovery } = setup();
    await cps.registerKey(BOB, "a", (await calleeKey("a")).publicKey);
    const as = new AuthenticationService({
      credential: credential("alice", pki.valid),
      trustAnchors: [pki.root.certificate],
      discovery,
      tokens: walletTokens(new TokenWallet({ cpsUrl: cps.base, fetch: cps.fetch })),
      fetch: cps.fetch,
    });
    const err = await as.placeCall({ from: ALICE, to: BOB }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StirOobError);
    expect(err).toMatchObject({ name: "StirClientError", code: "NO_CREDENTIAL" });
    expect(cps.log.filter((l) => l.startsWith("POST"))).toEqual([]);
  });

  it("a failed store is STORE_FAILED (the call must not rely on OOB), with the stores that succeeded", async () => {
    const { cps, as } = setup();
    await cps.registerKey(BOB, "a", (await calleeKey("a")).publicKey);
    await cps.registerKey(BOB, "b", (await calleeKey("b")).publicKey);
    cps.failStores(1, 429, "QUEUE_FULL");
    const err = (await as.placeCall({ from: ALICE, to: BOB }).catch((e: unknown) => e)) as StirClientError;
    expect(err.code).toBe("STORE_FAILED");
    expect(err.cause).toBeInstanceOf(CpsError);
    expect((err.cause as CpsError).code).toBe("QUEUE_FULL");
    expect((err.details.stored as unknown[]).length).toBe(1);
  });
});

describe("VS (RFC 8816 §8.2)", () => {
  it("verified: opens its blob among dummies and passes steps 2-6", async () => {
    const { cps, as, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.examined).toBe(3); // one real + two dummies
    expect(result.opened).toBe(1);
    expect(result.verified?.orig).toBe(ALICE_TN);
    expect(result.verified?.kids).toEqual(["bob"]);
    expect(result.verified?.signer).toContain("TEST ONLY");
  });

  it("two callee keys registered, the VS holds only one: still verified, one blob opened", async () => {
    const { cps, as, vsFor } = setup();
    const [phone, desk] = [await calleeKey("phone"), await calleeKey("desk")];
    await cps.registerKey(BOB, "phone", phone.publicKey);
    await cps.registerKey(BOB, "desk", desk.publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([desk.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.opened).toBe(1);
    expect(result.verified?.kids).toEqual(["desk"]);
  });

  it("a callee holding both keys tries them all and counts one PASSporT once", async () => {
    const { cps, as, vsFor } = setup();
    const [phone, desk] = [await calleeKey("phone"), await calleeKey("desk")];
    await cps.registerKey(BOB, "phone", phone.publicKey);
    await cps.registerKey(BOB, "desk", desk.publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([phone.key, desk.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.opened).toBe(2);
    expect(result.candidates).toHaveLength(1);
    expect([...(result.candidates[0]?.kids ?? [])].sort()).toEqual(["desk", "phone"]);
  });

  it("spoofed call: a valid PASSporT from Alice, but the call presents another number -> failed, ORIG_MISMATCH", async () => {
    const { cps, as, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: MALLORY });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 3, code: "ORIG_MISMATCH" });
  });

  it("expired PASSporT (iat older than the freshness window) -> failed at step 5, PASSPORT_STALE", async () => {
    const { cps, as, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    const later = () => Date.now() / 1000 + 61;
    const result = await vsFor([bob.key], { now: later }).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 5, code: "PASSPORT_STALE" });
  });

  it("PASSporT signed under an untrusted CA -> failed at step 4, CERT_UNTRUSTED", async () => {
    const { cps, discovery, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    const rogue = new AuthenticationService({
      credential: credential("rogue", otherPki.valid),
      trustAnchors: [pki.root.certificate],
      discovery,
      fetch: cps.fetch,
    });
    await rogue.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 4, code: "CERT_UNTRUSTED" });
  });

  it("certificate that does not cover orig -> failed at step 4, CERT_NOT_AUTHORISED", async () => {
    const { cps, discovery, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    const other = await pki.issue({ tnAuthList: [{ type: "one", tn: "19995550000" }] });
    const lying = new AuthenticationService({
      credential: credential("other", other),
      trustAnchors: [pki.root.certificate],
      discovery,
      fetch: cps.fetch,
      mayClaim: () => true, // a policy that lets it try: the VS must still refuse
    });
    await lying.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.candidates[0]?.failure).toMatchObject({ step: 4, code: "CERT_NOT_AUTHORISED" });
  });

  it("a tampered signature -> failed at step 6, PASSPORT_SIGNATURE", async () => {
    const { cps, vsFor } = setup();
    const bob = await calleeKey("bob");
    const jws = await createPassport(
      {
        x5u: credential("alice", pki.valid).x5u,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [BOB_TN] },
          iat: Math.floor(Date.now() / 1000),
          orig: { tn: ALICE_TN },
          origid: "x",
        },
      },
      pki.valid.privateKey,
    );
    const [h, p, s] = jws.split(".");
    const bad = `${h}.${p}.${s?.startsWith("A") ? `B${s.slice(1)}` : `A${s?.slice(1)}`}`;
    await new CpsClient({ baseUrl: cps.base, fetch: cps.fetch }).store(
      BOB_TN,
      await sealPassport(bob.publicKey, BOB_TN, bad),
    );
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.candidates[0]?.failure).toMatchObject({ step: 6, code: "PASSPORT_SIGNATURE" });
  });

  it("unsupported ppt -> failed at step 2", async () => {
    const { cps, vsFor } = setup();
    const bob = await calleeKey("bob");
    // `rcd` (Rich Call Data): a ppt the VS's default list does not name.
    const jws = await createPassport(
      {
        x5u: credential("alice", pki.valid).x5u,
        ppt: "rcd",
        claims: { dest: { tn: [BOB_TN] }, iat: Math.floor(Date.now() / 1000), orig: { tn: ALICE_TN } },
      },
      pki.valid.privateKey,
    );
    await new CpsClient({ baseUrl: cps.base, fetch: cps.fetch }).store(
      BOB_TN,
      await sealPassport(bob.publicKey, BOB_TN, jws),
    );
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.candidates[0]?.failure).toMatchObject({ step: 2, code: "PASSPORT_PPT_UNSUPPORTED" });
  });

  it("a PASSporT for another callee re-sealed to Bob -> failed, DEST_MISMATCH (RFC 8816 §7.4)", async () => {
    const { cps, as, vsFor } = setup();
    const carol = await calleeKey("carol");
    const bob = await calleeKey("bob");
    await cps.registerKey(CAROL, "carol", carol.publicKey);
    const call = await as.placeCall({ from: ALICE, to: "+3 333 555 3333" });
    await new CpsClient({ baseUrl: cps.base, fetch: cps.fetch }).store(
      BOB_TN,
      await sealPassport(bob.publicKey, BOB_TN, call.passport),
    );
    const result = await vsFor([bob.key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 3, code: "DEST_MISMATCH" });
  });

  it("no call in progress: only dummies -> no-passport", async () => {
    const { vsFor } = setup();
    const result = await vsFor([(await calleeKey("bob")).key]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("no-passport");
    expect(result.examined).toBe(2);
    expect(result.candidates).toEqual([]);
  });

  it("call centre (§5.5): one retrieval, a verdict per ringing call, each matched to its caller", async () => {
    const { cps, discovery, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    const callers = ["+1 111 555 1111", "+1 111 555 1112", "+1 111 555 1113"];
    const wide = await pki.issue({ tnAuthList: [{ type: "range", start: "11115551111", count: 3 }] });
    const as = new AuthenticationService({
      credential: credential("wide", wide),
      trustAnchors: [pki.root.certificate],
      discovery,
      fetch: cps.fetch,
    });
    for (const from of callers) await as.placeCall({ from, to: BOB });
    const vs = vsFor([bob.key]);
    const verdicts = await vs.verifyCalls(BOB, [...callers, MALLORY]);
    expect(verdicts.map((v) => v.verdict)).toEqual(["verified", "verified", "verified", "failed"]);
    expect(verdicts.map((v) => v.verified?.orig)).toEqual([...callers.map((c) => canonicalTn(c)), undefined]);
    expect(cps.log.filter((l) => l === `GET /cps/${BOB_TN}/ppts`)).toHaveLength(1);
  });
});

describe("Gateways (RFC 8816 §8.3, §5.3 subcase 1, §5.4)", () => {
  it("stores the PASSporT of an Identity header; the reverse gateway verifies and writes it back", async () => {
    const { cps, discovery, as, vsFor } = setup();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey);
    // An in-band PASSporT, as the originating AS would put it in the INVITE.
    const inBand = await as.placeCall({ from: ALICE, to: BOB });
    cps.stored.clear();
    const identity = `${inBand.passport};info=<${x5u("alice")}>;alg=ES256;ppt=shaken`;
    const gw = new Gateway({ discovery, fetch: cps.fetch, trustAnchors: [pki.root.certificate] });
    const out = await gw.storeIdentity({ identity: [identity] });
    expect(out.to).toBe(BOB_TN);
    expect(out.stored).toHaveLength(1);

    const { verification, identity: headers } = await new ReverseGateway(vsFor([bob.key])).identityFor({
      to: BOB,
      calling: ALICE,
    });
    expect(verification.verdict).toBe("verified");
    expect(headers).toHaveLength(1);
    const parsed = parseIdentityHeader(headers[0] ?? "");
    expect(parsed.passport).toBe(inBand.passport);
    expect(parsed.info).toBe(x5u("alice"));
    expect(parsed.ppt).toBe("shaken");
  });

  it("refuses a compact-form PASSporT (the CPS copy MUST be full form)", async () => {
    const { cps, discovery, as } = setup();
    await cps.registerKey(BOB, "bob", (await calleeKey("bob")).publicKey);
    const { passport } = await as.placeCall({ from: ALICE, to: BOB });
    const gw = new Gateway({ discovery, fetch: cps.fetch, trustAnchors: [pki.root.certificate] });
    await expect(
      gw.storeIdentity({ identity: `${toCompactForm(passport)};info=<${x5u("alice")}>`, to: BOB }),
    ).rejects.toMatchObject({ code: "COMPACT_FORM" });
  });

  it("a reverse gateway with nothing to find writes no header", async () => {
    const { vsFor } = setup();
    const out = await new ReverseGateway(vsFor([(await calleeKey("b")).key])).identityFor({
      to: BOB,
      calling: ALICE,
    });
    expect(out.verification.verdict).toBe("no-passport");
    expect(out.identity).toEqual([]);
  });
});

describe("CpsClient and discovery details", () => {
  it("maps problem+json to CpsError with code, status and Retry-After", async () => {
    const fetch = async () =>
      new Response(JSON.stringify({ code: "QUEUE_FULL", title: "full", status: 429 }), {
        status: 429,
        headers: { "content-type": "application/problem+json", "retry-after": "12" },
      });
    const err = (await new CpsClient({ baseUrl: "https://x.test", fetch })
      .list(BOB_TN)
      .catch((e: unknown) => e)) as CpsError;
    expect(err).toBeInstanceOf(CpsError);
    expect([err.code, err.status, err.retryAfter]).toEqual(["QUEUE_FULL", 429, 12]);
  });

  it("a network failure is CpsUnavailableError", async () => {
    const fetch = async () => {
      throw new TypeError("fetch failed");
    };
    await expect(new CpsClient({ baseUrl: "https://x.test", fetch }).health()).rejects.toBeInstanceOf(
      CpsUnavailableError,
    );
  });

  it("every error family shares the root StirOobError and a code", async () => {
    const { as } = setup();
    const noKeys = await as.placeCall({ from: ALICE, to: BOB }).catch((e: unknown) => e);
    const badTn = await as.placeCall({ from: ALICE, to: "not a number" }).catch((e: unknown) => e);
    const down = await new CpsClient({
      baseUrl: "https://x.test",
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
    })
      .health()
      .catch((e: unknown) => e);
    for (const [err, code] of [
      [noKeys, "NO_KEYS"],
      [badTn, "INVALID_TN"],
      [down, "UNAVAILABLE"],
    ] as const) {
      expect(err).toBeInstanceOf(StirOobError);
      expect((err as StirOobError).code).toBe(code);
    }
  });

  it("refuses discovery answers that point at plain http (unless loopback is allowed)", async () => {
    const answer = (cps: string) => async () => Response.json({ cps, keys: `${cps}/keys`, ttl: 60 });
    const bad = new Discovery({ bootstrap: "https://cps.test", fetch: answer("http://evil.test") });
    await expect(bad.locate(BOB_TN)).rejects.toBeInstanceOf(CpsUnavailableError);
    const local = new Discovery({
      bootstrap: "https://cps.test",
      fetch: answer("http://127.0.0.1:8787"),
      allowLoopbackHttp: true,
    });
    expect((await local.locate(BOB_TN)).cps).toBe("http://127.0.0.1:8787");
  });

  it("keysFromJwkSet keeps only OKP/X25519 public encryption keys", async () => {
    const { publicKey } = await generateRecipientKeyPair();
    const x = encodeEnvelope(publicKey); // base64url of 32 bytes
    const keys = keysFromJwkSet({
      keys: [
        { kty: "OKP", crv: "X25519", x, kid: "good", use: "enc" },
        { kty: "OKP", crv: "Ed25519", x, kid: "sig" },
        { kty: "OKP", crv: "X25519", x, d: x, kid: "private" },
        { kty: "OKP", crv: "X25519", x: "AAAA", kid: "short" },
      ],
    });
    expect(keys.map((k) => k.kid)).toEqual(["good"]);
  });
});
