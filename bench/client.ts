/**
 * Client benchmarks, each beside its crypto floor measured in the same run:
 *
 * 1. AS place latency (RFC 8816 §8.1) against a real `wrangler dev` CPS with warm caches (discovery
 *    and keys cached, storage tokens already in the wallet, so a call pays signing, sealing, one token
 *    signature and the store round trip). Floor: ES256 sign + HPKE seal + K_temp Ed25519 sign of the
 *    same sizes, and a bare GET /health round trip to the same server.
 * 2. VS bulk verification (§8.2, §5.5): 1,000 blobs for one number, 1 real, through
 *    VerificationService.verifyCall (decode, try every blob, steps 2-6, verdict), against the raw cost
 *    of the same blobs: one HPKE open attempt per blob plus one ES256 verify, at the same concurrency.
 *
 * Run: `npm run bench:client` (bench/client.mjs bundles this file with esbuild and runs it).
 * Env: SKIP_AS=1 runs only the VS part. ROUNDS (default 5; the VS part runs 2 x ROUNDS alternating pairs), CALLS (AS calls per round, default 60), BLOBS (default 1000).
 */
import "reflect-metadata";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { AuthenticationService } from "../src/client/as.js";
import { Discovery } from "../src/client/discovery.js";
import { walletTokens } from "../src/client/store-tokens.js";
import { TokenWallet } from "../src/client/token-wallet.js";
import { VerificationService } from "../src/client/vs.js";
import { oneIssuerKeyVar } from "../src/dev/issuer-key.mjs";
import { REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";
import { encodeBase64url } from "../src/stir/base64url.js";
import { parseCertificateChain } from "../src/stir/cert-parse.js";
import { issueCredentialToken } from "../src/stir/credential-token.js";
import {
  envelopeInfo,
  envelopeSuite,
  generateRecipientKeyPair,
  makeDummy,
  sealPassport,
} from "../src/stir/envelope.js";
import { createPassport } from "../src/stir/passport.js";
import { generateTempKey, signStore } from "../src/stir/storage-token.js";
import { createTestPki } from "../src/stir/test-pki.js";
import { canonicalTn } from "../src/stir/tn.js";
import { closedLoop } from "./lib/closed-loop.mjs";
import { ascending, median, percentile } from "./lib/stats.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CALLS = Number(process.env.CALLS ?? 60);
const BLOBS = Number(process.env.BLOBS ?? 1000);
const CONCURRENCY = 64;
const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");
const X5U = "https://certs.example.test/alice.pem";

const log = (m: string) => process.stderr.write(`${m}\n`);

const pct = (xs: number[], p: number) => percentile(ascending(xs), p) ?? 0;
const r2 = (x: number) => Math.round(x * 100) / 100;

const pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE }] });
const bobOperator = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB }] });
const bob = await generateRecipientKeyPair();
const chain = await parseCertificateChain(pki.valid.pem);
/** A fresh SHAKEN PASSporT from ALICE to BOB, signed with the test PKI's credential. */
const alicePassport = () =>
  createPassport(
    {
      x5u: X5U,
      ppt: "shaken",
      claims: {
        attest: "A",
        dest: { tn: [BOB] },
        iat: Math.floor(Date.now() / 1000),
        orig: { tn: ALICE },
        origid: crypto.randomUUID(),
      },
    },
    pki.valid.privateKey,
  );

// ------------------------------------------------------------------------------------------------
// 1. AS place latency against wrangler dev

let asResult: Record<string, unknown> = { skipped: true };
if (process.env.SKIP_AS !== "1") {
  log("starting wrangler dev ...");
  const server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("bench-1"),
      ALLOW_UNTOKENED_STORES: "false",
      KEYS_CACHE_SECONDS: "3600",
    },
  });
  try {
    const bearer = async (cred: typeof pki.valid, action: string) =>
      `Bearer ${await issueCredentialToken({ privateKey: cred.privateKey, x5c: cred.der, audience: server.url, action })}`;
    const put = await fetch(`${server.url}/keys/${BOB}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: await bearer(bobOperator, "keys:put") },
      body: JSON.stringify({
        jwk: { kty: "OKP", crv: "X25519", x: encodeBase64url(bob.publicKey) },
        label: "bench",
      }),
    });
    if (!put.ok) throw new Error(`key registration failed: ${put.status} ${await put.text()}`);
    const wallet = new TokenWallet({
      cpsUrl: server.url,
      authorization: () => bearer(pki.valid, "tokens:issue"),
    });
    const total = ROUNDS * CALLS + 10;
    log(`fetching ${total} storage tokens (client blinding is the slow part, ~35/s) ...`);
    await wallet.refill(total);
    const discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
    const as = new AuthenticationService({
      credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain },
      discovery,
      tokens: walletTokens(wallet, { batch: 32 }),
    });
    for (let i = 0; i < 10; i++) await as.placeCall({ from: ALICE, to: BOB }); // warm caches and the DO

    const place: number[] = [];
    const steps: Record<string, number[]> = {};
    const floorCrypto: number[] = [];
    const floorHttp: number[] = [];
    const kTemp = await generateTempKey("Ed25519");
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < CALLS; i++) {
        const call = await as.placeCall({ from: ALICE, to: BOB });
        place.push(call.timings.total);
        for (const [k, v] of Object.entries(call.timings)) {
          steps[k] = [...(steps[k] ?? []), v];
        }
        // Floor, interleaved: the crypto a call cannot avoid, and one bare HTTP round trip.
        let t = performance.now();
        const jws = await alicePassport();
        const blob = await sealPassport(bob.publicKey, BOB, jws);
        await signStore(kTemp.privateKey, BOB, blob);
        floorCrypto.push(performance.now() - t);
        t = performance.now();
        const res = await fetch(`${server.url}/health`);
        await res.arrayBuffer();
        floorHttp.push(performance.now() - t);
      }
      log(`AS round ${round + 1}/${ROUNDS}: p50 ${r2(median(place.slice(-CALLS)))} ms`);
    }
    asResult = {
      calls: place.length,
      placeP50Ms: r2(median(place)),
      placeP99Ms: r2(pct(place, 99)),
      stepsP50Ms: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, r2(median(v))])),
      floorCryptoP50Ms: r2(median(floorCrypto)),
      floorHealthRoundTripP50Ms: r2(median(floorHttp)),
      floorSumP50Ms: r2(median(floorCrypto) + median(floorHttp)),
    };
  } finally {
    await server.stop();
  }
}

// ------------------------------------------------------------------------------------------------
// 2. VS bulk verification: BLOBS blobs for one number, one real

log(`sealing ${BLOBS - 1} dummies and 1 real blob ...`);
const realJws = await alicePassport();
const blobs: { id: string; blob: string }[] = [];
for (let i = 0; i < BLOBS - 1; i++) blobs.push({ id: `d${i}`, blob: encodeBase64url(await makeDummy(BOB)) });
blobs.splice(Math.floor(BLOBS / 2), 0, {
  id: "real",
  blob: encodeBase64url(await sealPassport(bob.publicKey, BOB, realJws)),
});
const bytes = blobs.map((b) =>
  Uint8Array.from(atob(b.blob.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
);

const vs = new VerificationService({
  keys: [{ kid: "bob", privateKey: bob.keyPair }],
  trustAnchors: [pki.root.certificate],
  resolveCertificate: async () => chain,
  cps: "https://unused.invalid",
  concurrency: CONCURRENCY,
});
const info = envelopeInfo(BOB);
const leafKey =
  (await vs.verifyCall({ to: BOB, calling: ALICE, blobs })).verdict === "verified"
    ? pki.valid.publicKey
    : undefined;
if (!leafKey) throw new Error("the VS did not verify the real blob");

/** Raw floor: one HPKE open attempt per blob (the one real opens) + one ES256 verify, same concurrency. */
async function raw(concurrency: number): Promise<number> {
  let opened = 0;
  await closedLoop(bytes.length, concurrency, async (i) => {
    const blob = bytes[i] as Uint8Array;
    try {
      await envelopeSuite.open(
        { recipientKey: bob.keyPair, enc: blob.subarray(0, 32), info },
        blob.subarray(32),
      );
      opened++;
    } catch {
      // a dummy
    }
  });
  const [h, p, s] = realJws.split(".");
  const sig = Uint8Array.from(atob((s ?? "").replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const ok = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    leafKey as CryptoKey,
    sig,
    new TextEncoder().encode(`${h}.${p}`),
  );
  if (opened !== 1 || !ok) throw new Error("raw floor did not open/verify exactly the real blob");
  return opened;
}

/** Wall time and process CPU time (all threads: WebCrypto runs in libuv's pool) of one run, ms. */
async function measure(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

const runVs = async () => {
  const v = await vs.verifyCall({ to: BOB, calling: ALICE, blobs });
  if (v.verdict !== "verified" || v.opened !== 1) throw new Error("VS verdict changed");
};
const vsRuns: { wall: number; cpu: number }[] = [];
const rawRuns: { wall: number; cpu: number }[] = [];
const rawSeqRuns: { wall: number; cpu: number }[] = [];
await raw(CONCURRENCY); // warm-up
await runVs();
for (let round = 0; round < ROUNDS * 2; round++) {
  // Alternate the order, so a load change on the shared machine does not always favour one side.
  if (round % 2 === 0) {
    vsRuns.push(await measure(runVs));
    rawRuns.push(await measure(() => raw(CONCURRENCY)));
  } else {
    rawRuns.push(await measure(() => raw(CONCURRENCY)));
    vsRuns.push(await measure(runVs));
  }
  rawSeqRuns.push(await measure(() => raw(1)));
  const v = vsRuns.at(-1);
  const r = rawRuns.at(-1);
  log(
    `VS round ${round + 1}/${ROUNDS * 2}: VS ${Math.round(BLOBS / ((v?.wall ?? 1) / 1000))} blobs/s, raw ${Math.round(BLOBS / ((r?.wall ?? 1) / 1000))} blobs/s`,
  );
}
const perSec = (runs: { wall: number; cpu: number }[], k: "wall" | "cpu") =>
  runs.map((x) => BLOBS / (x[k] / 1000));
const ratio = (k: "wall" | "cpu") => vsRuns.map((v, i) => (rawRuns[i]?.[k] ?? 0) / v[k]);
const vsResult = {
  blobs: BLOBS,
  real: 1,
  concurrency: CONCURRENCY,
  runs: vsRuns.length,
  vsBlobsPerSecWallMedian: Math.round(median(perSec(vsRuns, "wall"))),
  rawBlobsPerSecWallMedian: Math.round(median(perSec(rawRuns, "wall"))),
  rawSequentialBlobsPerSecWallMedian: Math.round(median(perSec(rawSeqRuns, "wall"))),
  vsBlobsPerCpuSecMedian: Math.round(median(perSec(vsRuns, "cpu"))),
  rawBlobsPerCpuSecMedian: Math.round(median(perSec(rawRuns, "cpu"))),
  ratioWallMedian: r2(median(ratio("wall"))),
  ratioCpuMedian: r2(median(ratio("cpu"))),
  ratioCpuMin: r2(Math.min(...ratio("cpu"))),
};

const machine = {
  node: process.version,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  wrangler: JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
  date: new Date().toISOString(),
  rounds: ROUNDS,
};
process.stdout.write(`${JSON.stringify({ machine, as: asResult, vs: vsResult }, null, 2)}\n`);
