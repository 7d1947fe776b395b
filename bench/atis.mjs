#!/usr/bin/env node
/**
 * A call the ATIS way as a ratio to a call the RFC 8816 way, in one run against one local `wrangler
 * dev` of the CPS (issue 16; docs/atis-api.md). `npm run bench -- --only atis-call` runs it.
 *
 *   node bench/atis.mjs -- [--rounds 3] [--requests 500] [--concurrency 16] [--out bench/results/x.json]
 *
 * A "call" is what the caller's and the callee's sides do for one called number, one after the other:
 *   atis     POST /passports/{DEST}/{ORIG} (one PASSporT, access token `publish` with its `passports`
 *            digest) then GET /passports/{DEST}/{ORIG} (access token `retrieve`): the CPS verifies
 *            both tokens (x5c chain, single-use jti) and the PASSporT (x5u certificate, chain,
 *            signature), stores it in plaintext and serves it back (ATIS-1000096);
 *   rfc8816  POST /cps/{tn}/ppts (one sealed envelope, no storage token: ALLOW_UNTOKENED_STORES) then
 *            GET /cps/{tn}/ppts (the number's blobs among its decoys) (RFC 8816 §9).
 * Every call uses a fresh number; `--requests` calls per side per round, at most `--concurrency` calls
 * in flight; the sides alternate which goes first, round by round. Reported: calls/s and per-call
 * latency per side (medians over rounds) and the median over rounds of atis / rfc8816 throughput.
 *
 * All client crypto is done before the timed requests: the PASSporTs (ES256, x5u), the access tokens
 * (ES256, x5c, a fresh UUID jti each), the sealed envelopes. Tokens and PASSporTs are fresh for 60 s
 * (docs/atis-api.md "The access token"), so each side's calls run in chunks of `--chunk` (100), each
 * prepared right before it runs and timed without its preparation; a chunk that outlives the
 * freshness would get AUTH_EXPIRED / PASSPORT_STALE answers, counted as errors (the script exits 1). The PASSporTs' x5u points at a Node http server on loopback serving the test PKI's chain,
 * which the CPS may fetch only because ALLOW_LOOPBACK_X5U is on (a loopback CPS_ORIGIN); the CPS trusts
 * the test PKI's root (TRUST_ANCHORS_PEM). The certificate is fetched once and cached by the isolate.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { startLocalServer } from "../src/dev/local-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { machine } from "./lib/machine.mjs";
import { fmt, markdownTable, progressLog, resultFile, writeJson } from "./lib/report.mjs";
import { ascending, median, percentile } from "./lib/stats.mjs";

const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "500" },
    concurrency: { type: "string", default: "16" },
    chunk: { type: "string", default: "100" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(
    "node bench/atis.mjs -- [--rounds N] [--requests N] [--concurrency N] [--chunk N] [--out FILE]",
  );
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const CALLS = positive(flags, "requests");
const CONCURRENCY = positive(flags, "concurrency");
const CHUNK = positive(flags, "chunk");
const progress = progressLog("atis");

/** The bench credential speaks for this SPC and for every called number below (ATIS retrieve needs DEST covered). */
const SPC = "BENCH1";
const ATIS_BLOCK = { start: "15550810000", count: 10_000 };
const RFC8816_PREFIX = "1555082";
const ORIG = "15550109999";
/** How long a side may take after its preparation before its tokens and PASSporTs go stale. */
const FRESH_MS = 55_000;

const m = await importBundle({
  name: "bench-atis",
  source: `
      export { createTestPki } from "./src/stir/test-pki.ts";
      export { createPassport } from "./src/stir/passport.ts";
      export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
      export { canonicalTn } from "./src/stir/tn.ts";`,
});

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const jsonSegment = (value) => b64url(Buffer.from(JSON.stringify(value)));

/**
 * An ATIS access token (docs/atis-api.md "The access token"), signed here with WebCrypto as an
 * independent client would: ES256, the chain in `x5c` (standard base64 DER, leaf first), a fresh UUID
 * `jti`; for a publish, `passports` = digest variant A (the ATIS sample client's).
 */
async function accessToken(cred, claims) {
  const header = { alg: "ES256", typ: "JWT", x5c: cred.der.map((d) => Buffer.from(d).toString("base64")) };
  const signingInput = `${jsonSegment(header)}.${jsonSegment(claims)}`;
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    cred.privateKey,
    new TextEncoder().encode(signingInput),
  );
  return `${signingInput}.${b64url(new Uint8Array(sig))}`;
}

/** Digest variant A: "sha256-" + standard base64 of SHA-256 over JSON.stringify(passports). */
const digestA = (passports) =>
  `sha256-${createHash("sha256").update(JSON.stringify(passports)).digest("base64")}`;

/** Serves the chain PEM for the PASSporTs' x5u on loopback (the CPS fetches it once per isolate). */
async function x5uServer(pem) {
  const server = createServer((req, res) => {
    if (req.url !== "/bench.pem") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "application/x-pem-file", "Cache-Control": "max-age=3600" });
    res.end(pem);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/bench.pem`, close: () => new Promise((r) => server.close(r)) };
}

/**
 * One timed chunk: `calls` calls, at most CONCURRENCY in flight; call i is `steps[i]`, a list of
 * [url, init, expectedStatus, check?] run in sequence. Adds each call's latency (ms) to `latencies`
 * and each unexpected answer (by method, status and code) to `unexpected`; returns the calls that
 * got every expected status and body, and the wall time in seconds.
 */
async function runChunk(steps, latencies, unexpected) {
  let ok = 0;
  const seconds = await closedLoop(steps.length, CONCURRENCY, async (i) => {
    const t0 = performance.now();
    let good = true;
    for (const [url, init, expected, check] of steps[i]) {
      let key = null;
      try {
        const res = await fetch(url, init);
        const text = await res.text();
        if (res.status !== expected) {
          let code = "";
          try {
            code = JSON.parse(text).code ?? "";
          } catch {
            // not JSON
          }
          key = `${init?.method ?? "GET"} ${res.status} ${code}`.trim();
        } else if (check && !check(text)) key = `${init?.method ?? "GET"} ${res.status} unexpected body`;
      } catch (err) {
        key = err?.cause?.code ?? "fetch-error";
      }
      if (key !== null) {
        unexpected[key] = (unexpected[key] ?? 0) + 1;
        good = false;
        break;
      }
    }
    latencies.push(performance.now() - t0);
    if (good) ok++;
  });
  return { ok, seconds };
}

async function main() {
  const started = Date.now();
  const env = machine();
  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  const pki = await m.createTestPki({
    tnAuthList: [
      { type: "spc", spc: SPC },
      { type: "range", start: ATIS_BLOCK.start, count: ATIS_BLOCK.count },
    ],
  });
  const cred = pki.valid;
  const x5u = await x5uServer(cred.pem);
  const callee = await m.generateRecipientKeyPair();

  progress("starting wrangler dev for the CPS (trusting the test PKI, loopback x5u allowed)...");
  const vars = {
    ALLOW_UNTOKENED_STORES: "true",
    ALLOW_LOOPBACK_X5U: "true",
    TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
  };
  const server = await startLocalServer({ vars });
  // The ATIS audience as the deployed clients send it: the CPS's host (with its port).
  const audience = new URL(server.url).host;
  let atisCounter = 0;
  let rfcCounter = 0;
  const nextAtis = () =>
    String(BigInt(ATIS_BLOCK.start) + BigInt(atisCounter++ % ATIS_BLOCK.count)).padStart(11, "0");
  const nextRfc = () => `${RFC8816_PREFIX}${String(rfcCounter++ % 10_000).padStart(4, "0")}`;

  /** The ATIS side's requests for `calls` calls: every signature made here, before the timed run. */
  async function prepareAtis(calls) {
    const now = Math.floor(Date.now() / 1000);
    return Promise.all(
      Array.from({ length: calls }, async () => {
        const dest = nextAtis();
        const passport = await m.createPassport(
          {
            x5u: x5u.url,
            ppt: "shaken",
            claims: { attest: "A", dest: { tn: [dest] }, iat: now, orig: { tn: ORIG }, origid: randomUUID() },
          },
          cred.privateKey,
        );
        const passports = [passport];
        const common = {
          iat: now,
          exp: now + 60,
          aud: audience,
          iss: SPC,
          orig: { tn: ORIG },
          dest: { tn: [dest] },
        };
        const publish = await accessToken(cred, {
          ...common,
          jti: randomUUID(),
          action: "publish",
          passports: digestA(passports),
        });
        const retrieve = await accessToken(cred, { ...common, jti: randomUUID(), action: "retrieve" });
        const url = `${server.url}/passports/${dest}/${ORIG}`;
        return [
          [
            url,
            {
              method: "POST",
              headers: { Authorization: `Bearer ${publish}`, "Content-Type": "application/json" },
              body: JSON.stringify({ passports }),
            },
            201,
          ],
          [url, { headers: { Authorization: `Bearer ${retrieve}` } }, 200, (text) => text.includes(passport)],
        ];
      }),
    );
  }

  /** The RFC 8816 side's requests for `calls` calls: every envelope sealed here, before the timed run. */
  async function prepareRfc8816(calls) {
    const now = Math.floor(Date.now() / 1000);
    return Promise.all(
      Array.from({ length: calls }, async () => {
        const tn = nextRfc();
        const passport = await m.createPassport(
          {
            x5u: x5u.url,
            ppt: "shaken",
            claims: { attest: "A", dest: { tn: [tn] }, iat: now, orig: { tn: ORIG }, origid: randomUUID() },
          },
          cred.privateKey,
        );
        const blob = m.encodeEnvelope(await m.sealPassport(callee.publicKey, m.canonicalTn(tn), passport));
        const url = `${server.url}/cps/${tn}/ppts`;
        return [
          [url, { method: "POST", headers: { "Content-Type": "application/passport" }, body: blob }, 201],
          [url, undefined, 200, (text) => text.includes(blob.slice(0, 64))],
        ];
      }),
    );
  }

  const sides = { atis: prepareAtis, rfc8816: prepareRfc8816 };
  /**
   * One side's run of `calls` calls, in chunks of CHUNK: each chunk is prepared (untimed) right before
   * it runs (timed), so its tokens and PASSporTs are fresh however slow the machine. Both sides are cut
   * into the same chunks, so the pause between chunks costs them alike. Returns calls/s (calls whose
   * every step got its status and body, over the timed seconds), p50/p99 per call (ms), unexpected answers.
   */
  async function side(name, calls) {
    const latencies = [];
    const unexpected = {};
    let ok = 0;
    let seconds = 0;
    for (let done = 0; done < calls; done += CHUNK) {
      const prepared = await sides[name](Math.min(CHUNK, calls - done));
      const t = Date.now();
      const chunk = await runChunk(prepared, latencies, unexpected);
      if (Date.now() - t > FRESH_MS)
        progress(
          `${name}: a chunk took over ${FRESH_MS / 1000} s: its last tokens may be stale (lower --chunk)`,
        );
      ok += chunk.ok;
      seconds += chunk.seconds;
    }
    const sorted = ascending(latencies);
    return {
      calls,
      ok,
      unexpected,
      seconds,
      cps: ok / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    };
  }

  const rounds = [];
  try {
    progress("warming up (x5u fetch, isolates, Durable Objects)...");
    for (const name of Object.keys(sides)) {
      const w = await side(name, Math.min(CALLS, 50));
      if (w.ok === 0) throw new Error(`warm-up: no ${name} call succeeded: ${JSON.stringify(w.unexpected)}`);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ["atis", "rfc8816"] : ["rfc8816", "atis"];
      const res = {};
      for (const name of order) res[name] = await side(name, CALLS);
      rounds.push({ order, ...res, ratio: res.atis.cps / res.rfc8816.cps });
      progress(
        `round ${r + 1}/${ROUNDS}: atis ${fmt(res.atis.cps)} calls/s (p50 ${fmt(res.atis.p50, 1)} ms), ` +
          `rfc8816 ${fmt(res.rfc8816.cps)} calls/s (p50 ${fmt(res.rfc8816.p50, 1)} ms), ratio ${fmt(res.atis.cps / res.rfc8816.cps, 2)}`,
      );
    }
  } finally {
    await Promise.all([server.stop(), x5u.close()]);
  }

  const per = (name) => ({
    callsPerSecond: median(rounds.map((r) => r[name].cps)),
    p50: median(rounds.map((r) => r[name].p50)),
    p99: median(rounds.map((r) => r[name].p99)),
    errors: rounds.reduce((sum, r) => sum + (r[name].calls - r[name].ok), 0),
    unexpected: rounds.reduce((acc, r) => {
      for (const [k, v] of Object.entries(r[name].unexpected)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
  });
  const summary = {
    atis: per("atis"),
    rfc8816: per("rfc8816"),
    ratio: median(rounds.map((r) => r.ratio)),
    ratioRange: [Math.min(...rounds.map((r) => r.ratio)), Math.max(...rounds.map((r) => r.ratio))],
  };
  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\nATIS publish + retrieve vs RFC 8816 store + retrieve, wrangler dev (workerd ${env.workerd}) on ${env.nproc} x ${env.cpu}, Node ${env.node}`,
  );
  console.log(
    `medians of ${ROUNDS} interleaved rounds, ${CALLS} calls per side per round (2 requests each), ${CONCURRENCY} calls in flight\n`,
  );
  console.log(
    markdownTable(
      ["call", "calls/s", "p50 ms", "p99 ms", "errors", "atis / rfc8816"],
      [
        [
          "atis-call (ATIS publish + retrieve)",
          fmt(summary.atis.callsPerSecond),
          fmt(summary.atis.p50, 1),
          fmt(summary.atis.p99, 1),
          fmt(summary.atis.errors),
          `${fmt(summary.ratio, 2)}x (rounds ${fmt(summary.ratioRange[0], 2)}-${fmt(summary.ratioRange[1], 2)})`,
        ],
        [
          "RFC 8816 store + retrieve",
          fmt(summary.rfc8816.callsPerSecond),
          fmt(summary.rfc8816.p50, 1),
          fmt(summary.rfc8816.p99, 1),
          fmt(summary.rfc8816.errors),
          "1.00x",
        ],
      ],
      (c) => c >= 1 && c <= 4,
    ),
  );
  const out = flags.out ?? resultFile("atis", new Date().toISOString());
  await writeJson(out, {
    date: new Date().toISOString(),
    command: `node bench/atis.mjs -- --rounds ${ROUNDS} --requests ${CALLS} --concurrency ${CONCURRENCY} --chunk ${CHUNK}`,
    machine: env,
    config: {
      rounds: ROUNDS,
      calls: CALLS,
      concurrency: CONCURRENCY,
      chunk: CHUNK,
      vars: { ...vars, TRUST_ANCHORS_PEM: "(the test PKI's root, made for this run)" },
      accessToken:
        "ES256, x5c, fresh UUID jti, aud = the CPS host, iss = SPC, exp = iat + 60, digest variant A",
      passport: "SHAKEN, ES256, x5u on a loopback http server",
    },
    summary,
    rounds,
    elapsedSeconds: elapsed,
  });
  console.log(`\n${fmt(elapsed)} s in all; figures in ${out}`);
  if (summary.atis.errors > 0 || summary.rfc8816.errors > 0) {
    console.error(
      `unexpected answers: ${JSON.stringify({ atis: summary.atis.unexpected, rfc8816: summary.rfc8816.unexpected })}`,
    );
    process.exitCode = 1;
  }
}

await main();
