/**
 * Cover traffic (RFC 8816 §7.4, §13) and decoy polling (§6.2, §13) against the real CPS under
 * `wrangler dev`, storage tokens required: the library AS with CoverTraffic and the VS with a
 * DecoyPoller, and the CLI (`stir-oob cover`, `verify --decoys`). Assertions are on what the CPS
 * received and answered: cover stores accepted only with a token (one per blob), held and listed like
 * real blobs, opening with nobody's key; decoy retrievals answered like the real one; verdicts unchanged.
 */
import "reflect-metadata";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, credentialFor, type LocalCredential, loadCalleeKeys } from "../../src/cli/home.js";
import { AuthenticationService } from "../../src/client/as.js";
import { CoverTraffic } from "../../src/client/cover.js";
import type { FetchLike } from "../../src/client/cps-client.js";
import { DecoyPoller } from "../../src/client/decoys.js";
import { Discovery } from "../../src/client/discovery.js";
import { type StoreTokenSource, untokenedStores, walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { parseCertificate } from "../../src/stir/cert-parse.js";
import { decodeEnvelope, ENVELOPE_LENGTH, openPassport } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, runCli } from "../helpers/cli.js";

const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");

let home: string;
let server: LocalServer;
let alice: LocalCredential;
let bobKeys: CalleeKey[];

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server?.url ?? "" });
}

/** fetch that records "METHOD path status" of every request (the CPS's answers). */
function recording(log: string[]): FetchLike {
  return async (input, init) => {
    const req = new Request(input, init);
    const res = await fetch(req);
    log.push(`${req.method} ${new URL(req.url).pathname} ${res.status}`);
    return res;
  };
}

/** Alice's wallet, counting the tokens spent (one per store it pays for). */
function aliceTokens(): { tokens: StoreTokenSource; spent: () => number } {
  const wallet = walletTokens(
    new TokenWallet({ cpsUrl: server.url, authorization: () => bearer(alice, server.url, "tokens:issue") }),
    { batch: 16 },
  );
  let spent = 0;
  return {
    spent: () => spent,
    tokens: {
      prefetch: (cps, n) => wallet.prefetch!(cps, n),
      headersForStore: async (cps, tn, blob) => {
        spent++;
        return wallet.headersForStore(cps, tn, blob);
      },
    },
  };
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-cover-"));
  const ca = await cli("ca", "init", "--issue", "alice=+1-111-555-1111", "--issue", "bob=+2-222-555-2222");
  expect(ca.code, ca.stderr).toBe(0);
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: await readFile(join(home, "ca/root.pem"), "utf8"),
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("cover-1"),
      ALLOW_UNTOKENED_STORES: "false",
    },
  });
  for (const label of ["bob-phone", "bob-desk"]) {
    const gen = await cli("keygen", "--tn", BOB, "--label", label);
    expect(gen.code, gen.stderr).toBe(0);
  }
  const reg = await cli("keys", "register", "--tn", BOB);
  expect(reg.code, reg.stderr).toBe(0);
  alice = await credentialFor(home, ALICE);
  bobKeys = (await loadCalleeKeys(home, BOB)).map((k) => k.key);
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("cover traffic over wrangler dev", () => {
  it("the AS's cover calls are paid, stored and listed like real ones, and open with nobody's key", async () => {
    const log: string[] = [];
    const { tokens, spent } = aliceTokens();
    const discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
    const cover = new CoverTraffic({ tokens, fetch: recording(log) });
    const as = new AuthenticationService({
      credential: { privateKey: alice.privateKey, x5u: alice.x5u, chain: alice.chain },
      discovery,
      tokens,
      trustAnchors: [parseCertificate(await readFile(join(home, "ca/root.pem"), "utf8"))],
      fetch: recording(log),
      cover,
    });
    await as.placeCall({ from: ALICE, to: BOB });
    expect(spent()).toBe(2); // Bob has two keys: two blobs, two tokens
    const targets = [];
    for (let i = 0; i < 3; i++) targets.push((await cover.coverCall())!);
    expect(spent()).toBe(2 + 3 * 2); // each cover call stores two blobs, like a call to Bob, one token each
    expect(cover.stats).toMatchObject({ realCalls: 1, coverCalls: 3, blobs: 6, failures: 0 });
    const stores = log.filter((l) => l.startsWith("POST /cps/"));
    expect(stores).toHaveLength(8);
    for (const s of stores) expect(s).toMatch(/^POST \/cps\/2222555\d{4}\/ppts 201$/);
    for (const t of targets) {
      expect(t.tn).toMatch(/^2222555\d{4}$/);
      expect(t.cpses).toEqual([server.url]);
      // The CPS holds them: its list for the number has at least the two cover blobs (plus its decoys).
      const res = await fetch(`${server.url}/cps/${t.tn}/ppts`);
      const { passports } = (await res.json()) as { passports: { id: string; blob: string }[] };
      expect(passports.length).toBeGreaterThanOrEqual(2);
      for (const p of passports) {
        const bytes = decodeEnvelope(p.blob);
        expect(bytes).toHaveLength(ENVELOPE_LENGTH);
        for (const k of bobKeys)
          await expect(openPassport(k.privateKey, canonicalTn(t.tn), bytes)).rejects.toThrow();
      }
    }
  });

  it("cover is not free: without a token the CPS refuses it as it refuses a real store", async () => {
    const cover = new CoverTraffic({
      tokens: untokenedStores,
      cps: server.url,
      numbers: () => "+2 222 555 2299",
      perHour: 1,
    });
    await expect(cover.coverCall()).rejects.toMatchObject({ code: "STORE_FAILED" });
    expect(cover.stats.failures).toBe(1);
  });

  it("stir-oob cover stores cover calls at random times, one token each, with a JSON line per call", async () => {
    const fetched = await cli("tokens", "fetch", "--count", "8", "--as", "alice");
    expect(fetched.code, fetched.stderr).toBe(0);
    const before = JSON.parse((await cli("tokens", "status", "--json")).stdout).tokens;
    // About two a second: a few seconds for three.
    const run = await cli(
      "cover",
      "--per-hour",
      "7200",
      "--to",
      "2222555xxxx",
      "--count",
      "3",
      "--as",
      "alice",
      "--json",
    );
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const calls = lines.filter((l) => l.cover);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    for (const c of calls) expect(c.cover).toMatch(/^2222555\d{4}$/);
    const done = lines.at(-1);
    expect(done, JSON.stringify(lines.filter((l) => l.error))).toMatchObject({ done: true, failures: 0 });
    const left = JSON.parse((await cli("tokens", "status", "--json")).stdout).tokens;
    expect(done.blobs).toBe(calls.length); // one blob per cover call (--copies 1)
    expect(left).toBe(before - done.blobs); // one token per blob
  });
});

describe("decoy polling over wrangler dev", () => {
  it("the VS's decoy retrievals are the real request to other numbers, all answered; the verdict is unchanged", async () => {
    const { tokens } = aliceTokens();
    const discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
    const root = parseCertificate(await readFile(join(home, "ca/root.pem"), "utf8"));
    const as = new AuthenticationService({
      credential: { privateKey: alice.privateKey, x5u: alice.x5u, chain: alice.chain },
      discovery,
      tokens,
      trustAnchors: [root],
    });
    await as.placeCall({ from: ALICE, to: BOB });
    const log: string[] = [];
    const decoys = new DecoyPoller({ own: [BOB], cps: server.url, fetch: recording(log), perRetrieval: 3 });
    const vs = new VerificationService({
      keys: bobKeys,
      trustAnchors: [root],
      resolveCertificate: async () => alice.chain,
      cps: server.url,
      fetch: recording(log),
      decoys,
    });
    const v = await vs.verifyCall({ to: BOB, calling: ALICE });
    await decoys.stop();
    expect(v.verdict).toBe("verified");
    const pool = decoys.plan.decoysFor(BOB);
    expect(log.sort()).toEqual([BOB, ...pool].map((n) => `GET /cps/${n}/ppts 200`).sort());
    // Every decoy answer carried entries (the CPS's dummies): the callee cannot tell them apart either.
    expect(decoys.stats.entries).toBeGreaterThanOrEqual(3);
    expect(decoys.stats.failures).toBe(0);
  });

  it("stir-oob verify --decoys verifies as without", async () => {
    const fetched = await cli("tokens", "fetch", "--count", "2", "--as", "alice");
    expect(fetched.code, fetched.stderr).toBe(0);
    const placed = await cli("place", "--from", ALICE, "--to", BOB);
    expect(placed.code, placed.stderr).toBe(0);
    const run = await cli("verify", "--to", BOB, "--calling", ALICE, "--decoys", "2");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("VERIFIED");
  });
});
