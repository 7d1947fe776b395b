#!/usr/bin/env node
/**
 * `npm run bench:peer` (issue 20 item 1; not in CI): this CPS beside the CPS a user would pick instead,
 * the ATIS-1000096 baseline CPS of the research prototype lokingdav/jodi
 * (`jodi/prototype/stirshaken/cps_server.py`: FastAPI + uvicorn + Redis, an ES256 bearer JWT checked on
 * every request), side by side on this machine, rounds interleaved.
 *
 *   npm run bench:peer -- --peer-repo PATH [--rounds 5] [--calls 1000] [--concurrency 16] [--pool 1000]
 *       [--warmup 100] [--systems cps-untokened,cps-tokened,cps-watch,peer-1,peer-2,bare] [--peer-work DIR]
 *       [--out FILE] [--profile]
 *   npm run bench:peer -- --peer-repo PATH --check     # set the peer up, start nothing, exit 0 if it can run
 *
 * PATH (or PEER_REPO) is a copy of github.com/lokingdav/jodi the user fetched: a checkout, or a git dir
 * (a bare mirror is fine). The peer runs on Debian's packages only (bench/peer/install-debian.sh) with
 * nothing changed in its code; every step of its setup and why is in bench/peer/README.md. A missing
 * copy or package: a message naming it, exit 3. Bad flags: exit 2. Unexpected answers: exit 1.
 *
 * Systems (each its own server processes, all running for the whole run):
 *   cps-untokened  `npm start` (workerd through Miniflare's API; untokened stores allowed, as npm start is)
 *   cps-tokened    `npm start -- --var ALLOW_UNTOKENED_STORES:false`: every store pays a storage token
 *   cps-watch      `npm start -- --watch` (wrangler dev, its proxy Worker and log relay), untokened
 *   peer-1         the peer: uvicorn --workers 1 + its own redis-server
 *   peer-2         the peer: uvicorn --workers 2 + its own redis-server
 *   bare           not a CPS: the bench's bare Durable Object baseline (bench/baseline-worker: the
 *                  Worker -> Durable Object hop and one SQLite write, or one read of the number's
 *                  rows, per request, no CPS logic) served as `npm start` serves the CPS
 *                  (bench/peer/bare-server.mjs): what this runtime itself costs per call here, so the
 *                  CPS's figures can be read against it (`x bare`)
 *
 * Method (issue 20): one load generator (this process), `--concurrency` calls in flight, `--rounds`
 * rounds of `--calls` calls per system, systems interleaved within each round (the order rotates round
 * by round). A call = one store, then one retrieval of that number; the number is drawn (seeded, the
 * same sequence for every system in a round) from a pool of `--pool` numbers. All client crypto is done
 * before each timed round: for us a fresh PASSporT sealed to the callee per call (and, tokened, a freshly
 * minted one-use storage token and its store signature); for the peer a fresh PASSporT and the two
 * ES256 bearer JWTs (publish, with its `passports` digest, and retrieve) made exactly as its clients
 * make them (jodi/prototype/stirshaken/auth_service.py). Each call has its own caller (orig), so the
 * peer, which keys a stored PASSporT by dest and orig, never overwrites one call's PASSporT with
 * another's before it is retrieved; a retrieval counts only if it returns that call's PASSporT (ours:
 * that call's sealed blob).
 *
 * CPU per call: the CPU the system's server processes used (/proc, the whole process tree: start.mjs
 * and workerd, with --watch also wrangler and its proxy's workerd; uvicorn, its workers and redis-server) during its timed rounds over its calls
 * (median over rounds); and over the whole run: from the start of the first timed round to the end of
 * the last, everything between rounds included (other systems' rounds, preparation, timers such as
 * expiry alarms), over the same calls.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { importPKCS8, SignJWT } from "jose";
import { importBundle } from "../../src/dev/ts-module.mjs";
import { positive } from "../lib/args.mjs";
import { closedLoop } from "../lib/closed-loop.mjs";
import { bundleModules, startProfile, summariseProfile } from "../lib/cpu-profile.mjs";
import { loadAverage, machine } from "../lib/machine.mjs";
import { fmt, markdownTable, progressLog, resultFile, writeJson } from "../lib/report.mjs";
import { ascending, median, percentile, prng } from "../lib/stats.mjs";
import { startCps } from "./cps.mjs";
import { cpuDelta, procAvailable, sampleTrees } from "./cpu.mjs";
import { checkMachine, copyPeer, ensureCertificates, SetupError, startPeer } from "./peer.mjs";

const SYSTEMS = {
  "cps-untokened": { label: "this CPS, `npm start`, untokened stores", kind: "cps", tokened: false },
  "cps-tokened": { label: "this CPS, `npm start`, tokens required", kind: "cps", tokened: true },
  "cps-watch": {
    label: "this CPS, `npm start -- --watch` (wrangler dev), untokened stores",
    kind: "cps",
    tokened: false,
    watch: true,
  },
  "peer-1": { label: "peer, uvicorn 1 worker + Redis", kind: "peer", workers: 1 },
  "peer-2": { label: "peer, uvicorn 2 workers + Redis", kind: "peer", workers: 2 },
  bare: { label: "bare Worker + Durable Object (no CPS logic), as `npm start` serves", kind: "bare" },
};
/** The goal of issue 20, against the peer's best calls/s. */
const GOAL = { "cps-untokened": 1.5, "cps-tokened": 1.2, cpu: 0.7 };
/** Credentials of the peer's certs.json the peer-side calls sign with, call i with ocrt-(i mod this). */
const PEER_CREDENTIALS = 100;
const NUMBER_PREFIX = "1555";
const CALLER_PREFIX = "1666";

const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    "peer-repo": { type: "string" },
    "peer-work": { type: "string" },
    python: { type: "string", default: "/usr/bin/python3" },
    rounds: { type: "string", default: "5" },
    calls: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "16" },
    pool: { type: "string", default: "1000" },
    warmup: { type: "string", default: "100" },
    systems: { type: "string", default: Object.keys(SYSTEMS).join(",") },
    out: { type: "string" },
    check: { type: "boolean" },
    profile: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(
    "npm run bench:peer -- --peer-repo PATH [--rounds N] [--calls N] [--concurrency N] [--pool N] [--warmup N]\n" +
      `    [--systems ${Object.keys(SYSTEMS).join(",")}] [--peer-work DIR] [--python /usr/bin/python3] [--out FILE] [--check] [--profile]\n` +
      "PATH (or PEER_REPO): a checkout or git dir of github.com/lokingdav/jodi; see bench/peer/README.md",
  );
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const CALLS = positive(flags, "calls");
const CONCURRENCY = positive(flags, "concurrency");
const POOL = positive(flags, "pool");
const WARMUP = Number(flags.warmup);
if (!Number.isInteger(WARMUP) || WARMUP < 0) {
  console.error("--warmup must be a whole number >= 0");
  process.exit(2);
}
if (POOL > 10_000_000) {
  console.error("--pool must be at most 10,000,000 (the numbers are 1555 + 7 digits)");
  process.exit(2);
}
const chosen = flags.systems.split(",").map((s) => s.trim());
for (const s of chosen) {
  if (!SYSTEMS[s]) {
    console.error(`--systems: no system ${s} (${Object.keys(SYSTEMS).join(", ")})`);
    process.exit(2);
  }
}
const PEER_REPO = flags["peer-repo"] ?? process.env.PEER_REPO;
const WORK = flags["peer-work"] ?? join(tmpdir(), "stir-oob-bench-peer");
const progress = progressLog("bench:peer");

/** Number k of the pool, and caller j: 11-digit E.164 digit strings. */
const numberOf = (k) => `${NUMBER_PREFIX}${String(k).padStart(7, "0")}`;
const callerOf = (j) => `${CALLER_PREFIX}${String(j % 10_000_000).padStart(7, "0")}`;

// ---------------------------------------------------------------------------------------------
// Setup: refuse clearly before starting anything.

const needPeer = chosen.some((s) => SYSTEMS[s].kind === "peer");
let peerSetup = null;
try {
  if (!procAvailable())
    throw new SetupError("no /proc: server CPU is read from /proc/<pid>/stat (Linux only)");
  if (needPeer || flags.check) {
    const found = checkMachine(flags.python);
    for (const n of found.notDebian)
      progress(`warning: ${n} (not Debian's package): not the documented peer`);
    mkdirSync(WORK, { recursive: true });
    const copy = copyPeer(PEER_REPO, WORK);
    if (copy.skipped.length > 0)
      progress(
        `peer copy: ${copy.skipped.length} file(s) absent from the mirror, not needed: ${copy.skipped.join(", ")}`,
      );
    const certs = ensureCertificates(flags.python, WORK, progress);
    peerSetup = { machine: found, copy, certs, work: WORK };
    progress(
      `peer ${copy.commit} (${copy.kind} ${copy.from}) in ${WORK}; Debian python ${found.pythonVersion}, ${found.redisVersion.split(" ").slice(0, 3).join(" ")}`,
    );
  }
} catch (err) {
  if (err instanceof SetupError) {
    console.error(`bench:peer: cannot set up the peer: ${err.message}`);
    process.exit(3);
  }
  throw err;
}
if (flags.check) {
  console.log("bench:peer: the peer can be set up here (packages, copy, certificates): OK");
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Client crypto, done before timing.

const m = await importBundle({
  name: "bench-peer",
  source: `
      export { createTestPki } from "./src/stir/test-pki.ts";
      export { createPassport } from "./src/stir/passport.ts";
      export { decodeEnvelope, encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
      export { canonicalTn } from "./src/stir/tn.ts";
      export { encodeBase64url } from "./src/stir/base64url.ts";
      export { encodeStorageToken, mintToken, signStore } from "./src/stir/storage-token.ts";`,
});

/** The peer's `passports` claim: "sha256-" + base64 of the hex SHA-256 of the compact JSON list (its misc.hash256). */
async function peerDigest(passports) {
  const hex = Buffer.from(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(passports))),
  ).toString("hex");
  return `sha256-${Buffer.from(hex).toString("base64")}`;
}

/** The peer's credentials ocrt-0 .. ocrt-(PEER_CREDENTIALS-1), as its clients sign with them. */
async function peerCredentials(certsFile) {
  const all = JSON.parse(readFileSync(certsFile, "utf8"));
  const creds = [];
  for (let i = 0; i < PEER_CREDENTIALS; i++) {
    const c = all[`ocrt-${i}`];
    creds.push({ id: c.id, key: await importPKCS8(c.sk, "ES256") });
  }
  return creds;
}

/**
 * One peer call, as its clients make it (auth_service.py, setup.py setup_sample_loads): a SHAKEN
 * PASSporT and two bearer JWTs, ES256, header x5u = <cert repo>/certs/<credential id> (with
 * USE_LOCAL_CERT_REPO the peer looks the certificate up in Redis by that last path segment).
 */
async function peerCall(peer, cred, dest, orig) {
  const x5u = `http://127.0.0.1:10432/certs/${cred.id}`;
  const iat = Math.floor(Date.now() / 1000);
  const passport = await new SignJWT({ iat, attest: "A", orig: { tn: [orig] }, dest: { tn: [dest] } })
    .setProtectedHeader({ alg: "ES256", x5u, ppt: "shaken", typ: "passport" })
    .sign(cred.key);
  const bearer = async (action, passports) =>
    new SignJWT({
      iat,
      action,
      passports: await peerDigest(passports),
      sub: "P1",
      iss: "P1",
      aud: peer.audience,
      jti: randomUUID(),
      dest: { tn: [dest] },
      orig: { tn: [orig] },
    })
      .setProtectedHeader({ alg: "ES256", x5u, typ: "JWT" })
      .sign(cred.key);
  const publish = await bearer("publish", [passport]);
  const retrieve = await bearer("retrieve", []);
  return {
    store: [
      `${peer.url}/publish/${dest}/${orig}`,
      {
        method: "POST",
        headers: { Authorization: `Bearer ${publish}`, "Content-Type": "application/json" },
        body: JSON.stringify({ passports: [passport] }),
      },
      200,
    ],
    retrieve: [
      `${peer.url}/retrieve/${dest}/${orig}`,
      { headers: { Authorization: `Bearer ${retrieve}` } },
      200,
    ],
    expect: passport,
  };
}

/**
 * One call to this CPS: a fresh PASSporT sealed to the callee, and (tokened) a fresh one-use token.
 * To the bare baseline (`bare`): the same body stored and the number's rows listed, at its routes.
 */
async function cpsCall(cps, ctx, dest, orig, bare = false) {
  const now = Math.floor(Date.now() / 1000);
  const passport = await m.createPassport(
    {
      x5u: "https://cr.example/bench.pem",
      ppt: "shaken",
      claims: { attest: "A", dest: { tn: [dest] }, iat: now, orig: { tn: orig }, origid: randomUUID() },
    },
    ctx.cred.privateKey,
  );
  const tn = m.canonicalTn(dest);
  const blob = m.encodeEnvelope(await m.sealPassport(ctx.callee.publicKey, tn, passport));
  const headers = { "Content-Type": "application/passport" };
  if (cps.issuer) {
    const { token, privateKey } = await m.mintToken(cps.issuer.key, cps.issuer.id);
    const sig = await m.signStore(privateKey, tn, m.decodeEnvelope(blob));
    headers["CPS-Token"] = m.encodeStorageToken(token);
    headers["CPS-Token-Signature"] = m.encodeBase64url(sig);
  }
  const url = bare ? `${cps.url}/_bench/baseline/${dest}` : `${cps.url}/cps/${dest}/ppts`;
  return {
    store: [url, { method: "POST", headers, body: blob }, 201],
    retrieve: [url, undefined, 200],
    expect: blob,
  };
}

/** The calls of one round for one system: numbers from `keys`, callers unique across the run. */
async function prepare(name, server, ctx, keys, callerBase) {
  const calls = [];
  // In batches, so a slow crypto step does not hold thousands of promises at once.
  for (let i = 0; i < keys.length; i += 100) {
    const batch = keys.slice(i, i + 100).map((k, j) => {
      const dest = numberOf(k);
      const orig = callerOf(callerBase + i + j);
      return SYSTEMS[name].kind === "peer"
        ? peerCall(server, ctx.peerCreds[(callerBase + i + j) % PEER_CREDENTIALS], dest, orig)
        : cpsCall(server, ctx, dest, orig, SYSTEMS[name].kind === "bare");
    });
    calls.push(...(await Promise.all(batch)));
  }
  return calls;
}

/**
 * The peer really checks its bearer JWTs? A publish whose token names credential ocrt-0 in x5u but is
 * signed with ocrt-1's key must be refused (401), and the same publish signed right accepted (200).
 */
async function probePeer(name, peer, ctx) {
  const [good, other] = ctx.peerCreds;
  const call = await peerCall(peer, good, numberOf(0), callerOf(9_999_999));
  const forged = await peerCall(peer, { id: good.id, key: other.key }, numberOf(0), callerOf(9_999_998));
  const refused = await step([...forged.store.slice(0, 2), 401]);
  const accepted = await step(call.store);
  if (refused !== null || accepted !== null) {
    throw new Error(
      `${name}: the peer does not check bearer JWTs as expected (forged: ${refused ?? "401"}, genuine: ${accepted ?? "200"})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Timed calls.

/** One answer: null if as expected, else a short key such as "GET 404" or "POST 401 TOKEN_INVALID". */
async function step([url, init, expected], expectText) {
  try {
    const res = await fetch(url, init);
    const text = await res.text();
    const method = init?.method ?? "GET";
    if (res.status !== expected) {
      let code = "";
      try {
        code = JSON.parse(text).code ?? "";
      } catch {
        // not JSON
      }
      return `${method} ${res.status} ${code}`.trim();
    }
    if (expectText !== undefined && !text.includes(expectText))
      return `${method} ${res.status} without this call's PASSporT`;
    return null;
  } catch (err) {
    return err?.cause?.code ?? "fetch-error";
  }
}

/** Runs the calls, CONCURRENCY in flight; store and retrieval latencies apart (ms), errors by kind. */
async function runCalls(calls) {
  const storeMs = [];
  const retrieveMs = [];
  const unexpected = {};
  let ok = 0;
  const seconds = await closedLoop(calls.length, CONCURRENCY, async (i) => {
    const c = calls[i];
    const t0 = performance.now();
    let err = await step(c.store);
    const t1 = performance.now();
    storeMs.push(t1 - t0);
    if (err === null) {
      // Our answer holds the blob as stored; the peer's, the PASSporT inside a JSON list. The last 64
      // characters are this call's own (AEAD output; the JWS signature), unlike a JWT's first ones.
      err = await step(c.retrieve, c.expect.slice(-64));
      retrieveMs.push(performance.now() - t1);
    }
    if (err === null) ok++;
    else unexpected[err] = (unexpected[err] ?? 0) + 1;
  });
  const s = ascending(storeMs);
  const r = ascending(retrieveMs);
  return {
    calls: calls.length,
    ok,
    unexpected,
    seconds,
    callsPerSecond: ok / seconds,
    store: { p50: percentile(s, 50), p99: percentile(s, 99) },
    retrieve: { p50: percentile(r, 50), p99: percentile(r, 99) },
  };
}

/**
 * `--profile`: per CPS system, after the timed rounds, CALLS stores and then the CALLS retrievals of
 * those numbers, each phase with workerd's CPU profiler on (through the inspector), so each route has
 * a profile of its own. Writes each profile and the bundle it ran under <peer-work>/profiles/ (open
 * the profile in Chrome DevTools or speedscope) and returns the CPU per request by source module and
 * by function, per phase.
 */
async function profileCps(servers, ctx, callerBase) {
  const out = {};
  const rand = prng(0x9f00);
  const keys = Array.from({ length: CALLS }, () => Math.floor(rand() * POOL));
  for (const name of chosen.filter((n) => SYSTEMS[n].kind === "cps")) {
    const calls = await prepare(name, servers[name], ctx, keys, callerBase);
    out[name] = {};
    for (const phase of ["store", "retrieve"]) {
      const profiler = await startProfile(servers[name].inspectorPort);
      const unexpected = {};
      await closedLoop(calls.length, CONCURRENCY, async (i) => {
        const c = calls[i];
        const err = phase === "store" ? await step(c.store) : await step(c.retrieve, c.expect.slice(-64));
        if (err !== null) unexpected[err] = (unexpected[err] ?? 0) + 1;
      });
      const { profile, bundle } = await profiler.stop();
      const file = join(WORK, "profiles", `${name}-${phase}-${Date.now()}.cpuprofile`);
      await writeJson(file, profile);
      if (bundle) writeFileSync(`${file}.bundle.js`, bundle);
      out[name][phase] = {
        file,
        unexpected,
        ...summariseProfile(profile, { calls: CALLS, moduleOf: bundle && bundleModules(bundle) }),
      };
      progress(
        `${name}: ${phase} profile (${CALLS} requests) in ${file}: ${fmt(out[name][phase].msPerCall, 2)} ms sampled per request`,
      );
    }
    callerBase += CALLS;
  }
  return out;
}

/** The size of a server's log (0 for a system without one), to read what a round appended. */
function logSize(file) {
  if (!file) return 0;
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** How often wrangler rebuilt or reloaded the Worker since `offset` in its log (0 without a log). */
function reloadsSince(file, offset) {
  if (!file) return 0;
  const text = readFileSync(file).subarray(offset).toString();
  return (text.match(/restarting build|Reloading local server/g) ?? []).length;
}

/** CPU ms per call of each process label over all timed rounds (sum of CPU / sum of calls). */
function perCallByProcess(rs) {
  const total = {};
  for (const x of rs) for (const [k, v] of Object.entries(x.cpuByProcess)) total[k] = (total[k] ?? 0) + v;
  const calls = rs.reduce((sum, x) => sum + x.calls, 0);
  return Object.fromEntries(
    Object.entries(total)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, v / calls]),
  );
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const env = machine();
  progress(
    `${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}; load ${loadAverage().join(" ")}`,
  );
  progress(
    `systems ${chosen.join(", ")}; ${ROUNDS} rounds x ${CALLS} calls, ${CONCURRENCY} in flight, pool ${POOL.toLocaleString("en")} numbers`,
  );

  const pki = await m.createTestPki();
  const ctx = { cred: pki.valid, callee: await m.generateRecipientKeyPair() };
  if (peerSetup) ctx.peerCreds = await peerCredentials(peerSetup.certs);
  const probeBlob = m.encodeEnvelope(
    await m.sealPassport(ctx.callee.publicKey, m.canonicalTn(numberOf(0)), "a.b.c"),
  );

  const logDir = join(WORK, "run");
  mkdirSync(logDir, { recursive: true });
  const servers = {};
  const rounds = [];
  let whole;
  let profiles = {};
  const stopAll = () => Promise.all(Object.values(servers).map((s) => s.stop()));
  process.once("SIGINT", () => stopAll().finally(() => process.exit(130)));
  try {
    // One at a time: two wrangler starts at once on two cores can outlast the health timeout.
    for (const name of chosen) {
      const sys = SYSTEMS[name];
      servers[name] =
        sys.kind === "peer"
          ? await startPeer({ python: flags.python, work: WORK, name, workers: sys.workers, log: progress })
          : await startCps({
              name,
              tokened: sys.tokened,
              watch: sys.watch,
              bare: sys.kind === "bare",
              logDir,
              log: progress,
              probeBlob,
            });
    }
    const roots = Object.fromEntries(chosen.map((n) => [n, servers[n].roots]));
    for (const name of chosen) if (SYSTEMS[name].kind === "peer") await probePeer(name, servers[name], ctx);

    let callerBase = 0;
    if (WARMUP > 0) {
      progress(`warming up (${WARMUP} calls per system)...`);
      const keys = Array.from({ length: WARMUP }, (_, i) => i % POOL);
      for (const name of chosen) {
        const w = await runCalls(await prepare(name, servers[name], ctx, keys, callerBase));
        if (w.ok === 0)
          throw new Error(`warm-up: no ${name} call succeeded: ${JSON.stringify(w.unexpected)}`);
        if (w.ok < w.calls)
          progress(`warm-up ${name}: ${w.calls - w.ok} unexpected: ${JSON.stringify(w.unexpected)}`);
      }
      callerBase += WARMUP;
    }

    const runStart = sampleTrees(roots);
    const logsAtStart = Object.fromEntries(chosen.map((n) => [n, logSize(servers[n].logFile)]));
    const runStartedAt = performance.now();
    for (let r = 0; r < ROUNDS; r++) {
      const rand = prng(0x9ee7 + r);
      const keys = Array.from({ length: CALLS }, () => Math.floor(rand() * POOL));
      const order = chosen.map((_, i) => chosen[(i + r) % chosen.length]);
      const round = { order, systems: {} };
      for (const name of order) {
        const calls = await prepare(name, servers[name], ctx, keys, callerBase);
        const logAt = logSize(servers[name].logFile);
        const before = sampleTrees(roots);
        const client = process.cpuUsage();
        const res = await runCalls(calls);
        const cpu = cpuDelta(before, sampleTrees(roots))[name];
        const used = process.cpuUsage(client);
        round.systems[name] = {
          ...res,
          cpuMs: cpu.ms,
          cpuMsPerCall: cpu.ms / CALLS,
          cpuByProcess: cpu.byProcess,
          // The load generator's own CPU (this process), to see whether it, not the server, was the limit.
          clientCpuMsPerCall: (used.user + used.system) / 1000 / CALLS,
          reloads: reloadsSince(servers[name].logFile, logAt),
        };
        if (round.systems[name].reloads > 0) {
          progress(
            `${name}: wrangler rebuilt or reloaded the Worker ${round.systems[name].reloads} time(s) during this round (a source file changed): its figures are disturbed`,
          );
        }
      }
      callerBase += CALLS;
      rounds.push(round);
      progress(
        `round ${r + 1}/${ROUNDS}: ` +
          order
            .map((n) => {
              const s = round.systems[n];
              return `${n} ${fmt(s.callsPerSecond)} calls/s, ${fmt(s.cpuMsPerCall, 1)} ms CPU/call${s.ok < s.calls ? `, ${s.calls - s.ok} errors` : ""}`;
            })
            .join("; "),
      );
    }
    const runCpu = cpuDelta(runStart, sampleTrees(roots));
    whole = {
      seconds: (performance.now() - runStartedAt) / 1000,
      cpu: runCpu,
      reloads: Object.fromEntries(chosen.map((n) => [n, reloadsSince(servers[n].logFile, logsAtStart[n])])),
    };
    // Profiles after the timed rounds, so the profiler's own cost never lands in the figures.
    if (flags.profile) profiles = await profileCps(servers, ctx, callerBase);
  } finally {
    await stopAll();
  }

  // ---- summary
  const summary = {};
  for (const name of chosen) {
    const rs = rounds.map((r) => r.systems[name]);
    summary[name] = {
      label: SYSTEMS[name].label,
      callsPerSecond: median(rs.map((x) => x.callsPerSecond)),
      store: { p50: median(rs.map((x) => x.store.p50)), p99: median(rs.map((x) => x.store.p99)) },
      retrieve: { p50: median(rs.map((x) => x.retrieve.p50)), p99: median(rs.map((x) => x.retrieve.p99)) },
      cpuMsPerCall: median(rs.map((x) => x.cpuMsPerCall)),
      cpuMsPerCallByProcess: perCallByProcess(rs),
      clientCpuMsPerCall: median(rs.map((x) => x.clientCpuMsPerCall)),
      cpuMsPerCallWholeRun: whole.cpu[name].ms / (CALLS * ROUNDS),
      cpuWholeRunByProcess: whole.cpu[name].byProcess,
      errors: rs.reduce((sum, x) => sum + (x.calls - x.ok), 0),
      reloadsDuringRounds: rs.reduce((sum, x) => sum + x.reloads, 0),
      reloadsWholeRun: whole.reloads[name],
      unexpected: rs.reduce((acc, x) => {
        for (const [k, v] of Object.entries(x.unexpected)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    };
  }
  // The reference: the peer with the best median calls/s; ratios of medians, and the per-round range.
  const peers = chosen.filter((n) => SYSTEMS[n].kind === "peer");
  const best = peers.sort((a, b) => summary[b].callsPerSecond - summary[a].callsPerSecond)[0];
  if (best) {
    for (const name of chosen) {
      const s = summary[name];
      const perRound = rounds.map((r) => r.systems[name].callsPerSecond / r.systems[best].callsPerSecond);
      s.vsBestPeer = {
        peer: best,
        callsPerSecond: s.callsPerSecond / summary[best].callsPerSecond,
        callsPerSecondRounds: [Math.min(...perRound), Math.max(...perRound)],
        cpuPerCall: s.cpuMsPerCall / summary[best].cpuMsPerCall,
        cpuPerCallWholeRun: s.cpuMsPerCallWholeRun / summary[best].cpuMsPerCallWholeRun,
      };
      if (GOAL[name] !== undefined) {
        s.goal = {
          callsPerSecond: GOAL[name],
          cpuPerCall: GOAL.cpu,
          met: s.vsBestPeer.callsPerSecond >= GOAL[name] && s.vsBestPeer.cpuPerCall <= GOAL.cpu,
        };
      }
    }
  }

  // The runtime's floor, measured in the same run: each CPS system against the bare baseline.
  if (summary.bare) {
    for (const name of chosen.filter((n) => SYSTEMS[n].kind === "cps")) {
      const s = summary[name];
      s.vsBare = {
        callsPerSecond: s.callsPerSecond / summary.bare.callsPerSecond,
        cpuPerCall: s.cpuMsPerCall / summary.bare.cpuMsPerCall,
      };
    }
  }

  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\nThis CPS vs the peer (lokingdav/jodi cps_server.py) on ${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}`,
  );
  console.log(
    `medians of ${ROUNDS} interleaved rounds of ${CALLS} calls (store + retrieval), ${CONCURRENCY} in flight, pool ${POOL.toLocaleString("en")} numbers` +
      (best ? `; ratios against the best peer (${best})` : "") +
      "\n",
  );
  const head = [
    "system",
    "calls/s",
    "x best peer",
    "store p50/p99 ms",
    "retrieve p50/p99 ms",
    "server CPU ms/call (whole run)",
    "x peer CPU",
    "errors",
  ];
  const rows = chosen.map((name) => {
    const s = summary[name];
    return [
      s.label,
      fmt(s.callsPerSecond),
      s.vsBestPeer ? `${fmt(s.vsBestPeer.callsPerSecond, 2)}x` : "-",
      `${fmt(s.store.p50, 0)} / ${fmt(s.store.p99, 0)}`,
      `${fmt(s.retrieve.p50, 0)} / ${fmt(s.retrieve.p99, 0)}`,
      `${fmt(s.cpuMsPerCall, 1)} (${fmt(s.cpuMsPerCallWholeRun, 1)})`,
      s.vsBestPeer ? `${fmt(s.vsBestPeer.cpuPerCall, 2)}x` : "-",
      fmt(s.errors),
    ];
  });
  console.log(markdownTable(head, rows, (c) => c >= 1 && c !== 3 && c !== 4));
  for (const name of chosen) {
    const parts = Object.entries(summary[name].cpuMsPerCallByProcess)
      .filter(([, ms]) => ms >= 0.05)
      .map(([proc, ms]) => `${proc} ${fmt(ms, 1)}`);
    console.log(
      `  ${name}: server CPU ms/call in rounds by process: ${parts.join(", ")}; load generator ${fmt(summary[name].clientCpuMsPerCall, 1)}`,
    );
  }
  for (const name of chosen) {
    const s = summary[name];
    if (s.reloadsWholeRun > 0) {
      console.log(
        `  ${name}: DISTURBED: wrangler rebuilt or reloaded the Worker ${s.reloadsWholeRun} time(s) during the run, ${s.reloadsDuringRounds} in its timed rounds (source files changed while it ran)`,
      );
    }
  }
  for (const name of chosen) {
    const b = summary[name].vsBare;
    if (b) {
      console.log(
        `  ${name}: against the bare baseline: ${fmt(b.callsPerSecond, 2)}x its calls/s at ${fmt(b.cpuPerCall, 2)}x its CPU per call`,
      );
    }
  }
  for (const name of chosen) {
    const g = summary[name].goal;
    if (g) {
      console.log(
        `  ${name}: goal >= ${g.callsPerSecond}x the best peer's calls/s at <= ${g.cpuPerCall}x its CPU per call: ${g.met ? "met" : "not met"}`,
      );
    }
  }

  const out = flags.out ?? resultFile("peer", new Date().toISOString());
  await writeJson(out, {
    date: new Date().toISOString(),
    command: `npm run bench:peer -- --rounds ${ROUNDS} --calls ${CALLS} --concurrency ${CONCURRENCY} --pool ${POOL} --warmup ${WARMUP} --systems ${chosen.join(",")}`,
    machine: { ...env, loadAverageAtEnd: loadAverage() },
    config: {
      rounds: ROUNDS,
      calls: CALLS,
      concurrency: CONCURRENCY,
      pool: POOL,
      warmup: WARMUP,
      systems: Object.fromEntries(chosen.map((n) => [n, { ...SYSTEMS[n], command: servers[n]?.command }])),
      peer: peerSetup && {
        commit: peerSetup.copy.commit,
        copiedFrom: `${peerSetup.copy.kind}`,
        skippedFiles: peerSetup.copy.skipped,
        python: peerSetup.machine.pythonVersion,
        debianPackages: peerSetup.machine.debian,
        redis: peerSetup.machine.redisVersion,
        notDebian: peerSetup.machine.notDebian,
        environment:
          "NODE_IP=127.0.0.1 NODE_PORT=<port> CACHE_HOST=127.0.0.1 CACHE_PORT=<its redis> CONF_DIR=<work>/conf USE_LOCAL_CERT_REPO=true APP_DEBUG=0 (bench/peer/README.md)",
        credentialsUsed: PEER_CREDENTIALS,
      },
      goal: GOAL,
    },
    summary,
    wholeRun: whole,
    profiles,
    rounds,
    elapsedSeconds: elapsed,
  });
  for (const [name, phases] of Object.entries(profiles)) {
    for (const [phase, p] of Object.entries(phases)) {
      console.log(
        `\n${name} ${phase}: workerd CPU profile, ${fmt(p.msPerCall, 2)} ms sampled per request (${p.file}); per request:`,
      );
      for (const f of p.byFile.slice(0, 12)) console.log(`  ${fmt(f.msPerCall, 3)} ms  ${f.name}`);
      for (const f of p.byFunction.slice(0, 15)) console.log(`  ${fmt(f.msPerCall, 3)} ms  ${f.name}`);
    }
  }
  console.log(`\n${fmt(elapsed)} s in all; figures in ${out}`);
  if (chosen.some((n) => summary[n].errors > 0)) {
    console.error(
      `unexpected answers: ${JSON.stringify(Object.fromEntries(chosen.map((n) => [n, summary[n].unexpected])))}`,
    );
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
