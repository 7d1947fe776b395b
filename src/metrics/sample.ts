/**
 * The operator's figures (issue 18, docs/metrics.md), as plain data: what one isolate counts between
 * two flushes and what the MetricsHub object keeps per interval. Pure: no bindings, no I/O.
 *
 * Every label comes from a closed set the code fixes: route PATTERNS (`/cps/{tn}/ppts`, never a
 * path with a number in it), a method from a fixed list, a status code, an error `code` of
 * src/errors.ts. Nothing a client sends can become a label or a series, so no telephone number,
 * blob, token, holder id or address can reach a figure (docs/design.md invariant 6).
 */
import { ERROR_STATUS } from "../errors.js";

/** Upper bounds (seconds) of the latency histogram's buckets; +Inf is implied after the last. */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Length of one time-series interval (ms): events are filed under the interval they happened in. */
export const INTERVAL_MS = 5_000;

/** Methods kept as a label; any other (a client can send any token) is `OTHER`. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** The label of a request that matched no route (a 404 of the not-found handler). */
export const UNMATCHED_ROUTE = "unmatched";

/** One route's requests in one interval. */
export interface RouteFigures {
  /** Answers by status code ("201", "404", ...). */
  status: Record<string, number>;
  /** Per latency bucket, NOT cumulative; one more entry than LATENCY_BUCKETS_SECONDS (+Inf). */
  hist: number[];
  /** Sum of latencies, seconds. */
  sum: number;
}

/** What is counted in one interval (or, as totals, since the hub started). */
export interface Sample {
  /** By `${method} ${routePattern}`. */
  requests: Record<string, RouteFigures>;
  /** Problem answers by `code` (src/errors.ts), `OTHER` for a 4xx/5xx without a known code. */
  errors: Record<string, number>;
  /** Blobs stored (201 answers of POST /cps/{tn}/ppts). */
  stores: number;
  /** Retrieval answers (200) by kind: `list`, `one`, `block`. */
  retrievals: Record<string, number>;
  /** Storage tokens blind-signed (every message of a 200 POST /tokens). */
  tokensIssued: number;
  /** Stores paid with a storage token (201 with a CPS-Token header). */
  tokensSpent: number;
  /** Push subscribers accepted minus those gone (a delta; the hub turns it into a gauge). */
  subscriberDelta: number;
}

export function emptySample(): Sample {
  return {
    requests: {},
    errors: {},
    stores: 0,
    retrievals: {},
    tokensIssued: 0,
    tokensSpent: 0,
    subscriberDelta: 0,
  };
}

/** The bucket index of a latency (seconds). */
export function bucketOf(seconds: number): number {
  let i = 0;
  while (i < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[i]!) i++;
  return i;
}

/** A method label from a fixed set. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : "OTHER";
}

/**
 * A route label from the router's registered pattern: `:tn` becomes `{tn}` (the OpenAPI spelling);
 * a pattern with a wildcard (only middleware has one) means no route matched.
 */
export function routeLabel(pattern: string): string {
  if (pattern === "" || pattern.includes("*")) return UNMATCHED_ROUTE;
  const label = pattern.replace(/:([A-Za-z_][A-Za-z0-9_]*)(\{[^}]*\})?/g, "{$1}");
  // Defence in depth: a label never carries digits from a path or anything outside a plain path.
  return /^[A-Za-z{}/._-]*$/.test(label) && label.length <= 64 ? label || "/" : UNMATCHED_ROUTE;
}

/** An error code label: a code of src/errors.ts, else OTHER. */
export function errorLabel(code: unknown): string {
  return typeof code === "string" && Object.hasOwn(ERROR_STATUS, code) ? code : "OTHER";
}

/** A status label: a three-digit HTTP status. */
export function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : "OTHER";
}

/** Adds one answered request to a sample. */
export function addRequest(s: Sample, key: string, status: string, seconds: number): void {
  let r = s.requests[key];
  if (r === undefined) {
    r = { status: {}, hist: new Array(LATENCY_BUCKETS_SECONDS.length + 1).fill(0), sum: 0 };
    s.requests[key] = r;
  }
  r.status[status] = (r.status[status] ?? 0) + 1;
  r.hist[bucketOf(seconds)]! += 1;
  r.sum += seconds;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** into += from. */
export function mergeSample(into: Sample, from: Sample): void {
  for (const [key, r] of Object.entries(from.requests)) {
    let t = into.requests[key];
    if (t === undefined) {
      t = { status: {}, hist: new Array(LATENCY_BUCKETS_SECONDS.length + 1).fill(0), sum: 0 };
      into.requests[key] = t;
    }
    addCounts(t.status, r.status);
    for (let i = 0; i < t.hist.length; i++) t.hist[i]! += r.hist[i] ?? 0;
    t.sum += r.sum;
  }
  addCounts(into.errors, from.errors);
  addCounts(into.retrievals, from.retrievals);
  into.stores += from.stores;
  into.tokensIssued += from.tokensIssued;
  into.tokensSpent += from.tokensSpent;
  into.subscriberDelta += from.subscriberDelta;
}

/**
 * Rebuilds a sample from untrusted JSON (the hub's own rows, or an RPC argument): every label is
 * checked against the rules above and every count must be a finite number >= 0, so a row or a
 * caller cannot smuggle anything else into a figure. Unknown members are dropped.
 */
export function sanitizeSample(raw: unknown): Sample {
  const out = emptySample();
  if (typeof raw !== "object" || raw === null) return out;
  const r = raw as Record<string, unknown>;
  const count = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
  const counts = (v: unknown, ok: (k: string) => boolean): Record<string, number> => {
    const o: Record<string, number> = {};
    if (typeof v !== "object" || v === null) return o;
    for (const [k, n] of Object.entries(v)) if (ok(k) && count(n) > 0) o[k] = count(n);
    return o;
  };
  if (typeof r.requests === "object" && r.requests !== null) {
    for (const [key, fig] of Object.entries(r.requests as Record<string, unknown>)) {
      const [method, route, extra] = key.split(" ");
      if (extra !== undefined || !method || !route) continue;
      if (methodLabel(method) !== method && method !== "OTHER") continue;
      if (route !== UNMATCHED_ROUTE && routeLabel(route) !== route) continue;
      if (typeof fig !== "object" || fig === null) continue;
      const f = fig as Record<string, unknown>;
      const hist = Array.isArray(f.hist) ? f.hist : [];
      out.requests[key] = {
        status: counts(f.status, (k) => statusLabel(Number(k)) === k),
        hist: Array.from({ length: LATENCY_BUCKETS_SECONDS.length + 1 }, (_, i) => count(hist[i])),
        sum: count(f.sum),
      };
    }
  }
  out.errors = counts(r.errors, (k) => errorLabel(k) === k);
  out.retrievals = counts(r.retrievals, (k) => RETRIEVAL_KINDS.has(k));
  out.stores = count(r.stores);
  out.tokensIssued = count(r.tokensIssued);
  out.tokensSpent = count(r.tokensSpent);
  out.subscriberDelta =
    typeof r.subscriberDelta === "number" && Number.isFinite(r.subscriberDelta) ? r.subscriberDelta : 0;
  return out;
}

/** Kinds of retrieval. */
export const RETRIEVAL_KINDS = new Set(["list", "one", "block"]);

/**
 * The q-quantile (0..1) of a histogram (per-bucket counts), by linear interpolation inside the
 * bucket it falls in (the way monitoring systems estimate it); null without observations. The +Inf
 * bucket answers its lower bound.
 */
export function quantile(hist: readonly number[], q: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    const n = hist[i]!;
    if (n > 0 && seen + n >= rank) {
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_SECONDS[i - 1]!;
      const upper = LATENCY_BUCKETS_SECONDS[i];
      if (upper === undefined) return lower;
      return lower + (upper - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return LATENCY_BUCKETS_SECONDS.at(-1)!;
}
