/**
 * RFC 8816 §5 use cases end to end: the client library (src/client) against the real CPS under
 * `wrangler dev`, over HTTP: discovery (§10), the key directory (§11), storage tokens (§7.5, stores
 * REQUIRE a token here), the AS (§8.1), the VS (§8.2) and the gateways (§8.3). Each case uses its own
 * called number so the blobs of one case never decide another's verdict.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService, type SigningCredential } from "../../src/client/as.js";
import { CpsClient } from "../../src/client/cps-client.js";
import { Discovery } from "../../src/client/discovery.js";
import { Gateway, ReverseGateway } from "../../src/client/gateway.js";
import { walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import { formatIdentityHeader, parseIdentityHeaders } from "../../src/stir/identity-header.js";
import { createPassport, verifyPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { registerCalleeKey } from "../helpers/key-records.js";
import { bearerFor } from "../helpers/pki.js";
import { x5uMap } from "../helpers/x5u.js";

const ALICE = "+1 111 555 1111";
const MALLORY = "+1 111 555 6666";
const BOB = "+2 222 555 2222";
/** Callee numbers of the other cases, all in Bob's operator's block 2222555 22xx. */
const CALLEE = {
  voip: "+2 222 555 2201",
  pbx: "+2 222 555 2202",
  gatewayIn: "+2 222 555 2203",
  gatewayOut: "+2 222 555 2204",
  callCentre: "+2 222 555 2205",
  spoof: "+2 222 555 2206",
  stale: "+2 222 555 2207",
  rogue: "+2 222 555 2208",
  idle: "+2 222 555 2209",
};

let server: LocalServer;
let pki: TestPki;
let rogueCa: TestPki;
let callerCred: TestCredential;
let calleeOperator: TestCredential;
let discovery: Discovery;
let tokens: ReturnType<typeof walletTokens>;
const calleeKeys = new Map<string, CalleeKey[]>();
/** Demo x5u resolution: the test's own certificate "server" (a real VS fetches https). */
const { signing, resolveCertificate } = x5uMap();

const bearer = (cred: TestCredential, action: string) => bearerFor(cred, action, { audience: server.url });

/** A callee key pair, registered in the CPS's key directory (PUT /keys/{tn}) by the callee's operator, signed. */
async function registerKey(tn: string, label: string, nbf?: number): Promise<CalleeKey> {
  // A signed key record (RFC 8816 §11): the AS trusts the key only because the operator signed it.
  const { key } = await registerCalleeKey(server.url, calleeOperator, canonicalTn(tn), {
    label,
    ...(nbf === undefined ? {} : { nbf }),
  });
  calleeKeys.set(canonicalTn(tn), [...(calleeKeys.get(canonicalTn(tn)) ?? []), key]);
  return key;
}

function asFor(
  cred: SigningCredential,
  extra: Partial<ConstructorParameters<typeof AuthenticationService>[0]> = {},
) {
  return new AuthenticationService({
    credential: cred,
    discovery,
    tokens,
    trustAnchors: [pki.root.certificate],
    ...extra,
  });
}

function vsFor(keys: CalleeKey[]) {
  return new VerificationService({
    keys,
    trustAnchors: [pki.root.certificate],
    resolveCertificate,
    discovery,
  });
}

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "range", start: "11115551100", count: 100 }] });
  rogueCa = await createTestPki({ tnAuthList: [{ type: "one", tn: canonicalTn(ALICE) }] });
  callerCred = pki.valid;
  calleeOperator = await pki.issue({ tnAuthList: [{ type: "range", start: "22225552200", count: 100 }] });
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("e2e-1"),
      ALLOW_UNTOKENED_STORES: "false",
    },
  });
  discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
  const wallet = new TokenWallet({
    cpsUrl: server.url,
    authorization: () => bearer(callerCred, "tokens:issue"),
  });
  tokens = walletTokens(wallet, { batch: 16, lowWater: 4 });
  await tokens.prefetch?.(server.url, 16);
});

afterAll(async () => {
  await server?.stop();
});

describe("RFC 8816 §5 use cases over HTTP against `wrangler dev`", () => {
  it("stores without a storage token are refused here (so every store below paid one)", async () => {
    const err = await new CpsClient({ baseUrl: server.url })
      .store(canonicalTn(BOB), "A".repeat(1430))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "TOKEN_MISSING", status: 401 });
  });

  it("§5.1 VoIP to PSTN: the AS sends the PASSporT in band and stores it as a fallback; the smartphone verifies", async () => {
    const phone = await registerKey(CALLEE.voip, "smartphone");
    const call = await asFor(signing("alice", callerCred)).placeCall({ from: ALICE, to: CALLEE.voip });
    expect(call.proceed).toBe(true);
    // In band: the same full-form PASSporT in the INVITE's Identity header (RFC 8224).
    const identity = formatIdentityHeader({
      passport: call.passport,
      info: signing("alice", callerCred).x5u,
      ppt: "shaken",
    });
    expect(parseIdentityHeaders(identity)[0]?.passport).toBe(call.passport);
    // The SIP leg is lost at the PSTN gateway; the smartphone consults the CPS when the call lands.
    const result = await vsFor([phone]).verifyCall({ to: CALLEE.voip, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.verified?.passport).toBe(call.passport);
    expect(result.examined).toBeGreaterThan(result.opened); // dummies came along
  });

  it("§5.2 two smart PSTN endpoints: the PBX provisions before routing; the handset finds and verifies it", async () => {
    const handset = await registerKey(CALLEE.pbx, "handset");
    const pbx = asFor(signing("pbx", callerCred));
    const placed = await pbx.placeCall({ from: "+1 111 555 1122", to: CALLEE.pbx });
    expect(placed.stored).toHaveLength(1);
    const result = await vsFor([handset]).verifyCall({ to: CALLEE.pbx, calling: "+1 111 555 1122" });
    expect(result.verdict).toBe("verified");
    expect(result.verified?.orig).toBe("11115551122");
  });

  it("§5.3 PSTN to VoIP: the Internet gateway retrieves (subcase 1) and the far domain verifies in band; or the far VS retrieves (subcase 2)", async () => {
    const gwKey = await registerKey(CALLEE.gatewayIn, "ingress-gw");
    await asFor(signing("alice", callerCred)).placeCall({ from: ALICE, to: CALLEE.gatewayIn });
    // Subcase 1: the PSTN->SIP gateway writes an Identity header into the new INVITE ...
    const { verification, identity } = await new ReverseGateway(vsFor([gwKey])).identityFor({
      to: CALLEE.gatewayIn,
      calling: ALICE,
    });
    expect(verification.verdict).toBe("verified");
    expect(identity).toHaveLength(1);
    // ... which the destination's ordinary in-band VS verifies: full form, so no Date header needed.
    const [header] = parseIdentityHeaders(identity);
    const validator = new CertificateValidator({ anchors: [pki.root.certificate] });
    const cert = await validator.validate(await resolveCertificate(header?.info ?? ""));
    const { claims } = await verifyPassport(header?.passport ?? "", cert.publicKey);
    expect(claims.orig).toEqual({ tn: canonicalTn(ALICE) });
    // Subcase 2: the destination VS (holding the same key) retrieves it itself.
    expect((await vsFor([gwKey]).verifyCall({ to: CALLEE.gatewayIn, calling: ALICE })).verdict).toBe(
      "verified",
    );
  });

  it("§5.4 gateway out-of-band: the SIP->PSTN gateway stores the INVITE's PASSporT; the PSTN endpoint verifies", async () => {
    const endpoint = await registerKey(CALLEE.gatewayOut, "pstn-endpoint");
    // The originating AS is in-band only: it signs and puts the PASSporT in the INVITE, nothing else.
    const inBand = await createPassport(
      {
        x5u: signing("alice", callerCred).x5u,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [canonicalTn(CALLEE.gatewayOut)] },
          iat: Math.floor(Date.now() / 1000),
          orig: { tn: canonicalTn(ALICE) },
          origid: crypto.randomUUID(),
        },
      },
      callerCred.privateKey,
    );
    const identityHeader = `Identity: ${formatIdentityHeader({ passport: inBand, info: signing("alice", callerCred).x5u, ppt: "shaken" })}`;
    const stored = await new Gateway({
      discovery,
      tokens,
      trustAnchors: [pki.root.certificate],
    }).storeIdentity({ identity: [identityHeader] });
    expect(stored.to).toBe(canonicalTn(CALLEE.gatewayOut));
    expect(stored.stored).toHaveLength(1);
    const result = await vsFor([endpoint]).verifyCall({ to: CALLEE.gatewayOut, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.verified?.passport).toBe(inBand);
  });

  it("§5.5 call centre: one bulk retrieval, each ringing call matched to its caller's PASSporT", async () => {
    const centre = await registerKey(CALLEE.callCentre, "acd");
    const callers = Array.from({ length: 6 }, (_, i) => `+1 111 555 11${30 + i}`);
    const carrier = asFor(signing("carrier", callerCred));
    await Promise.all(callers.map((from) => carrier.placeCall({ from, to: CALLEE.callCentre })));
    const verdicts = await vsFor([centre]).verifyCalls(CALLEE.callCentre, [...callers, MALLORY]);
    expect(verdicts.map((v) => v.verdict)).toEqual([...callers.map(() => "verified"), "failed"]);
    expect(verdicts.map((v) => v.verified?.orig)).toEqual([...callers.map((c) => canonicalTn(c)), undefined]);
    expect(verdicts[0]?.opened).toBe(callers.length);
  });

  it("two callee keys, the VS holds only one: verified with the key it has", async () => {
    const phone = await registerKey(BOB, "bob-phone");
    const desk = await registerKey(BOB, "bob-desk");
    const call = await asFor(signing("alice", callerCred)).placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toHaveLength(2);
    const result = await vsFor([desk]).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.opened).toBe(1);
    expect(result.verified?.kids).toEqual(["bob-desk"]);
    expect((await vsFor([phone, desk]).verifyCall({ to: BOB, calling: ALICE })).opened).toBe(2);
  });

  it("spoofed call: a valid PASSporT exists, but the call presents another calling number -> failed, ORIG_MISMATCH", async () => {
    const key = await registerKey(CALLEE.spoof, "victim");
    await asFor(signing("alice", callerCred)).placeCall({ from: ALICE, to: CALLEE.spoof });
    const result = await vsFor([key]).verifyCall({ to: CALLEE.spoof, calling: MALLORY });
    expect(result.verdict).toBe("failed");
    expect(result.candidates).toHaveLength(1);
    expect(result.candidates[0]?.failure).toMatchObject({ step: 3, code: "ORIG_MISMATCH" });
  });

  it("expired PASSporT (iat two minutes old, stored within the CPS TTL) -> failed at step 5, PASSPORT_STALE", async () => {
    // The record's window started before the late AS's clock (it checks records at its own time).
    const key = await registerKey(CALLEE.stale, "stale", Math.floor(Date.now() / 1000) - 600);
    const lateAs = asFor(signing("alice", callerCred), { now: () => Date.now() / 1000 - 120 });
    await lateAs.placeCall({ from: ALICE, to: CALLEE.stale });
    const result = await vsFor([key]).verifyCall({ to: CALLEE.stale, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 5, code: "PASSPORT_STALE" });
  });

  it("PASSporT signed under an untrusted CA -> failed at step 4, CERT_UNTRUSTED", async () => {
    const key = await registerKey(CALLEE.rogue, "rogue-target");
    await asFor(signing("rogue", rogueCa.valid)).placeCall({ from: ALICE, to: CALLEE.rogue });
    const result = await vsFor([key]).verifyCall({ to: CALLEE.rogue, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 4, code: "CERT_UNTRUSTED" });
  });

  it("no call in progress: the CPS returns only dummies -> no-passport", async () => {
    const key = await registerKey(CALLEE.idle, "idle");
    const result = await vsFor([key]).verifyCall({ to: CALLEE.idle, calling: ALICE });
    expect(result.verdict).toBe("no-passport");
    expect(result.examined).toBeGreaterThanOrEqual(1); // never an empty answer (§6.2)
    expect(result.opened).toBe(0);
  });
});
