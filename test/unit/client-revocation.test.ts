/**
 * Revocation in the client library (docs/passport-and-credentials.md "Revocation"): the AS's check of
 * signed key records and the VS's check of PASSporTs each build a default validator that fetches the
 * CRLs the certificates name (src/stir/crl.ts), under the x5u URL policy. The CRLs are real, signed by
 * the test PKI's CAs and served by a real HTTP server on loopback (hence `x5uPolicy: { allowLoopback:
 * true }`); the CPS is the in-memory stand-in (client-fake-cps.ts), the network between them real.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { StirClientError } from "../../src/client/errors.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { CpsError } from "../../src/errors.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { issueTestCrl, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CrlServer, startCrlServer } from "../helpers/crl-server.js";
import { type FakeCps, fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = "+2 222 555 2222";
const ALICE_TN = canonicalTn(ALICE);
const BOB_TN = canonicalTn(BOB);

let crlServer: CrlServer;
let base: string;
/** The CRL repository: path -> DER. */
let pki: TestPki;

/** Credentials under the CRL intermediate (CRL: /callers.crl) and under the revoked intermediate. */
const cred = {} as Record<"alice" | "aliceRevoked" | "aliceUnderRevoked" | "aliceNoCrl", TestCredential> &
  Record<"bob" | "bobRevoked" | "bobUnderRevoked" | "bobNoCrl", TestCredential>;

beforeAll(async () => {
  crlServer = await startCrlServer();
  ({ base, pki } = crlServer);

  const leaf = (tn: string, issuer: "crl" | "revoked", crlPath: string | null, subject: string) =>
    pki.issue({
      issuer: issuer === "crl" ? pki.crlIntermediate : pki.revokedIntermediate,
      tnAuthList: [{ type: "one", tn }],
      ...(crlPath === null ? {} : { crlUrl: `${base}${crlPath}` }),
      subject,
    });
  cred.alice = await leaf(ALICE_TN, "crl", "/parties.crl", "alice");
  cred.aliceRevoked = await leaf(ALICE_TN, "crl", "/parties.crl", "alice revoked");
  cred.aliceUnderRevoked = await leaf(
    ALICE_TN,
    "revoked",
    "/revoked-intermediate.crl",
    "alice under revoked",
  );
  cred.aliceNoCrl = await leaf(ALICE_TN, "crl", "/missing.crl", "alice missing CRL");
  cred.bob = await leaf(BOB_TN, "crl", "/parties.crl", "bob");
  cred.bobRevoked = await leaf(BOB_TN, "crl", "/parties.crl", "bob revoked");
  cred.bobUnderRevoked = await leaf(BOB_TN, "revoked", "/revoked-intermediate.crl", "bob under revoked");
  cred.bobNoCrl = await leaf(BOB_TN, "crl", "/missing.crl", "bob missing CRL");
  // The CRL intermediate's CRL for these parties: two leaves revoked.
  const parties = await issueTestCrl(
    pki.crlIntermediate,
    { revoked: [cred.aliceRevoked.chain[0]!, cred.bobRevoked.chain[0]!] },
    new Date(),
  );
  crlServer.bodies.set("/parties.crl", new Uint8Array(parties.rawData));
});

afterAll(() => crlServer.close());

const x5u = (name: string) => `https://certs.example.test/${name}.pem`;
const pems = new Map<string, string>();
/** The x5u under which a credential's chain is served (registered on first use). */
function x5uOf(c: TestCredential): string {
  const url = x5u(`c${pems.size}`);
  pems.set(url, c.pem);
  return url;
}
const resolveCertificate = async (url: string) => {
  const pem = pems.get(url);
  if (pem === undefined) throw new CpsError("X5U_FETCH_FAILED", "unknown x5u");
  return parseCertificateChain(pem);
};

async function calleeKey(kid: string): Promise<{ key: CalleeKey; publicKey: Uint8Array }> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  return { key: { kid, privateKey: keyPair }, publicKey };
}

/** The fake CPS for its own URLs, the real network (the CRL server) for everything else. */
function network(cps: FakeCps): typeof fetch {
  return ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    return url.startsWith(cps.base) ? cps.fetch(input as string, init) : fetch(input, init);
  }) as typeof fetch;
}

function asFor(cps: FakeCps, signer: TestCredential) {
  const fetchFn = network(cps);
  return new AuthenticationService({
    credential: {
      privateKey: signer.privateKey,
      x5u: x5uOf(signer),
      chain: signer.pem,
    },
    trustAnchors: [pki.root.certificate],
    discovery: new Discovery({ bootstrap: cps.base, fetch: fetchFn }),
    fetch: fetchFn,
    x5uPolicy: { allowLoopback: true },
  });
}

function vsFor(cps: FakeCps, keys: CalleeKey[]) {
  return new VerificationService({
    keys,
    trustAnchors: [pki.root.certificate],
    resolveCertificate,
    cps: cps.base,
    fetch: network(cps),
    x5uPolicy: { allowLoopback: true },
  });
}

describe("the AS's key-record check fetches CRLs (RFC 8816 §11 records, RFC 5280 CRLs)", () => {
  it("seals to a key whose record's signer is unrevoked (both CRLs fetched)", async () => {
    crlServer.requests.length = 0;
    const cps = fakeCps();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey, cred.bob);
    const call = await asFor(cps, cred.alice).placeCall({ from: ALICE, to: BOB });
    expect(call.stored).toHaveLength(1);
    expect(call.skipped).toEqual([]);
    expect(new Set(crlServer.requests)).toEqual(new Set(["/parties.crl", "/root.crl"]));
  });

  it("skips keys whose records are signed by a revoked leaf or under a revoked intermediate, seals to the rest", async () => {
    const cps = fakeCps();
    const good = await calleeKey("good");
    await cps.registerKey(BOB, "good", good.publicKey, cred.bob);
    await cps.registerKey(BOB, "revoked", (await calleeKey("r")).publicKey, cred.bobRevoked);
    await cps.registerKey(BOB, "under", (await calleeKey("u")).publicKey, cred.bobUnderRevoked);
    const call = await asFor(cps, cred.alice).placeCall({ from: ALICE, to: BOB });
    expect(call.stored).toHaveLength(1);
    expect(call.skipped.map((s) => s.code).sort()).toEqual(["CERT_REVOKED", "CERT_REVOKED"]);
    expect(cps.stored.get(BOB_TN)).toHaveLength(1);
  });

  it("with only revoked signers it refuses NO_VALID_KEYS and stores nothing", async () => {
    const cps = fakeCps();
    await cps.registerKey(BOB, "revoked", (await calleeKey("r")).publicKey, cred.bobRevoked);
    await cps.registerKey(BOB, "under", (await calleeKey("u")).publicKey, cred.bobUnderRevoked);
    const err = (await asFor(cps, cred.alice)
      .placeCall({ from: ALICE, to: BOB })
      .catch((e: unknown) => e)) as StirClientError;
    expect(err).toBeInstanceOf(StirClientError);
    expect(err.code).toBe("NO_VALID_KEYS");
    expect((err.details.skipped as { code: string }[]).map((s) => s.code)).toEqual([
      "CERT_REVOKED",
      "CERT_REVOKED",
    ]);
    expect(cps.stored.size).toBe(0);
  });

  it("a record whose CRL cannot be fetched is skipped: CERT_REVOCATION_UNKNOWN", async () => {
    const cps = fakeCps();
    await cps.registerKey(BOB, "nocrl", (await calleeKey("n")).publicKey, cred.bobNoCrl);
    await expect(asFor(cps, cred.alice).placeCall({ from: ALICE, to: BOB })).rejects.toMatchObject({
      code: "NO_VALID_KEYS",
      details: { skipped: [{ code: "CERT_REVOCATION_UNKNOWN" }] },
    });
  });

  it("without the loopback switch the CRL URL is refused by the x5u policy: unknown, fail closed", async () => {
    const cps = fakeCps();
    await cps.registerKey(BOB, "bob", (await calleeKey("b")).publicKey, cred.bob);
    const fetchFn = network(cps);
    const strict = new AuthenticationService({
      credential: { privateKey: cred.alice.privateKey, x5u: x5uOf(cred.alice), chain: cred.alice.pem },
      trustAnchors: [pki.root.certificate],
      discovery: new Discovery({ bootstrap: cps.base, fetch: fetchFn }),
      fetch: fetchFn,
    });
    await expect(strict.placeCall({ from: ALICE, to: BOB })).rejects.toMatchObject({
      code: "NO_VALID_KEYS",
      details: { skipped: [{ code: "CERT_REVOCATION_UNKNOWN" }] },
    });
  });
});

describe("the VS's PASSporT check fetches CRLs (RFC 8816 §8.2 step 4)", () => {
  async function placeAndVerify(caller: TestCredential) {
    const cps = fakeCps();
    const bob = await calleeKey("bob");
    await cps.registerKey(BOB, "bob", bob.publicKey, cred.bob);
    // The AS does not check its own credential: the VS is where a revoked caller is caught.
    await asFor(cps, caller).placeCall({ from: ALICE, to: BOB });
    return vsFor(cps, [bob.key]).verifyCall({ to: BOB, calling: ALICE });
  }

  it("verifies a PASSporT signed by an unrevoked caller whose certificates name CRLs", async () => {
    const result = await placeAndVerify(cred.alice);
    expect(result.verdict).toBe("verified");
  });

  it.each([
    ["a revoked leaf", "aliceRevoked", "CERT_REVOKED"],
    ["a leaf under a revoked intermediate", "aliceUnderRevoked", "CERT_REVOKED"],
    ["a leaf whose CRL cannot be fetched", "aliceNoCrl", "CERT_REVOCATION_UNKNOWN"],
  ] as const)("refuses a PASSporT signed by %s at step 4: %s", async (_n, who, code) => {
    const result = await placeAndVerify(cred[who]);
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 4, code });
  });
});
