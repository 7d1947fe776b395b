/**
 * Closed-loop load: a fixed number of operations with at most N in flight, each worker starting the
 * next as soon as its last one is done. Pure (global fetch and performance only), so the workerd
 * benchmark can use it too. Types: closed-loop.d.mts. The open-loop soak is bench/load/scheduler.mjs.
 */
import { ascending, percentile } from "./stats.mjs";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs fn(0) .. fn(count - 1), at most `concurrency` at a time; resolves with the wall time in seconds. */
export async function closedLoop(count, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return (performance.now() - t0) / 1000;
}

/**
 * `count` HTTP requests, at most `concurrency` in flight; request i is `makeRequest(i)` ->
 * [url, init, expectedStatus]. A request that gets no answer counts under its error code. Returns
 * throughput (answers with the expected status per second), p50 and p99 latency (ms, the body read
 * included) and the count of each unexpected status.
 */
export async function httpLoad(count, concurrency, makeRequest) {
  const latencies = new Float64Array(count);
  const unexpected = {};
  let ok = 0;
  const seconds = await closedLoop(count, concurrency, async (i) => {
    const [url, init, expected] = makeRequest(i);
    const t0 = performance.now();
    let status;
    try {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      status = res.status;
    } catch (err) {
      status = err?.cause?.code ?? "fetch-error";
    }
    latencies[i] = performance.now() - t0;
    if (status === expected) ok++;
    else unexpected[status] = (unexpected[status] ?? 0) + 1;
  });
  const sorted = ascending(latencies);
  return {
    requests: count,
    ok,
    unexpected,
    seconds,
    rps: ok / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}
