/**
 * The AS's key record check (RFC 8816 §11: keys linked to the STIR credential of the number) and its
 * private lookups (prefix, pages, cache), against the in-memory CPS (client-fake-cps.ts). The
 * directory here LIES on purpose: the fake serves whatever entries a test adds, because the point is a
 * dishonest directory (or one that was broken into). The real server runs the same in
 * test/e2e/lying-directory.test.ts.
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import { placeCommand } from "../../src/cli/calls.js";
import { UsageError } from "../../src/cli/common.js";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery, MAX_LOOKUP_PAGES } from "../../src/client/discovery.js";
import { StirClientError } from "../../src/client/errors.js";
import { Gateway } from "../../src/client/gateway.js";
import { KeyRecordCheck, MAX_RECORDS_PER_NUMBER } from "../../src/client/key-records.js";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import { decodeEnvelope, generateRecipientKeyPair, openPassport } from "../../src/stir/envelope.js";
import { jwkThumbprint } from "../../src/stir/key-records.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { recordHeader, recordPayload, signedKeyRecord, signRawRecord } from "../helpers/key-records.js";
import { fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = canonicalTn("+2 222 555 2222");
/** Bob's neighbour: same 100-number block (222255522xx). */
const BEA = canonicalTn("+2 222 555 2233");
const CAROL = canonicalTn("+3 333 555 3333");

let pki: TestPki;
let otherPki: TestPki;
let alice: TestCredential;
/** Bob's carrier: covers Bob and Bea. */
let bobCred: TestCredential;
/** A valid credential of the same PKI that covers only Carol (not Bob). */
let carolCred: TestCredential;
/** Covers Bob, but under a root the AS does not trust. */
let untrustedCred: TestCredential;

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: canonicalTn(ALICE) }] });
  otherPki = await createTestPki({ tnAuthList: [{ type: "one", tn: BOB }] });
  alice = pki.valid;
  bobCred = await pki.issue({
    tnAuthList: [
      { type: "one", tn: BOB },
      { type: "one", tn: BEA },
    ],
    subject: "bob carrier",
  });
  carolCred = await pki.issue({ tnAuthList: [{ type: "one", tn: CAROL }], subject: "carol carrier" });
  untrustedCred = otherPki.valid;
});

async function keyPair() {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  return { keyPair, publicKey, kid: await jwkThumbprint(publicKey) };
}

function b64u(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** A served JWK for `publicKey`, with `record` when given (the outer members are the directory's word). */
function entry(publicKey: Uint8Array, record?: string, block: string = BOB): Record<string, unknown> {
  return {
    kty: "OKP",
    crv: "X25519",
    use: "enc",
    kid: b64u(publicKey).slice(0, 16),
    x: b64u(publicKey),
    block,
    ...(record === undefined ? {} : { record }),
  };
}

function setup(
  options: {
    lookupOpenDigits?: number;
    pageSize?: number;
    keysMaxAge?: number;
    allowUnsignedKeys?: boolean;
    nowSeconds?: () => number;
    validator?: CertificateValidator;
  } = {},
) {
  const cps = fakeCps({
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    ...(options.keysMaxAge ? { keysMaxAge: options.keysMaxAge } : {}),
    signer: bobCred,
  });
  const now = options.nowSeconds;
  const discovery = new Discovery({
    bootstrap: cps.base,
    fetch: cps.fetch,
    ...(now ? { now: () => now() * 1000 } : {}),
    ...(options.lookupOpenDigits === undefined ? {} : { lookupOpenDigits: options.lookupOpenDigits }),
  });
  const as = new AuthenticationService({
    credential: {
      privateKey: alice.privateKey,
      x5u: "https://certs.example.test/alice.pem",
      chain: alice.pem,
    },
    discovery,
    fetch: cps.fetch,
    ...(options.validator ? { validator: options.validator } : { trustAnchors: [pki.root.certificate] }),
    ...(options.allowUnsignedKeys ? { allowUnsignedKeys: true } : {}),
    ...(now ? { now } : {}),
  });
  const posts = () => cps.log.filter((l) => l.startsWith("POST"));
  const lookups = () => cps.log.filter((l) => l.startsWith("GET /keys"));
  return { cps, as, discovery, posts, lookups };
}

/** Every substitution a lying directory can try for Bob, each with the attacker's own key. */
async function substitutes(attacker: Uint8Array, genuine: { publicKey: Uint8Array; record: string }) {
  const now = Math.floor(Date.now() / 1000);
  return {
    unsigned: entry(attacker),
    // Signed by a valid credential of the trusted PKI, but one that does not cover Bob.
    otherNumber: entry(attacker, await signedKeyRecord(carolCred, attacker, { blocks: [CAROL] })),
    // Claims Bob's number with Carol's credential (the TNAuthList does not cover the block).
    notCovered: entry(attacker, await signedKeyRecord(carolCred, attacker, { blocks: [BOB] })),
    // Bob's genuine record, the outer JWK swapped for the attacker's key.
    swapped: { ...entry(attacker), record: genuine.record },
    untrusted: entry(attacker, await signedKeyRecord(untrustedCred, attacker, { blocks: [BOB] })),
    expired: entry(
      attacker,
      await signedKeyRecord(bobCred, attacker, { blocks: [BOB], nbf: now - 7200, ttlSeconds: 3600 }),
    ),
    crit: entry(
      attacker,
      await signRawRecord(
        bobCred,
        { ...recordHeader(bobCred), crit: ["exp"] },
        recordPayload(attacker, [BOB]),
      ),
    ),
    badSignature: entry(
      attacker,
      `${(await signedKeyRecord(bobCred, attacker, { blocks: [BOB] })).slice(0, -8)}AAAAAAAA`,
    ),
    notString: { ...entry(attacker), record: { alg: "none" } },
  };
}

/** Bob's genuine key registered at `cps`, and every substitute of an attacker's key beside it. */
async function lyingDirectory(cps: ReturnType<typeof setup>["cps"]) {
  const bob = await keyPair();
  const attacker = await keyPair();
  const genuine = await cps.registerKey(BOB, "bob", bob.publicKey);
  const subs = await substitutes(attacker.publicKey, {
    publicKey: bob.publicKey,
    record: genuine.record as string,
  });
  for (const e of Object.values(subs)) cps.addEntry(BOB, e);
  return { bob, attacker, subs };
}

describe("AS key record check (RFC 8816 §11), with a lying directory", () => {
  it("seals only to the genuine key; every substituted key is skipped with its reason", async () => {
    const { cps, as } = setup();
    const { bob, attacker } = await lyingDirectory(cps);

    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([bob.kid]);
    expect(call.skipped.map((s) => s.code).sort()).toEqual(
      [
        "KEY_RECORD_UNSIGNED",
        "CERT_NOT_AUTHORISED",
        "CERT_UNTRUSTED",
        "KEY_RECORD_EXPIRED",
        "KEY_RECORD_INVALID", // crit
        "KEY_RECORD_INVALID", // bad signature
        "KEY_RECORD_INVALID", // record not a string
      ].sort(),
    );
    // The swapped entry is Bob's own record: it counts as Bob's key (the outer x is ignored), once.
    // The record for Carol's number is about another number: neither used nor reported.
    const blobs = cps.stored.get(BOB) ?? [];
    expect(blobs).toHaveLength(1);
    for (const { blob } of blobs) {
      await expect(openPassport(attacker.keyPair, BOB, decodeEnvelope(blob))).rejects.toThrow();
      await expect(openPassport(bob.keyPair, BOB, decodeEnvelope(blob))).resolves.toBe(call.passport);
    }
  });

  it("with only substituted keys it refuses NO_VALID_KEYS, with the reasons, and stores nothing", async () => {
    const { cps, as, posts } = setup();
    const bob = await keyPair();
    const attacker = await keyPair();
    const genuineRecord = await signedKeyRecord(bobCred, bob.publicKey, { blocks: [BOB] });
    const subs = await substitutes(attacker.publicKey, { publicKey: bob.publicKey, record: genuineRecord });
    const { swapped: _swapped, ...onlyFake } = subs;
    for (const e of Object.values(onlyFake)) cps.addEntry(BOB, e);
    const err = (await as.placeCall({ from: ALICE, to: BOB }).catch((e: unknown) => e)) as StirClientError;
    expect(err).toBeInstanceOf(StirClientError);
    expect(err.code).toBe("NO_VALID_KEYS");
    expect((err.details.skipped as { code: string }[]).length).toBe(7);
    expect(posts()).toEqual([]);
  });

  it("a gateway (§8.3) seals only to the genuine key too, and refuses NO_VALID_KEYS with only substitutes", async () => {
    const { cps, discovery, as, posts } = setup();
    const { bob, attacker, subs } = await lyingDirectory(cps);
    const { passport } = await as.placeCall({ from: ALICE, to: BOB });
    cps.stored.clear();
    const identity = `${passport};info=<https://certs.example.test/alice.pem>;ppt=shaken`;
    const gw = new Gateway({ discovery, fetch: cps.fetch, trustAnchors: [pki.root.certificate] });
    const out = await gw.storeIdentity({ identity });
    expect(out.stored.map((s) => s.kid)).toEqual([bob.kid]);
    expect(out.skipped.length).toBe(7);
    for (const { blob } of cps.stored.get(BOB) ?? []) {
      await expect(openPassport(attacker.keyPair, BOB, decodeEnvelope(blob))).rejects.toThrow();
    }

    const only = setup();
    const { swapped: _swapped, ...onlyFake } = subs;
    for (const e of Object.values(onlyFake)) only.cps.addEntry(BOB, e);
    const lonely = new Gateway({
      discovery: only.discovery,
      fetch: only.cps.fetch,
      trustAnchors: [pki.root.certificate],
    });
    await expect(lonely.storeIdentity({ identity })).rejects.toMatchObject({ code: "NO_VALID_KEYS" });
    expect(only.posts()).toEqual([]);
    expect(posts().length).toBeGreaterThan(0);
  });

  it("an exact answer (0 open digits) reports a record for another number as KEY_RECORD_NOT_FOR_TN", async () => {
    const { cps, as } = setup({ lookupOpenDigits: 0 });
    const bob = await keyPair();
    const attacker = await keyPair();
    await cps.registerKey(BOB, "bob", bob.publicKey);
    cps.addEntry(
      BOB,
      entry(attacker.publicKey, await signedKeyRecord(carolCred, attacker.publicKey, { blocks: [CAROL] })),
    );
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([bob.kid]);
    expect(call.skipped.map((s) => s.code)).toEqual(["KEY_RECORD_NOT_FOR_TN"]);
  });

  it("unsigned keys are used only with allowUnsignedKeys (then the directory is trusted with the key)", async () => {
    const key = await keyPair();
    const off = setup();
    off.cps.addEntry(BOB, entry(key.publicKey));
    await expect(off.as.placeCall({ from: ALICE, to: BOB })).rejects.toMatchObject({
      code: "NO_VALID_KEYS",
      details: { skipped: [{ code: "KEY_RECORD_UNSIGNED" }] },
    });
    const on = setup({ allowUnsignedKeys: true });
    on.cps.addEntry(BOB, entry(key.publicKey));
    const call = await on.as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([key.kid]);
    // A signed record that fails is still skipped with the option on: it is not "unsigned".
    const attacker = await keyPair();
    on.cps.addEntry(
      BOB,
      entry(attacker.publicKey, await signedKeyRecord(carolCred, attacker.publicKey, { blocks: [BOB] })),
    );
    on.discovery.invalidate(BOB);
    const again = await on.as.placeCall({ from: ALICE, to: BOB });
    expect(again.stored.map((s) => s.kid)).toEqual([key.kid]);
    expect(again.skipped.map((s) => s.code)).toEqual(["CERT_NOT_AUTHORISED"]);
  });

  it("a record is judged at call time: one that expires while its answer is cached is skipped", async () => {
    let now = Math.floor(Date.now() / 1000);
    const { cps, as, lookups } = setup({ nowSeconds: () => now, keysMaxAge: 3000 });
    const bob = await keyPair();
    cps.addEntry(
      BOB,
      entry(bob.publicKey, await signedKeyRecord(bobCred, bob.publicKey, { blocks: [BOB], ttlSeconds: 600 })),
    );
    await as.placeCall({ from: ALICE, to: BOB });
    now += 900; // the answer is still fresh (max-age 3000), the record is not
    await expect(as.placeCall({ from: ALICE, to: BOB })).rejects.toMatchObject({
      code: "NO_VALID_KEYS",
      details: { skipped: [{ code: "KEY_RECORD_EXPIRED" }] },
    });
    expect(lookups()).toHaveLength(1);
  });

  it("a record for a block (range credential) applies to every number in it", async () => {
    const { cps, as } = setup();
    const wide = await pki.issue({ tnAuthList: [{ type: "range", start: "22225552200", count: 100 }] });
    const pbx = await keyPair();
    cps.addEntry(
      "22225552200",
      entry(
        pbx.publicKey,
        await signedKeyRecord(wide, pbx.publicKey, { blocks: ["222255522xx"] }),
        "222255522xx",
      ),
    );
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([pbx.kid]);
  });

  it("a record whose header names an x5u the AS cannot fetch is skipped, not fatal", async () => {
    const { cps, as } = setup();
    const bob = await keyPair();
    const good = await keyPair();
    await cps.registerKey(BOB, "good", good.publicKey);
    cps.addEntry(
      BOB,
      entry(
        bob.publicKey,
        await signedKeyRecord(bobCred, bob.publicKey, { blocks: [BOB], x5u: "https://127.0.0.1/chain.pem" }),
      ),
    );
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([good.kid]);
    expect(call.skipped).toHaveLength(1);
    expect(call.skipped[0]?.code).toMatch(/^(X5U_|KEY_RECORD_INVALID)/);
  });

  it("checks at most MAX_RECORDS_PER_NUMBER records for one number; the rest are TOO_MANY_KEYS", async () => {
    const { cps, as } = setup({ allowUnsignedKeys: true });
    for (let i = 0; i < MAX_RECORDS_PER_NUMBER + 3; i++)
      cps.addEntry(BOB, entry((await keyPair()).publicKey));
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored).toHaveLength(MAX_RECORDS_PER_NUMBER);
    expect(call.skipped.map((s) => s.code)).toEqual(["TOO_MANY_KEYS", "TOO_MANY_KEYS", "TOO_MANY_KEYS"]);
  });

  it("an AS without trust anchors or a validator is a TypeError (it could not check any record)", () => {
    const discovery = new Discovery({ bootstrap: "https://cps.test" });
    expect(
      () =>
        new AuthenticationService({
          credential: { privateKey: alice.privateKey, x5u: "https://x.test/a.pem", chain: alice.pem },
          discovery,
        }),
    ).toThrow(TypeError);
    expect(() => new KeyRecordCheck({})).toThrow(TypeError);
  });
});

describe("private key lookups (RFC 8816 §11)", () => {
  it("asks for the block with N digits open (default 2), never the number; 0 asks for the number", async () => {
    const two = setup();
    await two.cps.registerKey(BOB, "bob", (await keyPair()).publicKey);
    await two.as.placeCall({ from: ALICE, to: BOB });
    expect(two.lookups()).toEqual(["GET /keys?prefix=222255522xx"]);
    expect(two.cps.log.some((l) => l.includes(BOB) && l.startsWith("GET /keys"))).toBe(false);

    const four = setup({ lookupOpenDigits: 4 });
    await four.cps.registerKey(BOB, "bob", (await keyPair()).publicKey);
    await four.as.placeCall({ from: ALICE, to: BOB });
    expect(four.lookups()).toEqual(["GET /keys?prefix=2222555xxxx"]);

    const exact = setup({ lookupOpenDigits: 0 });
    await exact.cps.registerKey(BOB, "bob", (await keyPair()).publicKey);
    await exact.as.placeCall({ from: ALICE, to: BOB });
    expect(exact.lookups()).toEqual([`GET /keys/${BOB}`]);

    expect(() => new Discovery({ bootstrap: "https://cps.test", lookupOpenDigits: 7 })).toThrow(TypeError);
    expect(() => new Discovery({ bootstrap: "https://cps.test", lookupOpenDigits: 1.5 })).toThrow(TypeError);
  });

  it("follows every cursor page and keeps only the keys whose records contain the called number", async () => {
    const { cps, as, lookups } = setup({ pageSize: 1 });
    const bob = await keyPair();
    const bea = await keyPair();
    await cps.registerKey(BEA, "bea", bea.publicKey);
    await cps.registerKey(BOB, "bob", bob.publicKey);
    await cps.registerKey(BOB, "bob2", (await keyPair()).publicKey);
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(lookups()).toEqual([
      "GET /keys?prefix=222255522xx",
      "GET /keys?prefix=222255522xx&cursor=1",
      "GET /keys?prefix=222255522xx&cursor=2",
    ]);
    expect(call.stored).toHaveLength(2);
    expect(call.stored.map((s) => s.kid)).not.toContain(bea.kid);
    // Bea's key is another number's: not sealed to, not reported as skipped either.
    expect(call.skipped).toEqual([]);
  });

  it("one cached answer serves every number of the block, each record verified once", async () => {
    const validator = new CertificateValidator({ anchors: [pki.root.certificate] });
    const validate = vi.spyOn(validator, "validate");
    const { cps, as, lookups } = setup({ validator });
    await cps.registerKey(BOB, "bob", (await keyPair()).publicKey);
    await cps.registerKey(BEA, "bea", (await keyPair()).publicKey);
    await as.placeCall({ from: ALICE, to: BOB });
    expect(validate).toHaveBeenCalledTimes(1); // Bob's record only: Bea's is not about this call
    await as.placeCall({ from: ALICE, to: BEA });
    await as.placeCall({ from: ALICE, to: BOB });
    await as.placeCall({ from: ALICE, to: BEA });
    expect(lookups()).toHaveLength(1);
    expect(validate).toHaveBeenCalledTimes(2);
  });

  it("a block answer cached for a neighbour does not hide a key registered since for this number", async () => {
    const { cps, as, lookups } = setup();
    await cps.registerKey(BEA, "bea", (await keyPair()).publicKey);
    await as.placeCall({ from: ALICE, to: BEA });
    const bob = await keyPair();
    await cps.registerKey(BOB, "bob", bob.publicKey);
    // Cached answer: nothing for Bob in it, so the block (never the number) is asked once more.
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([bob.kid]);
    expect(lookups()).toEqual(["GET /keys?prefix=222255522xx", "GET /keys?prefix=222255522xx"]);
    // A number with no key at all: one lookup per call, then NO_KEYS.
    await expect(as.placeCall({ from: ALICE, to: canonicalTn("+2 222 555 2299") })).rejects.toMatchObject({
      code: "NO_KEYS",
    });
    expect(lookups()).toHaveLength(3);
  });

  it("stir-oob place --lookup-open-digits takes 0 to 6, anything else is a usage error", async () => {
    for (const bad of ["7", "-1", "1.5", "x", ""]) {
      await expect(
        placeCommand(["--from", ALICE, "--to", BOB, "--lookup-open-digits", bad]),
      ).rejects.toBeInstanceOf(UsageError);
    }
  });

  it("a directory that never stops paging is followed MAX_LOOKUP_PAGES pages, then the AS seals", async () => {
    const bob = await keyPair();
    const record = await signedKeyRecord(bobCred, bob.publicKey, { blocks: [BOB] });
    let pages = 0;
    const base = "https://cps.test";
    const inner = fakeCps();
    const fetchFn = async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === "/keys") {
        pages++;
        return Response.json(
          { keys: [entry(bob.publicKey, record)], truncated: true, cursor: `c${pages}` },
          { headers: { "cache-control": "max-age=60" } },
        );
      }
      return inner.fetch(input, init);
    };
    const discovery = new Discovery({ bootstrap: base, fetch: fetchFn });
    const as = new AuthenticationService({
      credential: { privateKey: alice.privateKey, x5u: "https://x.test/a.pem", chain: alice.pem },
      discovery,
      fetch: fetchFn,
      trustAnchors: [pki.root.certificate],
    });
    const call = await as.placeCall({ from: ALICE, to: BOB });
    expect(pages).toBe(MAX_LOOKUP_PAGES);
    expect(call.stored.map((s) => s.kid)).toEqual([bob.kid]);
  });
});
