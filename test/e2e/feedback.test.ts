/**
 * Feedback on bogus PASSporTs (RFC 8816 §7.5; docs/tokens.md "Feedback") end to end: the client
 * library against the real CPS under `wrangler dev`, over HTTP, tokens required and good for 5 stores.
 * A caller's AS signs with a key that is not its certificate's (a forged PASSporT) and stores it with
 * its feedback tag (src/client/placement.ts); the callee's VS finds the call failed and reports it
 * (`VerificationService.report`); the CPS fetches the signer's x5u (a certificate repository on
 * loopback, ALLOW_LOOPBACK_X5U: local development only), judges the PASSporT bogus and revokes the
 * caller's token, whose next store is refused. A genuine call reported anyway changes nothing.
 * The CLI too: `stir-oob gateway store` puts a PASSporT for another callee under Bob's number (a
 * misdirected store), and `stir-oob verify --report` reports it.
 */
import "reflect-metadata";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService, type SigningCredential } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { CpsError } from "../../src/errors.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { formatIdentityHeader } from "../../src/stir/identity-header.js";
import { decodePassport } from "../../src/stir/passport.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, cliHomeWithCa, runCli } from "../helpers/cli.js";
import { registerCalleeKey } from "../helpers/key-records.js";
import { bearerFor } from "../helpers/pki.js";
import { type CertRepository, startCertRepository } from "./atis-e2e-helpers.js";

const MALLORY = "+1 111 555 1166";
const ALICE = "+1 111 555 1111";
/** Callees in the operator's block 2222555 22xx. */
const BOB = ["+2 222 555 2251", "+2 222 555 2252", "+2 222 555 2253", "+2 222 555 2254"] as const;

let server: LocalServer;
let repo: CertRepository;
let pki: TestPki;
let callerCred: TestCredential;
let calleeOperator: TestCredential;
let discovery: Discovery;
let home: string;

/** `stir-oob args...` with the test's CLI home and this CPS. */
function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server?.url ?? "" });
}

async function registerKey(tn: string): Promise<CalleeKey> {
  return (await registerCalleeKey(server.url, calleeOperator, canonicalTn(tn), { label: "bob" })).key;
}

/** An AS with its own wallet of 5-use tokens (one token pays for several calls, so one can be revoked). */
function asWith(credential: SigningCredential) {
  const wallet = new TokenWallet({
    cpsUrl: server.url,
    usesPerToken: 5,
    authorization: () => bearerFor(callerCred, "tokens:issue", { audience: server.url }),
  });
  return new AuthenticationService({
    credential,
    discovery,
    tokens: walletTokens(wallet, { batch: 1 }),
    trustAnchors: [pki.root.certificate],
  });
}

function vsFor(key: CalleeKey) {
  return new VerificationService({
    keys: [key],
    trustAnchors: [pki.root.certificate],
    // The callee's device fetches the x5u from the same loopback repository the CPS uses.
    resolveCertificate: async (url) => {
      const res = await fetch(url);
      if (!res.ok) throw new CpsError("X5U_FETCH_FAILED", "x5u not served");
      return parseCertificateChain(await res.text());
    },
    discovery,
  });
}

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "range", start: "11115551100", count: 100 }] });
  callerCred = pki.valid;
  calleeOperator = await pki.issue({ tnAuthList: [{ type: "range", start: "22225552200", count: 100 }] });
  repo = await startCertRepository();
  // The CLI's demo CA, made before the CPS starts: the CPS trusts its root beside the library tests' root.
  let cliRoot: string;
  ({ home, rootPem: cliRoot } = await cliHomeWithCa("stir-oob-feedback-", {
    alice: "+1-111-555-1111",
    bob: "+2-222-555-2222",
    carol: "+3-333-555-3333",
  }));
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: `${pki.root.certificate.toString("pem")}\n${cliRoot}`,
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("e2e-feedback"),
      ALLOW_UNTOKENED_STORES: "false",
      ALLOW_LOOPBACK_X5U: "true",
      TOKEN_MAX_USES: "5",
    },
  });
  discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
});

afterAll(async () => {
  await server?.stop();
  await repo?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("§7.5 feedback over HTTP against `wrangler dev`", () => {
  it("a forged PASSporT, reported by the callee's VS, makes the paying token refuse its remaining uses", async () => {
    const bob = await registerKey(BOB[0]);
    const x5u = repo.serve("caller", callerCred.pem);
    // Mallory holds tokens and the x5u of a real certificate, but not its key: she signs with her own.
    const forger = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
    ])) as CryptoKeyPair;
    const mallory = asWith({ privateKey: forger.privateKey, x5u, chain: callerCred.pem });
    const placed = await mallory.placeCall({ from: MALLORY, to: BOB[0] });
    expect(placed.proceed).toBe(true);

    const vs = vsFor(bob);
    const result = await vs.verifyCall({ to: BOB[0], calling: MALLORY });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure?.code).toBe("PASSPORT_SIGNATURE");

    const outcomes = await vs.report(result);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ outcome: "revoked", cps: server.url });

    // The same token (4 uses left) pays for nothing more: the next call's store is refused.
    await registerKey(BOB[1]);
    const err = await mallory.placeCall({ from: MALLORY, to: BOB[1] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const codes = [(err as { code?: string }).code, (err as { cause?: { code?: string } }).cause?.code];
    expect(codes).toContain("TOKEN_REVOKED");

    // Reporting again (a replay) changes nothing.
    expect((await vs.report(result))[0]).toMatchObject({ outcome: "already" });
  });

  it("a genuine call reported anyway is refused (FEEDBACK_NOT_BOGUS); the caller's token keeps working", async () => {
    const bob = await registerKey(BOB[2]);
    const x5u = repo.serve("alice", callerCred.pem);
    const alice = asWith({ privateKey: callerCred.privateKey, x5u, chain: callerCred.pem });
    expect((await alice.placeCall({ from: ALICE, to: BOB[2] })).proceed).toBe(true);
    const vs = vsFor(bob);
    const result = await vs.verifyCall({ to: BOB[2], calling: ALICE });
    expect(result.verdict).toBe("verified");
    // Not reportable: nothing is sent unless forced; forced, the CPS judges it genuine.
    expect(await vs.report(result)).toEqual([]);
    const forced = await vs.report(result, { force: true });
    expect(forced[0]).toMatchObject({ outcome: "refused", code: "FEEDBACK_NOT_BOGUS" });
    await registerKey(BOB[3]);
    expect((await alice.placeCall({ from: ALICE, to: BOB[3] })).proceed).toBe(true);
  });

  it("a report with a secret that does not open the blob: 403 FEEDBACK_SECRET_INVALID over HTTP", async () => {
    const res = await fetch(`${server.url}/feedback`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tn: "22225552251", blob: "A".repeat(1430), secret: "A".repeat(43) }),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(((await res.json()) as { code: string }).code).toBe("FEEDBACK_SECRET_INVALID");
  });
});

describe("§7.5 feedback with the stir-oob CLI", () => {
  it("verify --report: a PASSporT for Carol stored under Bob's number is reported and its token revoked", async () => {
    for (const tn of ["+2-222-555-2222", "+3-333-555-3333"]) {
      expect((await cli("keygen", "--tn", tn)).code).toBe(0);
      const reg = await cli("keys", "register", "--tn", tn);
      expect(reg.code, reg.stderr).toBe(0);
    }
    expect((await cli("tokens", "fetch", "--count", "4")).code).toBe(0);
    // Alice calls Carol: a genuine PASSporT whose dest is Carol.
    const placed = await cli("place", "--from", "+1-111-555-1111", "--to", "+3-333-555-3333", "--json");
    expect(placed.code, placed.stderr).toBe(0);
    const passport = JSON.parse(placed.stdout).passport as string;
    // A gateway re-stores it under Bob's number (RFC 8816 §7.4: re-sealed to another callee).
    const identity = formatIdentityHeader({
      passport,
      info: decodePassport(passport).header.x5u,
      ppt: "shaken",
    });
    const misdirected = await cli("gateway", "store", "--identity", identity, "--to", "+2-222-555-2222");
    expect(misdirected.code, misdirected.stderr).toBe(0);

    const run = await cli(
      "verify",
      "--to",
      "+2-222-555-2222",
      "--calling",
      "+1-111-555-1111",
      "--report",
      "--json",
    );
    expect(run.code, run.stderr).toBe(1);
    const out = JSON.parse(run.stdout);
    expect(out.verdict).toBe("failed");
    expect(out.candidates[0].failure.code).toBe("DEST_MISMATCH");
    expect(out.reports).toEqual([expect.objectContaining({ outcome: "revoked" })]);

    // The human output of a second run says the token was already revoked.
    const again = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111", "--report");
    expect(again.code).toBe(1);
    expect(again.stdout).toContain("its token was already revoked");
  });
});
