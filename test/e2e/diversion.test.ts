/**
 * Diverted calls end to end (issue 17 item 1; RFC 8946 `div` §3 and `div-o` §5, RFC 8816 §6.2 last
 * paragraph): the client library and the `stir-oob` CLI against the real CPS under `wrangler dev`,
 * over HTTP, with storage tokens required for every store (the diverting service pays too).
 * Alice calls Carol, Carol's service forwards the call to Bob (and, in one case, Bob's on to Dave);
 * each callee's VS verifies what it finds. Each case uses its own numbers, so no case's blobs decide
 * another's verdict. The three wrong verdicts of the issue are the cases marked (1), (2), (3).
 */
import "reflect-metadata";
import { rm } from "node:fs/promises";
import { CompactSign } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { DivertingService } from "../../src/client/divert.js";
import { sealAndStore } from "../../src/client/placement.js";
import { walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { jwkThumbprint } from "../../src/stir/key-records.js";
import { createPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, cliHomeWithCa, runCli } from "../helpers/cli.js";
import { registerCalleeKey } from "../helpers/key-records.js";
import { bearerFor } from "../helpers/pki.js";
import { x5uMap } from "../helpers/x5u.js";

const ALICE = canonicalTn("+1 111 555 1111");
/** Callee numbers, all in the operator's block 3333555 01xx; `n(k)` is the k-th. */
const n = (k: number) => canonicalTn(`3333555${String(100 + k).padStart(4, "0")}`);

let server: LocalServer;
let pki: TestPki;
/** Registers the callees' keys: covers the whole block. */
let operator: TestCredential;
/** Forwarding services: each covers the block (the numbers its customers divert from). */
let forwarder: TestCredential;
let home: string;
let discovery: Discovery;
let tokens: ReturnType<typeof walletTokens>;
const keys = new Map<string, { key: CalleeKey; publicKey: Uint8Array }>();
/** The test's certificate "repository" (a real VS fetches https). */
const { signing, resolveCertificate } = x5uMap();

const bearer = (cred: TestCredential, action: string) => bearerFor(cred, action, { audience: server.url });

/** A callee key for `tn`, registered in the CPS's directory as a record signed by the operator. */
async function registerKey(tn: CanonicalTn): Promise<CalleeKey> {
  const registered = await registerCalleeKey(server.url, operator, tn, { label: `k${tn}` });
  keys.set(tn, registered);
  return registered.key;
}

const vsFor = (tn: CanonicalTn) =>
  new VerificationService({
    keys: [(keys.get(tn) as { key: CalleeKey }).key],
    trustAnchors: [pki.root.certificate],
    resolveCertificate,
    discovery,
    supportedPpt: ["shaken", "div", "div-o"],
  });

const aliceAs = () =>
  new AuthenticationService({
    credential: signing("alice", pki.valid),
    discovery,
    tokens,
    trustAnchors: [pki.root.certificate],
  });

const diverter = (name: string) =>
  new DivertingService({
    credential: signing(name, forwarder),
    discovery,
    tokens,
    trustAnchors: [pki.root.certificate],
    resolveCertificate,
  });

/** Seals `passports` to `tn`'s key and stores them, paying tokens: a storer that is not ours. */
async function storeRaw(tn: CanonicalTn, passports: string[]) {
  const { publicKey } = keys.get(tn) as { publicKey: Uint8Array };
  await sealAndStore({
    cps: server.url,
    tn,
    passports,
    keys: [{ kid: await jwkThumbprint(publicKey), publicKey }],
    tokens,
  });
}

const now = () => Math.floor(Date.now() / 1000);

function original(to: CanonicalTn): Promise<string> {
  return createPassport(
    {
      x5u: signing("alice", pki.valid).x5u,
      ppt: "shaken",
      claims: { attest: "A", dest: { tn: [to] }, iat: now(), orig: { tn: ALICE }, origid: "e2e" },
    },
    pki.valid.privateKey,
  );
}

/** A diversion PASSporT signed as written (a malformed one too). */
async function rawDiv(name: string, cred: TestCredential, claims: Record<string, unknown>): Promise<string> {
  const { x5u } = signing(name, cred);
  return new CompactSign(
    new TextEncoder().encode(JSON.stringify({ iat: now(), orig: { tn: ALICE }, ...claims })),
  )
    .setProtectedHeader({ alg: "ES256", ppt: "div", typ: "passport", x5u })
    .sign(cred.privateKey);
}

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server.url });
}

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE }] });
  operator = await pki.issue({
    tnAuthList: [{ type: "range", start: n(0), count: 100 }],
    subject: "operator",
  });
  forwarder = await pki.issue({
    tnAuthList: [{ type: "range", start: n(0), count: 100 }],
    subject: "forwarding-service",
  });
  // The CLI's demo CA for the CLI case: its own callers and callees, trusted by the CPS too.
  let cliRoot: string;
  ({ home, rootPem: cliRoot } = await cliHomeWithCa("stir-oob-divert-", {
    alice: "+1-111-555-1111",
    carol: `+${n(50)}`,
    bob: `+${n(51)}`,
  }));
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: `${pki.root.certificate.toString("pem")}\n${cliRoot}`,
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("divert-1"),
      ALLOW_UNTOKENED_STORES: "false",
    },
  });
  discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
  const wallet = new TokenWallet({
    cpsUrl: server.url,
    authorization: () => bearer(pki.valid, "tokens:issue"),
  });
  tokens = walletTokens(wallet, { batch: 16, lowWater: 4 });
  await tokens.prefetch?.(server.url, 16);
});

afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("diverted calls over HTTP against `wrangler dev` (library)", () => {
  it("(1) Alice -> Carol forwarded to Bob with div-o: Bob verifies it end to end (was no-passport)", async () => {
    const [carol, bob] = [n(1), n(2)];
    await registerKey(carol);
    await registerKey(bob);
    await aliceAs().placeCall({ from: ALICE, to: carol });
    // The PASSporT is sealed to Carol under Carol's number: forwarding alone leaves Bob nothing.
    expect((await vsFor(bob).verifyCall({ to: bob, calling: ALICE })).verdict).toBe("no-passport");
    const atCarol = await vsFor(carol).verifyCall({ to: carol, calling: ALICE });
    expect(atCarol.verdict).toBe("verified");
    const d = await diverter("carol-fwd").divert({ call: atCarol, to: bob });
    expect(d.kind).toBe("div-o");
    expect(d.stored).toHaveLength(1); // the original rides inside, in `opt`
    const atBob = await vsFor(bob).verifyCall({ to: bob, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    expect(atBob.diversion?.via).toEqual([carol]);
    expect(atBob.diversion?.links.map((l) => l.kind)).toEqual(["div-o", "original"]);
    expect(atBob.verified?.signer).toContain("forwarding-service");
    expect(atBob.examined).toBeGreaterThan(atBob.opened); // the CPS's dummies came along
  });

  it("Alice -> Carol forwarded to Bob with div: the original stored beside; a replay is REPLAYED", async () => {
    const [carol, bob] = [n(3), n(4)];
    await registerKey(carol);
    await registerKey(bob);
    await aliceAs().placeCall({ from: ALICE, to: carol });
    const atCarol = await vsFor(carol).verifyCall({ to: carol, calling: ALICE });
    const d = await diverter("carol-fwd").divert({ call: atCarol, to: bob, kind: "div" });
    expect(d.stored).toHaveLength(2);
    const bobVs = vsFor(bob);
    const atBob = await bobVs.verifyCall({ to: bob, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    expect(atBob.diversion?.links.map((l) => [l.kind, l.from ?? null])).toEqual([
      ["div", carol],
      ["original", null],
    ]);
    expect(atBob.candidates.find((c) => !c.ok)?.failure?.code).toBe("DIVERSION_LINK");
    // The same chain presented for a second call: every PASSporT of it was claimed by the first.
    const again = await bobVs.verifyCall({ to: bob, calling: ALICE });
    expect(again.verdict).toBe("failed");
    expect(again.candidates.map((c) => c.failure?.code)).toContain("REPLAYED");
  });

  it("a chain of two diversions, Alice -> Carol -> Bob -> Dave", async () => {
    const [carol, bob, dave] = [n(5), n(6), n(7)];
    for (const tn of [carol, bob, dave]) await registerKey(tn);
    await aliceAs().placeCall({ from: ALICE, to: carol });
    const atCarol = await vsFor(carol).verifyCall({ to: carol, calling: ALICE });
    await diverter("carol-fwd").divert({ call: atCarol, to: bob });
    const atBob = await vsFor(bob).verifyCall({ to: bob, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    const second = await diverter("bob-fwd").divert({ call: atBob, to: dave });
    expect(second.kind).toBe("div"); // a div-o nesting a div-o does not fit one envelope
    const atDave = await vsFor(dave).verifyCall({ to: dave, calling: ALICE });
    expect(atDave.verdict).toBe("verified");
    expect(atDave.diversion?.via).toEqual([carol, bob]);
    expect(atDave.diversion?.links.map((l) => l.kind)).toEqual(["div", "div-o", "original"]);
  });

  it("(2) a properly signed div from another storer, with the original: verified (was step 4)", async () => {
    const [carol, bob] = [n(8), n(9)];
    await registerKey(bob);
    const div = await rawDiv("other-fwd", forwarder, { dest: { tn: [bob] }, div: { tn: carol } });
    await storeRaw(bob, [div, await original(carol)]);
    const atBob = await vsFor(bob).verifyCall({ to: bob, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    expect(atBob.verified?.passport).toBe(div);
    expect(atBob.diversion?.via).toEqual([carol]);
  });

  it("(3) a div whose div claim is the nonsense 12345: failed (was verified)", async () => {
    const bob = n(10);
    await registerKey(bob);
    const div = await rawDiv("alice", pki.valid, { dest: { tn: [bob] }, div: "12345" });
    await storeRaw(bob, [div]);
    const atBob = await vsFor(bob).verifyCall({ to: bob, calling: ALICE });
    expect(atBob.verdict).toBe("failed");
    expect(atBob.candidates[0]?.failure).toMatchObject({ step: 2, code: "PASSPORT_CLAIMS" });
  });
});

describe("stir-oob divert and verify (CLI)", () => {
  it("Alice calls Carol, `divert` forwards to Bob, `verify` at Bob shows the path; a replay fails", async () => {
    const [carol, bob] = [`+${n(50)}`, `+${n(51)}`];
    for (const tn of [carol, bob]) {
      const gen = await cli("keygen", "--tn", tn);
      expect(gen.code, gen.stderr).toBe(0);
      const reg = await cli("keys", "register", "--tn", tn);
      expect(reg.code, reg.stderr).toBe(0);
    }
    const fetched = await cli("tokens", "fetch", "--count", "4", "--as", "alice");
    expect(fetched.code, fetched.stderr).toBe(0);
    const place = await cli("place", "--from", "+1-111-555-1111", "--to", carol);
    expect(place.code, place.stderr).toBe(0);

    const divert = await cli("divert", "--from", carol, "--to", bob, "--calling", "+1-111-555-1111");
    expect(divert.code, divert.stderr).toBe(0);
    expect(divert.stdout).toContain("CALL DIVERTED");
    expect(divert.stdout).toContain("div-o PASSporT signed by carol");

    const verify = await cli("verify", "--to", bob, "--calling", "+1-111-555-1111");
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain("VERIFIED");
    expect(verify.stdout).toContain(`diverted: +11115551111 → ${carol} → ${bob}`);

    const json = await cli("verify", "--to", bob, "--calling", "+1-111-555-1111", "--json");
    expect(json.code).toBe(1); // the same chain, a second call: REPLAYED
    expect(JSON.stringify(JSON.parse(json.stdout).candidates)).toContain("REPLAYED");
  });

  it("divert refuses to forward a call that does not verify at --from (nothing stored)", async () => {
    const run = await cli(
      "divert",
      "--from",
      `+${n(50)}`,
      "--to",
      `+${n(51)}`,
      "--calling",
      "+1-111-555-9999",
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("NOT DIVERTED");
  });
});
