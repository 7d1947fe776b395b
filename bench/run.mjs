#!/usr/bin/env node
/**
 * `npm run bench`: CPS throughput and latency over real HTTP against `wrangler dev` on workerd, each
 * scenario beside a bare Durable Object baseline (/_bench/baseline, the bench Worker of
 * bench/wrangler.toml, run by its own `wrangler dev` beside the CPS's; no bench code is in the CPS)
 * doing the same number of writes or reads over the same key spread, in the same run, rounds
 * interleaved.
 *
 *   npm run bench -- [--rounds 5] [--requests 1500] [--concurrency 16] [--out bench/results/x.json]
 *
 * Scenarios (CPS route vs baseline route):
 *   store-hot        POST /cps/{tn}/ppts            vs POST /_bench/baseline/{key}
 *                    one hot number at a time, replaced every 900 stores (under the 1,000-live cap)
 *   store-spread     the same, each request to a random one of 10,000 numbers
 *   retrieve-hot     GET /cps/{tn}/ppts, tn holds 3 blobs (+1-3 dummies sealed per answer)
 *                    vs GET /_bench/baseline/{key}/{id}, key holds 3 rows
 *   retrieve-spread  the same over 10,000 numbers holding nothing (the CPS still seals 1-3 dummies)
 *   store-token      POST /cps/{tn}/ppts paid with a storage token (both signature checks and the
 *                    TokenLedger spend) vs the same store without one, random one of 10,000 numbers,
 *                    one fresh token per store (target >= 0.8; issue #4). Tokens are minted ahead of
 *                    each round with the issuer key (mintToken: the signature blind issuance yields),
 *                    as a wallet holds them ahead of calls.
 *
 *   relay-call       a call (store + retrieval of one number) through the Oblivious HTTP relay vs
 *                    the same call direct (bench/ohttp.mjs, run after the others in its own pair of
 *                    servers: the CPS with its gateway, and the relay Worker; docs/ohttp.md)
 *
 *   atis-call        a call the ATIS way (POST then GET /passports/{DEST}/{ORIG}: access tokens and the
 *                    PASSporT verified, stored in plaintext) vs the RFC 8816 way (POST then GET
 *                    /cps/{tn}/ppts), the same number of calls, rounds interleaved (bench/atis.mjs, its
 *                    own CPS server; docs/atis-api.md); run after the scenarios above, before relay-call
 *
 *   metrics-cost     store-hot with the operator's figures counted (METRICS=on) vs not (off), two
 *                    servers, rounds interleaved (bench/metrics.mjs; docs/metrics.md); only with --only
 *
 * `--only store-token,store-hot` runs just those scenarios.
 *
 * Blobs are real envelopes: src/stir/envelope.ts is bundled with esbuild and seals 200 distinct ones.
 * Progress goes to stderr, the table to stdout, the full figures to bench/results/bench-<date>.json.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateIssuerKeyEntry } from "../src/dev/issuer-key.mjs";
import { REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { httpLoad } from "./lib/closed-loop.mjs";
import { issuerSigningKey } from "./lib/issuer-key.mjs";
import { machine } from "./lib/machine.mjs";
import { fmt, markdownTable, progressLog, writeJson } from "./lib/report.mjs";
import { median, prng } from "./lib/stats.mjs";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "500" },
    concurrency: { type: "string", default: "16" },
    blobs: { type: "string", default: "200" },
    out: { type: "string" },
    "persist-to": { type: "string" },
    only: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(
    "npm run bench -- [--rounds N] [--requests N] [--concurrency N] [--blobs N] [--only a,b] [--out FILE]",
  );
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const REQUESTS = positive(flags, "requests");
const CONCURRENCY = positive(flags, "concurrency");
const BLOBS = positive(flags, "blobs");
const SPREAD = 10_000;
const HOT_SEGMENT = 900; // stores per hot number before the next one: under MAX_LIVE_PER_NUMBER (1,000)
const HOT_BLOBS = 3;
const TARGET_RATIO = 0.7;
const TOKEN_TARGET_RATIO = 0.8;
const ISSUER_KEY_ID = "bench-1";
/** The bench Worker: the bare Durable Object baseline, beside the CPS (never part of it). */
const BENCH_WORKER_CONFIG = "bench/wrangler.toml";

const progress = progressLog("bench");

// ---------------------------------------------------------------------------------------------
// Sealed blobs, made once with the project's own envelope code.

async function sealBlobs(count) {
  const m = await importBundle({
    name: "bench-seal",
    source: `
        export { encodeEnvelope, generateRecipientKeyPair, makeDummy, sealPassport } from "./src/stir/envelope.ts";
        export { canonicalTn } from "./src/stir/tn.ts";
        export { decodeEnvelope } from "./src/stir/envelope.ts";
        export { encodeBase64url } from "./src/stir/base64url.ts";
        export { encodeStorageToken, mintToken, signStore } from "./src/stir/storage-token.ts";
        export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
  });
  // Sealed for one number: the CPS cannot tell which number a blob was sealed for (that is the
  // point of the envelope), so storing them under other numbers costs it exactly the same.
  const tn = m.canonicalTn("15550100000");
  const callee = await m.generateRecipientKeyPair();
  const blobs = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    blobs.push(m.encodeEnvelope(await m.sealPassport(callee.publicKey, tn, m.RFC8816_EXAMPLE_PASSPORT)));
  }
  const sealUs = ((performance.now() - t0) * 1000) / count;
  // What one dummy costs (a throwaway key pair plus a seal), here on Node: the CPS pays this 1-3
  // times per retrieval, in workerd, on the same kind of WebCrypto X25519.
  const t1 = performance.now();
  for (let i = 0; i < count; i++) await m.makeDummy(tn);
  const dummyUs = ((performance.now() - t1) * 1000) / count;
  return { blobs, sealUs, dummyUs, m };
}

/** `count` stores to random numbers, each with the headers of a freshly minted one-use token. */
async function tokenStores(m, issuerKey, round, blobs) {
  const keys = randomKeys(1000 + round, "1555060", SPREAD);
  return Promise.all(
    keys.map(async (tn, i) => {
      const blob = blobs[i % blobs.length];
      const { token, privateKey } = await m.mintToken(issuerKey, ISSUER_KEY_ID);
      const sig = await m.signStore(privateKey, m.canonicalTn(tn), m.decodeEnvelope(blob));
      return {
        tn,
        blob,
        headers: { "CPS-Token": m.encodeStorageToken(token), "CPS-Token-Signature": m.encodeBase64url(sig) },
      };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Load generation: a fixed number of requests, at most CONCURRENCY in flight.

/** Runs `count` requests at CONCURRENCY; request i is `makeRequest(i)` -> [url, init, expectedStatus]. */
const load = (count, makeRequest) => httpLoad(count, CONCURRENCY, makeRequest);

// ---------------------------------------------------------------------------------------------
// Scenarios. Numbers are 11-digit E.164 strings in disjoint ranges per scenario.

function buildScenarios(url, baselineUrl, blobs, tokens) {
  const post = (body) => ({
    method: "POST",
    headers: { "Content-Type": "application/passport" },
    body,
  });
  const blob = (i) => blobs[i % blobs.length];
  let hotCounter = 0; // every store-hot round starts on fresh hot numbers
  let retrieveHotCounter = 0;

  return [
    {
      name: "store-hot",
      what: `POST, one hot number at a time (new one every ${HOT_SEGMENT} stores)`,
      async prepare() {
        const base = hotCounter;
        hotCounter += Math.ceil(REQUESTS / HOT_SEGMENT);
        const tn = (i) => `1555020${String(base + Math.floor(i / HOT_SEGMENT)).padStart(4, "0")}`;
        return {
          cps: (i) => [`${url}/cps/${tn(i)}/ppts`, post(blob(i)), 201],
          baseline: (i) => [`${baselineUrl}/_bench/baseline/${tn(i)}`, post(blob(i)), 201],
        };
      },
    },
    {
      name: "store-spread",
      what: `POST, random one of ${SPREAD.toLocaleString("en")} numbers`,
      async prepare(round) {
        const keys = randomKeys(round, "1555030", SPREAD);
        return {
          cps: (i) => [`${url}/cps/${keys[i]}/ppts`, post(blob(i)), 201],
          baseline: (i) => [`${baselineUrl}/_bench/baseline/${keys[i]}`, post(blob(i)), 201],
        };
      },
    },
    {
      name: "retrieve-hot",
      what: `GET list, one number holding ${HOT_BLOBS} blobs (baseline: read 1 of ${HOT_BLOBS} rows)`,
      async prepare() {
        // A fresh number per round, so it holds exactly HOT_BLOBS live blobs whatever the TTL did.
        const tn = `1555040${String(retrieveHotCounter++).padStart(4, "0")}`;
        const ids = [];
        for (let k = 0; k < HOT_BLOBS; k++) {
          await mustStore(`${url}/cps/${tn}/ppts`, post(blob(k)));
          ids.push((await mustStore(`${baselineUrl}/_bench/baseline/${tn}`, post(blob(k)))).id);
        }
        return {
          cps: () => [`${url}/cps/${tn}/ppts`, undefined, 200],
          baseline: (i) => [`${baselineUrl}/_bench/baseline/${tn}/${ids[i % ids.length]}`, undefined, 200],
        };
      },
    },
    {
      name: "retrieve-spread",
      what: `GET list, random one of ${SPREAD.toLocaleString("en")} numbers holding nothing (baseline: read a missing row)`,
      async prepare(round) {
        const keys = randomKeys(round, "1555050", SPREAD);
        const missing = "0".repeat(32);
        return {
          cps: (i) => [`${url}/cps/${keys[i]}/ppts`, undefined, 200],
          baseline: (i) => [`${baselineUrl}/_bench/baseline/${keys[i]}/${missing}`, undefined, 404],
        };
      },
    },
    {
      name: "store-token",
      what: `POST with a storage token vs the same store without, random one of ${SPREAD.toLocaleString("en")} numbers`,
      target: TOKEN_TARGET_RATIO,
      baselineRoute: "store without token",
      async prepare(round) {
        const stores = await tokens(round);
        // The baseline stores the same blobs to other numbers of the same spread, with no token.
        const plain = randomKeys(2000 + round, "1555070", SPREAD);
        return {
          cps: (i) => {
            const s = stores[i];
            return [
              `${url}/cps/${s.tn}/ppts`,
              { ...post(s.blob), headers: { "Content-Type": "application/passport", ...s.headers } },
              201,
            ];
          },
          baseline: (i) => [`${url}/cps/${plain[i]}/ppts`, post(stores[i].blob), 201],
        };
      },
    },
  ];
}

/** REQUESTS numbers from a seeded PRNG, so the CPS and baseline rounds use the same key sequence. */
function randomKeys(seed, prefix, spread) {
  const rand = prng(0x5eed + seed);
  return Array.from(
    { length: REQUESTS },
    () => `${prefix}${String(Math.floor(rand() * spread)).padStart(4, "0")}`,
  );
}

async function mustStore(url, init) {
  const res = await fetch(url, init);
  if (res.status !== 201) throw new Error(`seeding ${url} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------------

function table(summary) {
  const head = ["scenario", "route", "req/s", "p50 ms", "p99 ms", "errors", "CPS/baseline"];
  const rows = [];
  for (const s of summary) {
    for (const side of ["cps", "baseline"]) {
      const m = s[side];
      rows.push([
        side === "cps" ? s.name : "",
        side,
        fmt(m.rps),
        fmt(m.p50, 1),
        fmt(m.p99, 1),
        fmt(m.errors),
        side === "cps"
          ? `${fmt(s.ratio, 2)}x ${s.ratio >= s.target ? `(>= ${s.target} target)` : `(below ${s.target} target)`}`
          : "",
      ]);
    }
  }
  return markdownTable(head, rows, (c) => c >= 2 && c <= 5);
}

/** The relay scenario, run by bench/ohttp.mjs (its own servers and table); false if it failed. */
function relayCall() {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const out = join(REPO_ROOT, "bench", "results", `ohttp-${stamp}.json`);
  const args = [join(REPO_ROOT, "bench", "ohttp.mjs"), "--rounds", String(ROUNDS), "--out", out];
  return spawnSync(process.execPath, args, { stdio: "inherit" }).status === 0;
}

const RELAY_SCENARIO = "relay-call";

/**
 * Runs `bench/<script>.mjs` (a scenario with servers of its own) at this run's rounds, requests and
 * concurrency, its figures to bench/results/<script>-<time>.json; false if it failed.
 */
function ownServersScenario(script) {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const out = join(REPO_ROOT, "bench", "results", `${script}-${stamp}.json`);
  const args = [join(REPO_ROOT, "bench", `${script}.mjs`), "--rounds", String(ROUNDS)];
  args.push("--requests", String(REQUESTS), "--concurrency", String(CONCURRENCY), "--out", out);
  return spawnSync(process.execPath, args, { stdio: "inherit" }).status === 0;
}

/** What counting the operator's figures costs (bench/metrics.mjs, its own two servers). */
const metricsCost = () => ownServersScenario("metrics");

const METRICS_SCENARIO = "metrics-cost";

/** ATIS publish + retrieve vs RFC 8816 store + retrieve (bench/atis.mjs, its own server). */
const atisCall = () => ownServersScenario("atis");

const ATIS_SCENARIO = "atis-call";
/** Scenarios with servers of their own, run by their own scripts. */
const SEPARATE_SCENARIOS = [RELAY_SCENARIO, METRICS_SCENARIO, ATIS_SCENARIO];

async function main() {
  const started = Date.now();
  const only = flags.only?.split(",").map((x) => x.trim());
  const withRelay = !only || only.includes(RELAY_SCENARIO);
  const withAtis = !only || only.includes(ATIS_SCENARIO);
  // metrics-cost runs only when asked for (`--only metrics-cost`): two servers of its own.
  if (only?.includes(METRICS_SCENARIO) && !metricsCost()) process.exitCode = 1;
  if (only?.every((name) => SEPARATE_SCENARIOS.includes(name))) {
    if (withAtis && !atisCall()) process.exitCode = 1;
    if (withRelay && !relayCall()) process.exitCode = 1;
    return;
  }
  const env = machine();
  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  progress(`rounds ${ROUNDS}, ${REQUESTS} requests per route per round, concurrency ${CONCURRENCY}`);

  progress(`sealing ${BLOBS} blobs with src/stir/envelope.ts (bundled by esbuild)...`);
  const { blobs, sealUs, dummyUs, m } = await sealBlobs(BLOBS);
  progress(`seal ${fmt(sealUs)} us/blob, dummy ${fmt(dummyUs)} us/blob (Node WebCrypto, one thread)`);

  // ALLOW_UNTOKENED_STORES: stores here carry no storage token (issuance is not what this measures).
  // The store-token scenario's issuer key is made here, so the bench can mint tokens with it.
  const now = Date.now();
  const issuerEntry = await generateIssuerKeyEntry(ISSUER_KEY_ID, now - 3_600_000, now + 86_400_000);
  const issuerKey = await issuerSigningKey(issuerEntry);
  const vars = {
    ALLOW_UNTOKENED_STORES: "true",
    TOKEN_ISSUER_KEYS: JSON.stringify([issuerEntry]),
  };
  progress("starting wrangler dev for the CPS and for the bench Worker (fresh state dirs)...");
  const server = await startLocalServer({ vars, persistTo: flags["persist-to"] });
  let bench;
  let summary;
  const rounds = {};
  try {
    bench = await startLocalServer({ config: BENCH_WORKER_CONFIG });
    const scenarios = buildScenarios(server.url, bench.url, blobs, (round) =>
      tokenStores(m, issuerKey, round, blobs),
    ).filter((s) => !only || only.includes(s.name));
    if (scenarios.length === 0) throw new Error(`--only ${flags.only}: no such scenario`);

    progress("warming up...");
    for (const s of scenarios) {
      const routes = await s.prepare(-1);
      const n = Math.min(REQUESTS, 300);
      await load(n, routes.cps);
      await load(n, routes.baseline);
    }

    for (const s of scenarios) {
      rounds[s.name] = { cps: [], baseline: [] };
      for (let r = 0; r < ROUNDS; r++) {
        const routes = await s.prepare(r);
        // Alternate which side goes first, so drift within the run falls on both equally.
        const order = r % 2 === 0 ? ["cps", "baseline"] : ["baseline", "cps"];
        for (const side of order) rounds[s.name][side].push(await load(REQUESTS, routes[side]));
        const c = rounds[s.name].cps.at(-1);
        const b = rounds[s.name].baseline.at(-1);
        progress(
          `${s.name} round ${r + 1}/${ROUNDS}: cps ${fmt(c.rps)} req/s (p99 ${fmt(c.p99, 1)} ms), ` +
            `baseline ${fmt(b.rps)} req/s (p99 ${fmt(b.p99, 1)} ms)`,
        );
      }
    }

    summary = scenarios.map((s) => {
      const side = (k) => {
        const rs = rounds[s.name][k];
        return {
          rps: median(rs.map((x) => x.rps)),
          p50: median(rs.map((x) => x.p50)),
          p99: median(rs.map((x) => x.p99)),
          errors: rs.reduce((sum, x) => sum + (x.requests - x.ok), 0),
          unexpected: rs.reduce((acc, x) => {
            for (const [k2, v] of Object.entries(x.unexpected)) acc[k2] = (acc[k2] ?? 0) + v;
            return acc;
          }, {}),
        };
      };
      const cps = side("cps");
      const baseline = side("baseline");
      const target = s.target ?? TARGET_RATIO;
      return { name: s.name, what: s.what, target, cps, baseline, ratio: cps.rps / baseline.rps };
    });
  } finally {
    await Promise.all([server.stop(), bench?.stop()]);
  }

  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\nCPS vs bare Durable Object baseline, wrangler dev (workerd ${env.workerd}) on ${env.nproc} x ${env.cpu}, Node ${env.node}`,
  );
  console.log(
    `medians of ${ROUNDS} interleaved rounds, ${REQUESTS} requests per route per round, concurrency ${CONCURRENCY}; ` +
      `hot stores rotate to a new number every ${HOT_SEGMENT} (live cap 1,000 per number, TTL 60 s)\n`,
  );
  console.log(table(summary));
  for (const s of summary) console.log(`  ${s.name}: ${s.what}`);

  const day = new Date().toISOString().slice(0, 10);
  const out = flags.out ?? join(REPO_ROOT, "bench", "results", `bench-${day}.json`);
  await writeJson(out, {
    date: new Date().toISOString(),
    command: `npm run bench -- --rounds ${ROUNDS} --requests ${REQUESTS} --concurrency ${CONCURRENCY}`,
    machine: env,
    config: {
      rounds: ROUNDS,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      blobs: BLOBS,
      spread: SPREAD,
      hotSegment: HOT_SEGMENT,
      hotBlobs: HOT_BLOBS,
      vars: { ...vars, TOKEN_ISSUER_KEYS: "(an RSA-2048 key made for this run, not recorded)" },
      baselineWorker: BENCH_WORKER_CONFIG,
    },
    targetRatio: Object.fromEntries(summary.map((s) => [s.name, s.target])),
    sealing: { sealMicros: sealUs, dummyMicros: dummyUs, on: `Node ${process.version}` },
    summary,
    rounds,
    elapsedSeconds: elapsed,
  });
  console.log(`\n${fmt(elapsed)} s in all; figures in ${out}`);
  if (summary.some((s) => s.cps.errors > 0 || s.baseline.errors > 0)) {
    console.error("some requests got unexpected answers: see `unexpected` in the JSON");
    process.exitCode = 1;
  }
  if (withAtis && !atisCall()) process.exitCode = 1;
  if (withRelay && !relayCall()) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
