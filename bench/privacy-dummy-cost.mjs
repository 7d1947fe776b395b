/**
 * Dummy cost (issue item 4; RFC 8816 §6.2 dummies on every retrieval): what a retrieval of an EMPTY
 * number costs against the platform baseline in the same run, on the real Worker (wrangler dev).
 *
 * Per server, interleaved, after a warm-up:
 *   empty   GET /cps/{tn}/ppts for numbers with nothing stored (1-3 dummies each), 20 numbers polled
 *           round-robin (a VS polls its own number; the pool is per number)
 *   missing GET /cps/{tn}/ppts/{id} of an unknown id: the same route parsing, DO hop and SQLite read,
 *           no dummies (a 404): the control that isolates the dummy work
 *   base    GET /_bench/baseline/{key}/{id}: a bare DO read (the bench Worker, bench/wrangler.toml)
 * once back to back and once paced (--gap ms idle before each request, default 5: the pool refills in
 * idle time, so only pacing shows what it takes off the request path), and a throughput phase
 * (16 concurrent clients) of empty retrievals vs baseline reads.
 * Reports medians (ms), ratios to the baseline, and empty - missing. First, in process (Node's
 * WebCrypto, bench/privacy-dummy-micro.ts): one makeDummy, and one retrieval's dummies with the pool
 * drained vs warm.
 *
 *   node bench/privacy-dummy-cost.mjs [--before DIR] [--rounds R] [--per N] [--gap MS] [--micro-only]
 * --before DIR also measures the tree in DIR (e.g. `git archive <commit> | tar -x -C DIR` with a
 * node_modules symlink), one server after the other, each beside a bench Worker of this tree.
 */
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT, startLocalServer as startHere } from "../src/dev/local-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { argvFlag, argvOption } from "./lib/args.mjs";
import { closedLoop, sleep } from "./lib/closed-loop.mjs";
import { resultFile, writeJson } from "./lib/report.mjs";
import { median } from "./lib/stats.mjs";

const ROUNDS = Number(argvOption("rounds", 5));
const PER = Number(argvOption("per", 300));
const before = argvOption("before", null);
/** Idle time between requests in the paced phase: a pool refills in idle time, not under saturation. */
const GAP = Number(argvOption("gap", 5));

async function measure(label, root) {
  const { freePort, startLocalServer } = await import(
    pathToFileURL(join(root, "src/dev/local-server.mjs")).href
  );
  // Own inspector port: another wrangler dev on the machine may hold the default one.
  const srv = await startLocalServer({ args: ["--inspector-port", String(await freePort())] });
  // The baseline is its own Worker, never part of the CPS.
  const bench = await startHere({
    config: "bench/wrangler.toml",
    args: ["--inspector-port", String(await freePort())],
  }).catch(async (err) => {
    await srv.stop();
    throw err;
  });
  try {
    const u = srv.url;
    const put = await fetch(`${bench.url}/_bench/baseline/k`, { method: "POST", body: new Uint8Array(1072) });
    const { id } = await put.json();
    const tns = Array.from({ length: 20 }, (_, i) => `1555070${String(i).padStart(4, "0")}`);
    const url = {
      empty: (i) => `${u}/cps/${tns[i % tns.length]}/ppts`,
      missing: (i) => `${u}/cps/${tns[i % tns.length]}/ppts/${"0".repeat(32)}`,
      base: () => `${bench.url}/_bench/baseline/k/${id}`,
    };
    const once = async (f, i) => {
      const t0 = performance.now();
      const res = await fetch(f(i));
      await res.arrayBuffer();
      return performance.now() - t0;
    };
    for (let i = 0; i < 200; i++) for (const f of Object.values(url)) await once(f, i);
    const rounds = [];
    const phase = async (gap) => {
      const t = { empty: [], missing: [], base: [] };
      const keys = Object.keys(url);
      for (let i = 0; i < PER; i++) {
        for (let k = 0; k < 3; k++) {
          const key = keys[(i + k) % 3];
          if (gap) await sleep(gap);
          t[key].push(await once(url[key], i));
        }
      }
      return { emptyMs: median(t.empty), missingMs: median(t.missing), baseMs: median(t.base) };
    };
    for (let r = 0; r < ROUNDS; r++) {
      const b2b = await phase(0);
      const paced = await phase(GAP);
      const throughput = async (f, n = PER * 2, c = 16) => {
        const seconds = await closedLoop(n, c, async (i) => {
          const res = await fetch(f(i));
          await res.arrayBuffer();
        });
        return n / seconds;
      };
      const rpsEmpty = await throughput(url.empty);
      const rpsBase = await throughput(url.base);
      rounds.push({
        ...b2b,
        pacedEmptyMs: paced.emptyMs,
        pacedMissingMs: paced.missingMs,
        pacedBaseMs: paced.baseMs,
        rpsEmpty,
        rpsBase,
      });
    }
    const m = (k) => median(rounds.map((r) => r[k]));
    const out = {
      label,
      root,
      rounds: ROUNDS,
      perRound: PER,
      medianMs: { empty: m("emptyMs"), missing: m("missingMs"), base: m("baseMs") },
      latencyRatioEmptyToBase: median(rounds.map((r) => r.emptyMs / r.baseMs)),
      latencyRatioMissingToBase: median(rounds.map((r) => r.missingMs / r.baseMs)),
      dummyShareMs: median(rounds.map((r) => r.emptyMs - r.missingMs)),
      paced: {
        gapMs: GAP,
        medianMs: { empty: m("pacedEmptyMs"), missing: m("pacedMissingMs"), base: m("pacedBaseMs") },
        latencyRatioEmptyToBase: median(rounds.map((r) => r.pacedEmptyMs / r.pacedBaseMs)),
        dummyShareMs: median(rounds.map((r) => r.pacedEmptyMs - r.pacedMissingMs)),
      },
      rps: { empty: m("rpsEmpty"), base: m("rpsBase") },
      throughputRatioEmptyToBase: median(rounds.map((r) => r.rpsEmpty / r.rpsBase)),
    };
    console.log(`\n${label} (${root})`);
    console.log(
      `  back to back: empty ${out.medianMs.empty.toFixed(3)} ms, missing-id ${out.medianMs.missing.toFixed(3)} ms,` +
        ` baseline ${out.medianMs.base.toFixed(3)} ms`,
    );
    console.log(
      `  ratios to baseline: empty ${out.latencyRatioEmptyToBase.toFixed(2)}, missing-id ${out.latencyRatioMissingToBase.toFixed(2)};` +
        ` empty - missing-id ${out.dummyShareMs.toFixed(3)} ms`,
    );
    console.log(
      `  paced (${GAP} ms idle): empty ${out.paced.medianMs.empty.toFixed(3)} ms, missing-id ${out.paced.medianMs.missing.toFixed(3)} ms,` +
        ` baseline ${out.paced.medianMs.base.toFixed(3)} ms; empty/baseline ${out.paced.latencyRatioEmptyToBase.toFixed(2)};` +
        ` empty - missing-id ${out.paced.dummyShareMs.toFixed(3)} ms`,
    );
    console.log(
      `  throughput (16 clients): empty ${out.rps.empty.toFixed(0)}/s, baseline ${out.rps.base.toFixed(0)}/s,` +
        ` ratio ${out.throughputRatioEmptyToBase.toFixed(2)}`,
    );
    return out;
  } finally {
    await Promise.all([srv.stop(), bench.stop()]);
  }
}

const results = { when: new Date().toISOString(), node: process.version, servers: [] };
{
  const { micro } = await importBundle({
    name: "privacy-dummy-micro",
    entry: join(REPO_ROOT, "bench", "privacy-dummy-micro.ts"),
  });
  results.micro = await micro();
  const m = results.micro;
  console.log(`in process (Node ${process.version}, medians of ${m.rounds} x ${m.per}):`);
  console.log(
    `  makeDummy ${m.makeDummyMs.toFixed(3)} ms; one retrieval's decoys (~3): cache cold ` +
      `${m.dummiesPerRetrievalMs.drained.toFixed(3)} ms, cache warm ${m.dummiesPerRetrievalMs.warm.toFixed(3)} ms`,
  );
}
if (!argvFlag("micro-only")) {
  if (before) results.servers.push(await measure("before", resolve(before)));
  results.servers.push(await measure("this tree", REPO_ROOT));
}
const file = resultFile("dummy-cost", results.when);
await writeJson(file, results);
console.log(`\nwrote ${file}`);
