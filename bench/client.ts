/**
 * Client benchmarks, each beside its crypto floor measured in the same run:
 *
 * 1. AS place latency (RFC 8816 §8.1) against a real `wrangler dev` CPS with warm caches (discovery
 *    and keys cached, storage tokens already in the wallet, so a call pays signing, sealing, one token
 *    signature and the store round trip). Floor: ES256 sign + HPKE seal + K_temp Ed25519 sign of the
 *    same sizes, and a bare GET /health round trip to the same server.
 * 1b. The AS's cost per call of trusting no key directory (§11): today's path (exact `GET /keys/{tn}`,
 *    keys taken at the directory's word) against signed key records verified before sealing, looked
 *    up exactly and by prefix (2 open digits, the block holding NEIGHBOURS other numbers' keys), each
 *    cold (a new Discovery and AS per call: lookup, record check and chain validation every time) and
 *    warm (one AS: the block answer and its checked records cached). Interleaved per call, medians of
 *    the whole call and of its discover step (lookup + check), and ratios to today's path.
 * 2. VS bulk verification (§8.2, §5.5): 1,000 blobs for one number, 1 real, through
 *    VerificationService.verifyCall (decode, try every blob, steps 2-6, verdict), against the raw cost
 *    of the same blobs: one HPKE open attempt per blob plus one ES256 verify, at the same concurrency.
 *
 * Run: `npm run bench:client` (bench/client.mjs bundles this file with esbuild and runs it).
 * Env: SKIP_AS=1 runs only the VS part; SKIP_KEYS=1 skips part 1b. KEY_CALLS (calls per variant per
 * round in 1b, default 20), NEIGHBOURS (default 20). ROUNDS (default 5; the VS part runs 2 x ROUNDS alternating pairs), CALLS (AS calls per round, default 60), BLOBS (default 1000).
 */
import "reflect-metadata";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { AuthenticationService } from "../src/client/as.js";
import type { FetchLike } from "../src/client/cps-client.js";
import { Discovery } from "../src/client/discovery.js";
import type { StoreTokenSource } from "../src/client/store-tokens.js";
import { walletTokens } from "../src/client/store-tokens.js";
import { TokenWallet } from "../src/client/token-wallet.js";
import { VerificationService } from "../src/client/vs.js";
import { oneIssuerKeyVar } from "../src/dev/issuer-key.mjs";
import { freePort, REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";
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
import { signKeyRecord } from "../src/stir/signed-key-record.js";
import { generateTempKey, signStore } from "../src/stir/storage-token.js";
import { createTestPki } from "../src/stir/test-pki.js";
import { canonicalTn } from "../src/stir/tn.js";
import { closedLoop } from "./lib/closed-loop.mjs";
import { ascending, median, percentile } from "./lib/stats.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CALLS = Number(process.env.CALLS ?? 60);
const BLOBS = Number(process.env.BLOBS ?? 1000);
const KEY_CALLS = Number(process.env.KEY_CALLS ?? 20);
const NEIGHBOURS = Number(process.env.NEIGHBOURS ?? 20);
const CONCURRENCY = 64;
const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");
const X5U = "https://certs.example.test/alice.pem";

const log = (m: string) => process.stderr.write(`${m}\n`);

const pct = (xs: number[], p: number) => percentile(ascending(xs), p) ?? 0;
const r2 = (x: number) => Math.round(x * 100) / 100;

const pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE }] });
/** Bob's operator: the 100-number block 222255522xx, Bob and his neighbours. */
const bobOperator = await pki.issue({ tnAuthList: [{ type: "range", start: "22225552200", count: 100 }] });
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
// 1b. The AS's cost per call of checking key records, and of prefix lookups

interface KeyVariant {
  readonly name: string;
  /** Digits left open in the lookup (0: exact). */
  readonly open: number;
  /** Today's path: the directory's JWKs taken as they are (records stripped, unsigned accepted). */
  readonly today: boolean;
  /** Warm: one AS for every call; cold: a new Discovery and AS per call. */
  readonly warm: boolean;
}

const KEY_VARIANTS: readonly KeyVariant[] = [
  { name: "todayExactCold", open: 0, today: true, warm: false },
  { name: "todayExactWarm", open: 0, today: true, warm: true },
  { name: "signedExactCold", open: 0, today: false, warm: false },
  { name: "signedPrefixCold", open: 2, today: false, warm: false },
  { name: "signedPrefixWarm", open: 2, today: false, warm: true },
];

/** Removes `record` from every served key: the directory of before signed records. */
const unsignedDirectory: FetchLike = async (input, init) => {
  const res = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (!url.pathname.startsWith("/keys") || !res.ok) return res;
  const set = (await res.json()) as { keys: Record<string, unknown>[] };
  const keys = set.keys.map(({ record: _record, ...jwk }) => jwk);
  return Response.json({ ...set, keys }, { headers: res.headers });
};

async function keyPaths(cps: string, tokens: StoreTokenSource) {
  const make = (v: KeyVariant) =>
    new AuthenticationService({
      credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain },
      // Provisioned: no discovery round trip, so the figures are the key lookup and its check.
      discovery: new Discovery({
        provisioned: { cps },
        allowLoopbackHttp: true,
        lookupOpenDigits: v.open,
        ...(v.today ? { fetch: unsignedDirectory } : {}),
      }),
      tokens,
      ...(v.today ? { allowUnsignedKeys: true } : {}),
      trustAnchors: [pki.root.certificate],
    });
  const warm = new Map(KEY_VARIANTS.filter((v) => v.warm).map((v) => [v.name, make(v)]));
  const total = new Map(KEY_VARIANTS.map((v) => [v.name, [] as number[]]));
  const discover = new Map(KEY_VARIANTS.map((v) => [v.name, [] as number[]]));
  for (const as of warm.values()) await as.placeCall({ from: ALICE, to: BOB }); // fill the caches
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < KEY_CALLS; i++) {
      // Interleaved, rotating the order: a load change on the machine does not favour one variant.
      for (let j = 0; j < KEY_VARIANTS.length; j++) {
        const v = KEY_VARIANTS[(i + j) % KEY_VARIANTS.length] as KeyVariant;
        const as = warm.get(v.name) ?? make(v);
        const call = await as.placeCall({ from: ALICE, to: BOB });
        if (call.stored.length !== 1) throw new Error(`${v.name}: sealed to ${call.stored.length} keys`);
        total.get(v.name)?.push(call.timings.total);
        discover.get(v.name)?.push(call.timings.discover);
      }
    }
    log(
      `AS keys round ${round + 1}/${ROUNDS}: ${KEY_VARIANTS.map((v) => `${v.name} ${r2(median(total.get(v.name) ?? []))}`).join(", ")} ms`,
    );
  }
  const m = (map: Map<string, number[]>, name: string) => median(map.get(name) ?? []);
  const out: Record<string, unknown> = { callsPerVariant: ROUNDS * KEY_CALLS, neighbours: NEIGHBOURS };
  for (const v of KEY_VARIANTS) {
    const base = v.warm ? "todayExactWarm" : "todayExactCold";
    out[v.name] = {
      placeP50Ms: r2(m(total, v.name)),
      discoverP50Ms: r2(m(discover, v.name)),
      placeRatioToToday: r2(m(total, v.name) / m(total, base)),
      discoverRatioToToday: r2(m(discover, v.name) / m(discover, base)),
    };
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// 1. AS place latency against wrangler dev

let asResult: Record<string, unknown> = { skipped: true };
if (process.env.SKIP_AS !== "1") {
  log("starting wrangler dev ...");
  const server = await startLocalServer({
    // Its own inspector port: another wrangler dev on the machine must not make this one fail.
    args: ["--inspector-port", String(await freePort())],
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
    /** A signed key record for `tn` (RFC 8816 §11), registered with the operator's credential. */
    const register = async (tn: string, publicKey: Uint8Array) => {
      const now = Math.floor(Date.now() / 1000);
      const record = await signKeyRecord({
        publicKey,
        blocks: [tn],
        label: "bench",
        exp: now + 86_400,
        privateKey: bobOperator.privateKey,
        x5c: bobOperator.der,
      });
      const put = await fetch(`${server.url}/keys/${tn}`, {
        method: "PUT",
        headers: { "content-type": "application/json", authorization: await bearer(bobOperator, "keys:put") },
        body: JSON.stringify({ record }),
      });
      if (!put.ok) throw new Error(`key registration failed: ${put.status} ${await put.text()}`);
    };
    await register(BOB, bob.publicKey);
    // Other numbers of Bob's block: what a prefix lookup brings along (and the AS must ignore).
    for (let i = 0; i < NEIGHBOURS; i++) {
      await register(
        `222255522${String(i + (i >= 22 ? 1 : 0)).padStart(2, "0")}`,
        (await generateRecipientKeyPair()).publicKey,
      );
    }
    const wallet = new TokenWallet({
      cpsUrl: server.url,
      authorization: () => bearer(pki.valid, "tokens:issue"),
    });
    const keyCalls = process.env.SKIP_KEYS === "1" ? 0 : ROUNDS * KEY_CALLS * KEY_VARIANTS.length + 5;
    const total = ROUNDS * CALLS + 10 + keyCalls;
    log(`fetching ${total} storage tokens (client blinding is the slow part, ~35/s) ...`);
    await wallet.refill(total);
    const discovery = new Discovery({ bootstrap: server.url, allowLoopbackHttp: true });
    const tokens = walletTokens(wallet, { batch: 32 });
    const as = new AuthenticationService({
      credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain },
      discovery,
      tokens,
      trustAnchors: [pki.root.certificate],
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
      ...(process.env.SKIP_KEYS === "1" ? {} : { keys: await keyPaths(server.url, tokens) }),
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
  // The same blobs are verified round after round: without this the replay cache says REPLAYED.
  allowForking: true,
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
