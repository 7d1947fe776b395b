#!/usr/bin/env node
/**
 * One Durable Object's ceiling, and what spreading a hot number over shards costs here (issue 20 item 3;
 * docs/capacity.md "Hot numbers"). One CPS (`npm start`, as bench/peer/cps.mjs `startCps` runs it, with
 * `--var HOT_NUMBERS:<hot>:<shards>` and `--var PASSPORT_TTL_SECONDS:<ttl>`) and two numbers: a normal
 * one (one PassportQueue) and a hot one (`--shards` objects). For each, a closed loop of `--requests`
 * requests with `--concurrency` in flight, in two mixes: `mixed` (stores and list retrievals
 * alternating, the call centre's store + retrieve) and `stores` (stores only). Rounds interleave the
 * two numbers, the order alternating per round; reported: medians of requests/s, p50 and p99 per
 * number and mix, and the sharded/unsharded ratio (median of the per-round ratios).
 *
 *   npm run bench:hot -- [--rounds 3] [--requests 2000] [--concurrency 32] [--shards 4] [--ttl 1]
 *
 * READ THIS BEFORE THE FIGURES: on this machine every object of the CPS runs in the one workerd
 * process on one thread (and the load generator shares the 2 cores), so shards cannot add capacity
 * here: what this shows is sharding's cost (a list asks every shard: `shards` RPCs instead of one), not
 * the gain it gives on Cloudflare, where each object runs on its own machine and each shard brings
 * its own ~1,000 requests/s. One object's ceiling here is the unsharded requests/s.
 *
 * The TTL is 1 s (not the 60 s default) so that a list holds about one second of stores, the same
 * for both numbers whatever the rate: with 60 s a list of a number stored to at hundreds per second
 * would be megabytes, and the figure would measure JSON, not the object.
 */
import { parseArgs } from "node:util";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { closedLoop, sleep } from "./lib/closed-loop.mjs";
import { loadAverage, machine } from "./lib/machine.mjs";
import { fmt, markdownTable, progressLog, resultFile, writeJson } from "./lib/report.mjs";
import { ascending, median, percentile } from "./lib/stats.mjs";
import { startCps } from "./peer/cps.mjs";

const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "32" },
    shards: { type: "string", default: "4" },
    ttl: { type: "string", default: "1" },
    blobs: { type: "string", default: "64" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(
    "npm run bench:hot -- [--rounds N] [--requests N] [--concurrency N] [--shards 2..16] [--ttl S] [--out FILE]",
  );
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const REQUESTS = positive(flags, "requests");
const CONCURRENCY = positive(flags, "concurrency");
const SHARDS = positive(flags, "shards");
const TTL = positive(flags, "ttl");
const BLOBS = positive(flags, "blobs");
if (SHARDS < 2 || SHARDS > 16) {
  console.error("--shards must be 2..16 (HOT_NUMBERS)");
  process.exit(2);
}
const NUMBERS = { unsharded: "15550207700", sharded: "15550207701" };
const MIXES = ["mixed", "stores"];
const progress = progressLog("hot-number");

const CAVEAT =
  "On this 2-core machine all objects share one workerd thread (and the load generator the cores), so " +
  "sharding shows its cost here (a list asks every shard), not the gain it gives on Cloudflare, where " +
  "objects run on different machines. One object's ceiling here is the unsharded requests/s.";

/** Distinct sealed blobs (stored again and again: without a retry key each is a new store). */
async function sealBlobs(count) {
  const m = await importBundle({
    name: "bench-hot-number-seal",
    source: `
        export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
        export { canonicalTn } from "./src/stir/tn.ts";
        export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
  });
  const callee = await m.generateRecipientKeyPair();
  const blobs = [];
  for (let i = 0; i < count; i++) {
    const tn = m.canonicalTn(i % 2 === 0 ? NUMBERS.unsharded : NUMBERS.sharded);
    blobs.push(m.encodeEnvelope(await m.sealPassport(callee.publicKey, tn, m.RFC8816_EXAMPLE_PASSPORT)));
  }
  return blobs;
}

/**
 * One closed loop against `tn`: request i is a store, or in the `mixed` mix every odd one a list.
 * Returns requests/s (answers as expected), p50/p99 overall and per kind, the lists' mean length and
 * the count of each unexpected status.
 */
async function run(url, tn, mix, count, blobs) {
  const lat = { store: [], list: [] };
  const unexpected = {};
  let ok = 0;
  let listed = 0;
  const seconds = await closedLoop(count, CONCURRENCY, async (i) => {
    const kind = mix === "mixed" && i % 2 === 1 ? "list" : "store";
    const t0 = performance.now();
    let status;
    try {
      const res =
        kind === "store"
          ? await fetch(`${url}/cps/${tn}/ppts`, {
              method: "POST",
              headers: { "Content-Type": "application/passport" },
              body: blobs[i % blobs.length],
            })
          : await fetch(`${url}/cps/${tn}/ppts`);
      const body = await res.text();
      status = res.status;
      if (kind === "list" && status === 200) listed += JSON.parse(body).passports.length;
    } catch (err) {
      status = err?.cause?.code ?? "fetch-error";
    }
    lat[kind].push(performance.now() - t0);
    if (status === (kind === "store" ? 201 : 200)) ok++;
    else unexpected[status] = (unexpected[status] ?? 0) + 1;
  });
  const all = ascending([...lat.store, ...lat.list]);
  const pct = (xs, p) => (xs.length === 0 ? null : percentile(ascending(xs), p));
  return {
    requests: count,
    ok,
    unexpected,
    seconds,
    rps: ok / seconds,
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    store: { p50: pct(lat.store, 50), p99: pct(lat.store, 99) },
    list: {
      p50: pct(lat.list, 50),
      p99: pct(lat.list, 99),
      meanLength: lat.list.length ? listed / lat.list.length : null,
    },
  };
}

async function main() {
  const started = new Date();
  const env = machine();
  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  progress(
    `rounds ${ROUNDS}, ${REQUESTS} requests per number per mix per round, concurrency ${CONCURRENCY}, ` +
      `${SHARDS} shards, TTL ${TTL} s; load ${loadAverage().join(" ")}`,
  );
  progress(CAVEAT);
  const blobs = await sealBlobs(BLOBS);
  const vars = { HOT_NUMBERS: `${NUMBERS.sharded}:${SHARDS}`, PASSPORT_TTL_SECONDS: String(TTL) };
  const cps = await startCps({ name: "hot-number", tokened: false, logDir: "/tmp", log: progress, vars });
  const stop = () => cps.stop();
  process.once("SIGINT", () => stop().finally(() => process.exit(130)));
  const results = Object.fromEntries(MIXES.map((mix) => [mix, { unsharded: [], sharded: [] }]));
  const loadBefore = loadAverage();
  try {
    // Both numbers' objects started and warm before timing; a hot number's shards all answer a list.
    progress("warming up...");
    for (const side of ["unsharded", "sharded"]) await run(cps.url, NUMBERS[side], "mixed", 400, blobs);
    for (let r = 0; r < ROUNDS; r++) {
      for (const mix of MIXES) {
        const order = r % 2 === 0 ? ["unsharded", "sharded"] : ["sharded", "unsharded"];
        for (const side of order) {
          await sleep(TTL * 1000 + 200); // the last run's blobs expire: every run starts empty
          results[mix][side].push(await run(cps.url, NUMBERS[side], mix, REQUESTS, blobs));
        }
        const u = results[mix].unsharded.at(-1);
        const s = results[mix].sharded.at(-1);
        progress(
          `round ${r + 1}/${ROUNDS} ${mix}: unsharded ${fmt(u.rps)} req/s (p99 ${fmt(u.p99, 1)} ms), ` +
            `${SHARDS} shards ${fmt(s.rps)} req/s (p99 ${fmt(s.p99, 1)} ms), ratio ${fmt(s.rps / u.rps, 3)}`,
        );
      }
    }
  } finally {
    await stop();
  }

  const side = (xs) => ({
    rps: median(xs.map((x) => x.rps)),
    p50: median(xs.map((x) => x.p50)),
    p99: median(xs.map((x) => x.p99)),
    storeP50: median(xs.map((x) => x.store.p50)),
    listP50: xs[0].list.p50 === null ? null : median(xs.map((x) => x.list.p50)),
    listMeanLength: xs[0].list.meanLength === null ? null : median(xs.map((x) => x.list.meanLength)),
    errors: xs.reduce((n, x) => n + (x.requests - x.ok), 0),
  });
  const summary = {};
  for (const mix of MIXES) {
    const ratios = results[mix].sharded.map((s, i) => s.rps / results[mix].unsharded[i].rps);
    summary[mix] = {
      unsharded: side(results[mix].unsharded),
      sharded: side(results[mix].sharded),
      ratio: median(ratios),
      ratioRange: [Math.min(...ratios), Math.max(...ratios)],
    };
  }
  const rows = [];
  for (const mix of MIXES) {
    for (const k of ["unsharded", "sharded"]) {
      const x = summary[mix][k];
      rows.push([
        mix,
        k === "sharded" ? `${SHARDS} shards` : "1 object",
        fmt(x.rps),
        fmt(x.p50, 1),
        fmt(x.p99, 1),
        fmt(x.storeP50, 1),
        fmt(x.listP50, 1),
        fmt(x.listMeanLength, 0),
        k === "sharded"
          ? `${fmt(summary[mix].ratio, 3)} (${summary[mix].ratioRange.map((v) => fmt(v, 3)).join("-")})`
          : "",
        String(x.errors),
      ]);
    }
  }
  console.log(
    markdownTable(
      [
        "mix",
        "number",
        "req/s",
        "p50 ms",
        "p99 ms",
        "store p50",
        "list p50",
        "list length",
        "sharded/unsharded",
        "errors",
      ],
      rows,
      (c) => c >= 2,
    ),
  );
  console.log(`\n${CAVEAT}`);
  console.log(
    `One object's ceiling here (median, mixed): ${fmt(summary.mixed.unsharded.rps)} requests/s; stores only: ${fmt(summary.stores.unsharded.rps)} stores/s.`,
  );
  const file = flags.out ?? resultFile("hot-number", started.toISOString());
  await writeJson(file, {
    benchmark: "hot-number",
    note: CAVEAT,
    command: `npm run bench:hot -- --rounds ${ROUNDS} --requests ${REQUESTS} --concurrency ${CONCURRENCY} --shards ${SHARDS} --ttl ${TTL}`,
    server: cps.command,
    started: started.toISOString(),
    machine: env,
    load: { before: loadBefore, after: loadAverage() },
    numbers: NUMBERS,
    summary,
    rounds: results,
  });
  progress(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
