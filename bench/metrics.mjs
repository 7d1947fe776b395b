#!/usr/bin/env node
/**
 * What counting the operator's figures costs (issue 18: at most 5 % of store throughput;
 * docs/metrics.md): store-hot (POST /cps/{tn}/ppts, one hot number at a time, a new one every 900
 * stores) against two `wrangler dev` servers of the same Worker, one with METRICS=on (and an
 * operator token, so the run ends by reading /metrics back) and one with METRICS=off, in the same
 * run, rounds interleaved (the order alternating per round). Reported: the medians of throughput and
 * latency per side and the on/off throughput ratio (median of the per-round ratios, and their range).
 *
 *   node bench/metrics.mjs -- [--rounds 5] [--requests 1500] [--concurrency 16] [--out FILE]
 *
 * Both servers run all the time; only one is loaded at a time, so they share the machine the same
 * way in every round. Untokened stores (ALLOW_UNTOKENED_STORES): the token check is not what this
 * measures (bench/run.mjs store-token does).
 */
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { httpLoad } from "./lib/closed-loop.mjs";
import { machine } from "./lib/machine.mjs";
import { fmt, markdownTable, progressLog, writeJson } from "./lib/report.mjs";
import { median } from "./lib/stats.mjs";

const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    rounds: { type: "string", default: "5" },
    requests: { type: "string", default: "1500" },
    concurrency: { type: "string", default: "16" },
    blobs: { type: "string", default: "100" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log("node bench/metrics.mjs -- [--rounds N] [--requests N] [--concurrency N] [--out FILE]");
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const REQUESTS = positive(flags, "requests");
const CONCURRENCY = positive(flags, "concurrency");
const BLOBS = positive(flags, "blobs");
const HOT_SEGMENT = 900; // stores per hot number: under MAX_LIVE_PER_NUMBER (1,000)
const TARGET_RATIO = 0.95;
const progress = progressLog("metrics");

async function sealBlobs(count) {
  const m = await importBundle({
    name: "bench-metrics-seal",
    source: `
        export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
        export { canonicalTn } from "./src/stir/tn.ts";
        export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
  });
  const tn = m.canonicalTn("15550100000");
  const callee = await m.generateRecipientKeyPair();
  const blobs = [];
  for (let i = 0; i < count; i++) {
    blobs.push(m.encodeEnvelope(await m.sealPassport(callee.publicKey, tn, m.RFC8816_EXAMPLE_PASSPORT)));
  }
  return blobs;
}

/** The stored total the "on" server reports (cps_passports_stored_total). */
async function storedTotal(url, token) {
  const res = await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  const m = /^cps_passports_stored_total (\d+)$/m.exec(await res.text());
  return m ? Number(m[1]) : Number.NaN;
}

async function main() {
  const started = Date.now();
  const env = machine();
  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  progress(`rounds ${ROUNDS}, ${REQUESTS} stores per side per round, concurrency ${CONCURRENCY}`);
  const blobs = await sealBlobs(BLOBS);
  const token = randomBytes(32).toString("base64url");
  const common = { ALLOW_UNTOKENED_STORES: "true" };
  progress("starting two wrangler dev servers: METRICS=on and METRICS=off (fresh state dirs)...");
  const servers = {};
  const rounds = { on: [], off: [] };
  let counted;
  try {
    // One after the other: two wrangler dev starting together race for the same inspector port.
    servers.on = await startLocalServer({
      vars: {
        ...common,
        METRICS: "on",
        METRICS_TOKEN_SHA256: createHash("sha256").update(token).digest("base64url"),
      },
    });
    servers.off = await startLocalServer({ vars: { ...common, METRICS: "off" } });
    // Each side has its own run of hot numbers (disjoint prefixes), fresh in every round.
    const counters = { on: 0, off: 0 };
    const prefix = { on: "1555081", off: "1555082" };
    const plan = (side) => {
      const base = counters[side];
      counters[side] += Math.ceil(REQUESTS / HOT_SEGMENT);
      const tn = (i) => `${prefix[side]}${String(base + Math.floor(i / HOT_SEGMENT)).padStart(4, "0")}`;
      return (i) => [
        `${servers[side].url}/cps/${tn(i)}/ppts`,
        {
          method: "POST",
          headers: { "Content-Type": "application/passport" },
          body: blobs[i % blobs.length],
        },
        201,
      ];
    };
    progress("warming up...");
    for (const side of ["on", "off"]) await httpLoad(Math.min(REQUESTS, 300), CONCURRENCY, plan(side));
    const before = await storedTotal(servers.on.url, token);
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ["on", "off"] : ["off", "on"];
      for (const side of order) rounds[side].push(await httpLoad(REQUESTS, CONCURRENCY, plan(side)));
      const on = rounds.on.at(-1);
      const off = rounds.off.at(-1);
      progress(
        `round ${r + 1}/${ROUNDS}: on ${fmt(on.rps)} req/s (p99 ${fmt(on.p99, 1)} ms), ` +
          `off ${fmt(off.rps)} req/s (p99 ${fmt(off.p99, 1)} ms), ratio ${fmt(on.rps / off.rps, 3)}`,
      );
    }
    // The "on" side really counted: every store of the rounds is in its figures.
    counted = (await storedTotal(servers.on.url, token)) - before;
  } finally {
    await Promise.all([servers.on?.stop(), servers.off?.stop()]);
  }

  const side = (k) => ({
    rps: median(rounds[k].map((x) => x.rps)),
    p50: median(rounds[k].map((x) => x.p50)),
    p99: median(rounds[k].map((x) => x.p99)),
    errors: rounds[k].reduce((n, x) => n + (x.requests - x.ok), 0),
  });
  const ratios = rounds.on.map((on, i) => on.rps / rounds.off[i].rps);
  const summary = {
    on: side("on"),
    off: side("off"),
    ratio: median(ratios),
    ratioRange: [Math.min(...ratios), Math.max(...ratios)],
    target: TARGET_RATIO,
    storesCounted: counted,
    storesSent: ROUNDS * REQUESTS,
  };
  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\nMetrics cost: store-hot with METRICS=on vs off, wrangler dev (workerd ${env.workerd}) on ${env.nproc} x ${env.cpu}, Node ${env.node}`,
  );
  console.log(
    `medians of ${ROUNDS} interleaved rounds, ${REQUESTS} stores per side per round, concurrency ${CONCURRENCY}\n`,
  );
  console.log(
    markdownTable(
      ["METRICS", "req/s", "p50 ms", "p99 ms", "errors", "on/off"],
      [
        [
          "on",
          fmt(summary.on.rps),
          fmt(summary.on.p50, 1),
          fmt(summary.on.p99, 1),
          fmt(summary.on.errors),
          `${fmt(summary.ratio, 3)} (rounds ${fmt(summary.ratioRange[0], 3)}-${fmt(summary.ratioRange[1], 3)}; target >= ${TARGET_RATIO})`,
        ],
        [
          "off",
          fmt(summary.off.rps),
          fmt(summary.off.p50, 1),
          fmt(summary.off.p99, 1),
          fmt(summary.off.errors),
          "",
        ],
      ],
      (c) => c >= 1 && c <= 4,
    ),
  );
  console.log(`\nstores counted by the "on" server's /metrics: ${counted} of ${summary.storesSent} sent`);
  const day = new Date().toISOString().slice(0, 10);
  const out = flags.out ?? `${REPO_ROOT}/bench/results/metrics-${day}.json`;
  await writeJson(out, {
    date: new Date().toISOString(),
    command: `node bench/metrics.mjs -- --rounds ${ROUNDS} --requests ${REQUESTS} --concurrency ${CONCURRENCY}`,
    machine: env,
    config: {
      rounds: ROUNDS,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      blobs: BLOBS,
      hotSegment: HOT_SEGMENT,
    },
    summary,
    rounds,
    elapsedSeconds: elapsed,
  });
  console.log(`${fmt(elapsed)} s in all; figures in ${out}`);
  if (summary.on.errors > 0 || summary.off.errors > 0 || counted !== summary.storesSent) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
