/**
 * The two ways out of the hub's figures: OpenMetrics text for monitoring systems (exposition
 * format 1.0) and the JSON time series the operator console draws. Pure.
 */
import { LATENCY_BUCKETS_SECONDS, mergeSample, quantile, RETRIEVAL_KINDS, type Sample } from "./sample.js";

/** The content type of `GET /metrics` (OpenMetrics 1.0). */
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** What the hub knows at one moment. */
export interface HubState {
  /** Counts since the hub's figures began (`createdMs`). */
  totals: Sample;
  createdMs: number;
  /** Gauges now. */
  liveBlobs: number;
  subscribers: number;
}

/** Label values are from closed sets (sample.ts); escaping is still done as the format says. */
function esc(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** A number as OpenMetrics writes it. */
function num(n: number): string {
  if (n === Number.POSITIVE_INFINITY) return "+Inf";
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(12)));
}

/** Sorted entries, so the output is stable from scrape to scrape. */
const sorted = <T>(o: Record<string, T>) =>
  Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export function renderOpenMetrics(state: HubState): string {
  const t = state.totals;
  const out: string[] = [];
  const created = num(state.createdMs / 1000);
  const family = (name: string, type: string, help: string, unit?: string) => {
    out.push(`# TYPE ${name} ${type}`);
    if (unit) out.push(`# UNIT ${name} ${unit}`);
    out.push(`# HELP ${name} ${help}`);
  };
  const counter = (name: string, lbl: Record<string, string>, value: number) => {
    out.push(`${name}_total${labels(lbl)} ${num(value)}`);
    out.push(`${name}_created${labels(lbl)} ${created}`);
  };

  family("cps_http_requests", "counter", "Requests answered, by route pattern, method and status.");
  for (const [key, r] of sorted(t.requests)) {
    const [method, route] = key.split(" ") as [string, string];
    for (const [status, n] of sorted(r.status)) counter("cps_http_requests", { route, method, status }, n);
  }

  family(
    "cps_http_request_duration_seconds",
    "histogram",
    "Time from a request reaching the app to its answer, by route pattern and method.",
    "seconds",
  );
  for (const [key, r] of sorted(t.requests)) {
    const [method, route] = key.split(" ") as [string, string];
    let cumulative = 0;
    const name = "cps_http_request_duration_seconds";
    for (let i = 0; i < r.hist.length; i++) {
      cumulative += r.hist[i]!;
      const le = LATENCY_BUCKETS_SECONDS[i] ?? Number.POSITIVE_INFINITY;
      out.push(`${name}_bucket${labels({ route, method, le: num(le) })} ${num(cumulative)}`);
    }
    out.push(`${name}_count${labels({ route, method })} ${num(cumulative)}`);
    out.push(`${name}_sum${labels({ route, method })} ${num(r.sum)}`);
    out.push(`${name}_created${labels({ route, method })} ${created}`);
  }

  family("cps_http_errors", "counter", "Problem answers (4xx and 5xx) by their stable code.");
  for (const [code, n] of sorted(t.errors)) counter("cps_http_errors", { code }, n);

  family("cps_passports_stored", "counter", "Sealed PASSporTs stored (201 answers to POST /cps/{tn}/ppts).");
  counter("cps_passports_stored", {}, t.stores);

  family("cps_passport_retrievals", "counter", "Retrieval answers by kind: list, one, block.");
  for (const kind of [...RETRIEVAL_KINDS].sort()) {
    counter("cps_passport_retrievals", { kind }, t.retrievals[kind] ?? 0);
  }

  family("cps_storage_tokens_issued", "counter", "Storage tokens blind-signed (POST /tokens).");
  counter("cps_storage_tokens_issued", {}, t.tokensIssued);
  family("cps_storage_tokens_spent", "counter", "Stores paid with a storage token.");
  counter("cps_storage_tokens_spent", {}, t.tokensSpent);

  family("cps_live_passports", "gauge", "Stored PASSporTs within their TTL, in total (decoys excluded).");
  out.push(`cps_live_passports ${num(state.liveBlobs)}`);
  family("cps_push_subscribers", "gauge", "WebSocket push subscribers connected, in total.");
  out.push(`cps_push_subscribers ${num(state.subscribers)}`);

  out.push("# EOF");
  return `${out.join("\n")}\n`;
}

/** One interval of the console's series. */
export interface SeriesPoint {
  /** Interval start, ms since the epoch. */
  t: number;
  /** Requests per second by `${method} ${route}`. */
  requestsPerSecond: Record<string, number>;
  stores: number;
  retrievals: number;
  tokensIssued: number;
  tokensSpent: number;
  /** Problem answers by code. */
  errors: Record<string, number>;
  /** Latency quantiles over every route, seconds; null in an interval without requests. */
  p50: number | null;
  p99: number | null;
  liveBlobs: number;
  subscribers: number;
}

/** What `GET /console/data` answers. */
export interface ConsoleData {
  intervalSeconds: number;
  ttlSeconds: number;
  now: number;
  series: SeriesPoint[];
  /** Over the window: per route, requests and p50/p99 (seconds). */
  routes: { route: string; method: string; requests: number; p50: number | null; p99: number | null }[];
  gauges: { liveBlobs: number; subscribers: number };
}

/** One stored interval: its sample and the gauges at its end. */
export interface Interval {
  start: number;
  sample: Sample;
  subscribers: number;
}

/**
 * The console's series over [from, to): one point per interval, empty intervals as zeros, gauges
 * carried forward. Live blobs at an interval's end = stores in the TTL before it (every blob lives
 * exactly one TTL from its store, docs/design.md invariant 4), counted at interval granularity.
 */
export function buildSeries(
  intervals: readonly Interval[],
  from: number,
  to: number,
  intervalMs: number,
  ttlMs: number,
  subscribersBefore: number,
): SeriesPoint[] {
  const byStart = new Map(intervals.map((i) => [i.start, i]));
  const points: SeriesPoint[] = [];
  let subscribers = subscribersBefore;
  for (let t = from; t < to; t += intervalMs) {
    const i = byStart.get(t);
    const s = i?.sample;
    if (i) subscribers = i.subscribers;
    const all = new Array(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
    const rps: Record<string, number> = {};
    for (const [key, r] of Object.entries(s?.requests ?? {})) {
      const n = r.hist.reduce((a, b) => a + b, 0);
      rps[key] = n / (intervalMs / 1000);
      for (let k = 0; k < all.length; k++) all[k] += r.hist[k] ?? 0;
    }
    points.push({
      t,
      requestsPerSecond: rps,
      stores: s?.stores ?? 0,
      retrievals: Object.values(s?.retrievals ?? {}).reduce((a, b) => a + b, 0),
      tokensIssued: s?.tokensIssued ?? 0,
      tokensSpent: s?.tokensSpent ?? 0,
      errors: { ...(s?.errors ?? {}) },
      p50: quantile(all, 0.5),
      p99: quantile(all, 0.99),
      liveBlobs: liveBlobsAt(intervals, t + intervalMs, intervalMs, ttlMs),
      subscribers,
    });
  }
  return points;
}

/**
 * Blobs alive at `at`: stores of the intervals that ended within the TTL before `at` (a store in an
 * interval is taken to happen at its end, so the estimate errs by at most one interval's stores).
 */
export function liveBlobsAt(
  intervals: readonly Interval[],
  at: number,
  intervalMs: number,
  ttlMs: number,
): number {
  let live = 0;
  for (const i of intervals) {
    const end = i.start + intervalMs;
    if (end <= at && end + ttlMs > at) live += i.sample.stores;
    else if (i.start < at && end > at) live += i.sample.stores; // the interval still running
  }
  return live;
}

/** Totals over a set of intervals (the console's "last N minutes" table). */
export function sumIntervals(intervals: readonly Interval[], into: Sample): Sample {
  for (const i of intervals) mergeSample(into, i.sample);
  return into;
}
