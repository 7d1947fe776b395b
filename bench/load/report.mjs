/** The soak's result: the JSON of the run and the summary printed to stdout. */
import { loadAverage } from "../lib/machine.mjs";
import { fmt, markdownTable } from "../lib/report.mjs";
import {
  EMPTY_NUMBERS,
  FALLBACK_LAG_MS,
  REQUEST_TIMEOUT_MS,
  SHARES,
  STORE_NUMBERS,
  TOKEN_BATCH,
  USES_PER_TOKEN,
} from "./config.mjs";
import { latencySummary } from "./op-stats.mjs";

/** The JSON of the run: configuration, machine, per-operation figures, the check and the verdict. */
export function report({ flags, env, started, vars, phases, lags, stats, verifier, traffic, client }) {
  const verification = { ...verifier.summary(), emptyListEntries: traffic.emptyListEntries };
  const failures = [];
  if (verification.blobsLost > 0)
    failures.push(`${verification.blobsLost} blobs lost (not served while live)`);
  if (verification.blobsLingering > 0)
    failures.push(`${verification.blobsLingering} blobs lingering (served after expiry)`);
  if (verification.blobsCorrupt > 0)
    failures.push(`${verification.blobsCorrupt} blobs served with other bytes`);
  if (stats.fiveXX > 0) failures.push(`${stats.fiveXX} answers with a 5xx status`);
  if (traffic.clientErrors.length > 0) {
    failures.push(`${traffic.clientErrors.length} errors in the load generator: ${traffic.clientErrors[0]}`);
  }
  const exitCode = failures.length > 0 ? 1 : verification.blobsUnverified > 0 ? 3 : 0;
  if (exitCode === 3) failures.push(`${verification.blobsUnverified} blobs could not be checked`);
  const round = (x) => Math.round(x * 100) / 100;
  return {
    date: new Date(started).toISOString(),
    command:
      `npm run load -- --duration ${flags.duration} --rate ${flags.rate} --ttl ${flags.ttl}` +
      (flags.maxInFlight === 200 ? "" : ` --max-in-flight ${flags.maxInFlight}`),
    machine: { ...env, loadAverageAtEnd: loadAverage() },
    config: {
      durationSeconds: flags.duration,
      rate: flags.rate,
      ttlSeconds: flags.ttl,
      maxInFlight: flags.maxInFlight,
      shares: SHARES,
      tokenBatch: TOKEN_BATCH,
      usesPerToken: USES_PER_TOKEN,
      storeNumbers: STORE_NUMBERS,
      emptyNumbers: EMPTY_NUMBERS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      fallbackLagMs: FALLBACK_LAG_MS,
      vars: {
        ...vars,
        TRUST_ANCHORS_PEM: "(root of a test PKI made at run time)",
        TOKEN_ISSUER_KEYS: "(one RSA-2048 key made at run time)",
      },
    },
    phases: { trafficSeconds: round(phases.trafficSeconds), drainSeconds: round(phases.drainSeconds) },
    generator: {
      launchLagMs: latencySummary(lags),
      inFlightCapHits: stats.capHits,
      issueClientMs: latencySummary(client.issueClientMs),
    },
    operations: stats.summary(phases.trafficSeconds),
    fiveXX: stats.fiveXX,
    verification,
    failures,
    clientErrors: traffic.clientErrors.slice(0, 10),
    exitCode,
    elapsedSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

export function printSummary(result, out) {
  const { machine: m, verification: v } = result;
  console.log(
    `\nLoad and soak, wrangler dev (workerd ${m.workerd}) on ${m.nproc} x ${m.cpu}, Node ${m.node}`,
  );
  console.log(
    `${result.command}: open loop at ${result.config.rate} req/s for ${fmt(result.phases.trafficSeconds, 1)} s, ` +
      `TTL ${result.config.ttlSeconds} s, storage tokens required; load average ` +
      `${m.loadAverageAtStart.join(" ")} at start, ${m.loadAverageAtEnd.join(" ")} at end\n`,
  );
  console.log(table(result.operations));
  console.log(
    `\nblobs stored ${fmt(v.blobsStored)}: live by id ${fmt(v.liveById)}, live in list ${fmt(v.liveInList)}, ` +
      `gone by id ${fmt(v.goneById)}, gone from list ${fmt(v.goneFromList)}`,
  );
  console.log(
    `blobsLost ${v.blobsLost}, blobsLingering ${v.blobsLingering}, blobsCorrupt ${v.blobsCorrupt}, ` +
      `blobsUnverified ${v.blobsUnverified}; 5xx ${result.fiveXX}; in-flight cap (${result.config.maxInFlight}) ` +
      `hit ${result.generator.inFlightCapHits} times; launch lag p99 ${fmt(result.generator.launchLagMs.p99, 1)} ms`,
  );
  console.log(
    result.failures.length > 0 ? `FAIL (exit ${result.exitCode}): ${result.failures.join("; ")}` : "PASS",
  );
  console.log(`\n${fmt(result.elapsedSeconds)} s in all; figures in ${out}`);
}

function table(operations) {
  const head = ["op", "offered/s", "achieved/s", "sent", "p50 ms", "p95 ms", "p99 ms", "errors"];
  const rows = Object.entries(operations).map(([op, o]) => [
    op,
    fmt(o.offeredPerSecond, 1),
    fmt(o.achievedPerSecond, 1),
    fmt(o.sent),
    fmt(o.latencyMs.p50, 1),
    fmt(o.latencyMs.p95, 1),
    fmt(o.latencyMs.p99, 1),
    o.errorCount === 0
      ? "0"
      : `${o.errorCount} (${Object.entries(o.errors)
          .map(([k, n]) => `${k}: ${n}`)
          .join(", ")})`,
  ]);
  return markdownTable(head, rows, (c) => c >= 1 && c <= 6);
}
