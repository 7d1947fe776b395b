#!/usr/bin/env node
/**
 * `npm run load`: a load-and-soak run (issue #8, part 1). Starts the CPS under `wrangler dev` with
 * storage tokens REQUIRED and a short PASSporT TTL, drives an open-loop mix of issuance, stores and
 * retrievals at a fixed rate, and checks that every stored blob is served before its expiry and gone
 * after it.
 *
 *   npm run load -- [--duration 60] [--rate 50] [--ttl 60] [--max-in-flight 200] [--out FILE]
 *
 *   --duration S       seconds of traffic (default 60); the run then waits for the last blob's TTL
 *   --rate R           requests/s of the whole mix (default 50), launched on schedule whether or not
 *                      earlier ones have answered (open loop)
 *   --ttl S            the server's PASSPORT_TTL_SECONDS (default 60, 3 to 3600)
 *   --max-in-flight N  launches refused while N requests are outstanding (default 200); each refusal
 *                      is counted and reported, never silently queued
 *   --out FILE         JSON result (default bench/results/load-<ISO date>.json)
 *
 * The mix (shares of --rate, interleaved evenly in a fixed order):
 *   issue       2%  POST /tokens: TokenWallet.refill(3) of the client library (src/client/token-wallet.ts)
 *                   with a STIR credential token from a test PKI made at run time (each refill also
 *                   sends GET /tokens/keys, reported as `token-keys`)
 *   store      18%  POST /cps/{tn}/ppts to one of 100 numbers: a fresh envelope (src/stir/envelope.ts)
 *                   and the headers of TokenWallet.storeHeaders (each token pays for 5 stores, so one
 *                   issue pays for 15 stores where the mix needs 9)
 *   get-id     34%  GET /cps/{tn}/ppts/{id} of a stored blob
 *   list-live  28%  GET /cps/{tn}/ppts of a number holding blobs
 *   list-empty 18%  GET /cps/{tn}/ppts of one of 10,000 numbers never stored to (dummies only)
 *
 * The check. Every blob whose store answered 201 gets four checks: by id and in its number's list, each
 * once at a random moment of its life (before expiry minus a margin) and once after expiry plus 2 s
 * (the alarm's grace; reads filter expired rows anyway). The mix's get-id and list-live requests take
 * the checks that are due; one the mix has not taken 250 ms after it fell due is sent on its own
 * (`verify-get-id`, `verify-list`, outside the offered rate), as is every check after the traffic.
 * Every answer is judged against every tracked blob it covers: an answer received before the blob's
 * expiry must hold it (same bytes), a request sent 2 s or more after it must not; answers in between
 * decide nothing. `blobsLost` = blobs missing from an answer while live, `blobsLingering` = blobs
 * served after expiry, `blobsCorrupt` = served with other bytes, `blobsUnverified` = a check that could
 * not be decided (e.g. every answer came after the expiry).
 *
 * Client CPU: the wallet (RSA blinding is ~50 ms a token on Node's big-number path) and the sealing
 * run in a worker thread, which keeps ready-to-send stores a second or two ahead, so the thread that
 * schedules and times requests is never blocked. A store with no ready store request is counted as
 * skipped (`no-ticket`).
 *
 * Exit code: 0 all checks passed; 1 a blob lost, lingering or corrupt, a 5xx, or the run failed;
 * 2 bad flags; 3 no failure seen but some blob could not be checked (`blobsUnverified` > 0).
 * Progress goes to stderr every 5 s, the table to stdout, everything to the JSON file.
 *
 * Layout: this file sets the run up and tears it down; bench/load/ holds the flags (cli.mjs), the mix
 * and its constants (config.mjs), the open-loop schedule and the drain (scheduler.mjs), the requests
 * (traffic.mjs), the blob checks (verify.mjs), the per-operation counts (op-stats.mjs), the worker
 * thread and its main-thread side (worker.mjs, client-worker.mjs) and the result (report.mjs).
 */
import { rm } from "node:fs/promises";
import { generateIssuerKeyEntry } from "../src/dev/issuer-key.mjs";
import { startLocalServer } from "../src/dev/local-server.mjs";
import { sleep } from "./lib/closed-loop.mjs";
import { loadAverage, machine } from "./lib/machine.mjs";
import { resultFile, writeJson } from "./lib/report.mjs";
import { parseFlags } from "./load/cli.mjs";
import { bundleClient, ClientWorker } from "./load/client-worker.mjs";
import {
  MIX,
  PREFILL_SECONDS,
  progress,
  SHARES,
  STORE_NUMBERS,
  storeNumber,
  USES_PER_TOKEN,
} from "./load/config.mjs";
import { Stats } from "./load/op-stats.mjs";
import { printSummary, report } from "./load/report.mjs";
import { drive } from "./load/scheduler.mjs";
import { Traffic } from "./load/traffic.mjs";
import { Verifier } from "./load/verify.mjs";

async function main() {
  const flags = parseFlags();
  const started = Date.now();
  const env = { ...machine(), loadAverageAtStart: loadAverage() };
  const storeRate = flags.rate * SHARES.store;
  // Live checks fall due in [stored, expiry - 2 x margin], leaving a margin for the answer to come back.
  const marginMs = Math.min(5_000, Math.max(1_000, flags.ttl * 100));
  const ticketTarget = Math.max(4, Math.ceil(storeRate * 2));
  const prefill = Math.max(2, Math.ceil((storeRate * (PREFILL_SECONDS + 2)) / USES_PER_TOKEN));

  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  progress(`load average ${env.loadAverageAtStart.join(" ")}`);
  progress(
    `rate ${flags.rate}/s for ${flags.duration} s, TTL ${flags.ttl} s, max in flight ${flags.maxInFlight}; ` +
      `mix ${MIX.map((k) => `${k} ${Math.round(SHARES[k] * 100)}%`).join(", ")}`,
  );

  progress("bundling the client library (esbuild) and starting its worker thread...");
  const bundle = await bundleClient();
  const stats = new Stats();
  let recording = false;
  const client = new ClientWorker({
    bundle: bundle.outfile,
    ticketTarget,
    onHttp: (msg) => {
      if (!recording) return; // the prefill is not part of the run
      if (msg.op === "token-keys") stats.ops[msg.op].sent++;
      stats.record(msg.op, msg.status, msg.code, msg.ms);
    },
  });
  let server;
  let traffic;
  let verifier;
  let run;
  let vars;
  try {
    const { rootPem } = await client.next("pki");
    await rm(bundle.dir, { recursive: true, force: true });
    const now = Date.now();
    vars = {
      ALLOW_UNTOKENED_STORES: "false",
      PASSPORT_TTL_SECONDS: String(flags.ttl),
      TRUST_ANCHORS_PEM: rootPem,
      TOKEN_ISSUER_KEYS: JSON.stringify([
        await generateIssuerKeyEntry("load-current", now - 3_600_000, now + 86_400_000),
      ]),
      // Not what this run measures: a day's quota far above the run's, and a token may spend all its
      // uses under one number (the per-number window is the TTL).
      TOKEN_DAILY_QUOTA: "100000000",
      TOKEN_MAX_USES: String(USES_PER_TOKEN),
      TOKEN_MAX_USES_PER_NUMBER: String(USES_PER_TOKEN),
    };
    progress("starting wrangler dev (fresh state dir, storage tokens required)...");
    server = await startLocalServer({ vars });

    const numbers = Array.from({ length: STORE_NUMBERS }, (_, i) => storeNumber(i));
    const tokens = await client.start(server.url, numbers, prefill);
    progress(`token wallet prefilled: ${tokens} tokens x ${USES_PER_TOKEN} stores`);
    client.topUp();
    for (const deadline = Date.now() + 30_000; client.tickets.length < ticketTarget; await sleep(20)) {
      if (client.failure) throw client.failure;
      if (Date.now() > deadline) throw new Error("the worker made no store requests in 30 s");
    }

    verifier = new Verifier(marginMs);
    traffic = new Traffic({ url: server.url, stats, verifier, client, maxInFlight: flags.maxInFlight });
    run = await drive({
      flags,
      stats,
      verifier,
      traffic,
      client,
      onStart: () => {
        recording = true;
      },
    });
  } finally {
    await client.terminate();
    await server?.stop();
    await rm(bundle.dir, { recursive: true, force: true });
  }
  const { phases, lags } = run;
  const result = report({ flags, env, started, vars, phases, lags, stats, verifier, traffic, client });
  const out = flags.out ?? resultFile("load", result.date);
  await writeJson(out, result);
  printSummary(result, out);
  process.exitCode = result.exitCode;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
