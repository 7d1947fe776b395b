/**
 * MetricsHub: the one object that adds up the operator's figures (docs/metrics.md). Every isolate
 * counts in memory and flushes here at most every few seconds (src/http/metrics.ts); the streaming
 * objects report push subscribers as +1/-1 when a socket is accepted or gone, in the wake-up they
 * already have (nobody wakes an object to ask it). It keeps, in SQLite, the totals since its figures
 * began (the OpenMetrics counters) and one row per 5-second interval for the last hour (the console's
 * time series).
 *
 * What it holds is counts under labels from closed sets (src/metrics/sample.ts re-checks every label
 * of every batch): no telephone number, blob, token, holder id or address, and not which object
 * reported (docs/design.md invariant 6).
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";
import {
  buildSeries,
  type ConsoleData,
  type HubState,
  type Interval,
  liveBlobsAt,
  renderOpenMetrics,
  sumIntervals,
} from "../metrics/render.js";
import {
  emptySample,
  INTERVAL_MS,
  mergeSample,
  quantile,
  type Sample,
  sanitizeSample,
} from "../metrics/sample.js";
import { METRICS_HUB_SCHEMA } from "../storage/layout.js";

/** How long intervals are kept (ms): the console shows at most this much. */
export const RETENTION_MS = 3_600_000;

/** One flushed interval of one isolate. */
export interface IntervalBatch {
  start: number;
  sample: Sample;
}

export class MetricsHub extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private totals = emptySample();
  private createdMs = 0;
  private subscribers = 0;
  /** Intervals within RETENTION_MS, by start. */
  private readonly intervals = new Map<number, Interval>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => this.load());
  }

  private load(): void {
    this.sql.exec(METRICS_HUB_SCHEMA);
    for (const row of this.sql.exec<{ k: string; v: string }>("SELECT k, v FROM totals")) {
      if (row.k === "sample") this.totals = sanitizeSample(JSON.parse(row.v));
      else if (row.k === "created") this.createdMs = Number(row.v) || 0;
      else if (row.k === "subscribers") this.subscribers = Math.max(0, Math.trunc(Number(row.v) || 0));
    }
    if (this.createdMs === 0) {
      this.createdMs = Date.now();
      this.sql.exec("INSERT OR REPLACE INTO totals (k, v) VALUES ('created', ?)", String(this.createdMs));
    }
    const cutoff = Date.now() - RETENTION_MS;
    this.sql.exec("DELETE FROM intervals WHERE start < ?", cutoff);
    for (const row of this.sql.exec<{ start: number; sample: string; subscribers: number }>(
      "SELECT start, sample, subscribers FROM intervals",
    )) {
      this.intervals.set(row.start, {
        start: row.start,
        sample: sanitizeSample(JSON.parse(row.sample)),
        subscribers: row.subscribers,
      });
    }
  }

  /** The interval starting at `start`, made if new. */
  private interval(start: number): Interval {
    let i = this.intervals.get(start);
    if (!i) {
      i = { start, sample: emptySample(), subscribers: this.subscribers };
      this.intervals.set(start, i);
    }
    return i;
  }

  private save(i: Interval): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO intervals (start, sample, subscribers) VALUES (?, ?, ?)",
      i.start,
      JSON.stringify(i.sample),
      i.subscribers,
    );
  }

  private saveTotals(): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO totals (k, v) VALUES ('sample', ?), ('subscribers', ?)",
      JSON.stringify(this.totals),
      String(this.subscribers),
    );
  }

  private prune(now: number): void {
    const cutoff = now - RETENTION_MS;
    let stale = false;
    for (const start of this.intervals.keys()) {
      if (start < cutoff) {
        this.intervals.delete(start);
        stale = true;
      }
    }
    if (stale) this.sql.exec("DELETE FROM intervals WHERE start < ?", cutoff);
  }

  /** An isolate's flush: its counts per interval. Labels are re-checked; odd intervals count in totals only. */
  async ingest(batches: IntervalBatch[]): Promise<void> {
    if (!Array.isArray(batches)) return;
    const now = Date.now();
    for (const b of batches.slice(0, 64)) {
      const sample = sanitizeSample(b?.sample);
      sample.subscriberDelta = 0; // the gauge moves only through addSubscribers
      mergeSample(this.totals, sample);
      const start = Number(b?.start);
      if (
        Number.isInteger(start) &&
        start % INTERVAL_MS === 0 &&
        start >= now - RETENTION_MS &&
        // An isolate's clock may run a little ahead of this object's.
        start <= now + INTERVAL_MS
      ) {
        const i = this.interval(start);
        mergeSample(i.sample, sample);
        i.subscribers = this.subscribers;
        this.save(i);
      }
    }
    this.saveTotals();
    this.prune(now);
  }

  /** A streaming object accepted (+1) or lost (-1) a subscriber. Never below zero. */
  async addSubscribers(delta: number): Promise<void> {
    if (delta !== 1 && delta !== -1) return;
    this.subscribers = Math.max(0, this.subscribers + delta);
    const now = Date.now();
    const i = this.interval(now - (now % INTERVAL_MS));
    i.subscribers = this.subscribers;
    this.save(i);
    this.saveTotals();
  }

  private state(now: number): HubState {
    return {
      totals: this.totals,
      createdMs: this.createdMs,
      liveBlobs: liveBlobsAt([...this.intervals.values()], now, INTERVAL_MS, this.ttlMs()),
      subscribers: this.subscribers,
    };
  }

  private ttlMs(): number {
    return readConfig(this.env).ttlSeconds * 1000;
  }

  /** OpenMetrics text of the totals and gauges. */
  async openMetrics(): Promise<string> {
    return renderOpenMetrics(this.state(Date.now()));
  }

  /** The console's series over the last `windowMs` (at most RETENTION_MS). */
  async consoleData(windowMs: number): Promise<ConsoleData> {
    const now = Date.now();
    const span = Math.min(Math.max(INTERVAL_MS, windowMs), RETENTION_MS);
    const to = now - (now % INTERVAL_MS) + INTERVAL_MS;
    const from = to - Math.ceil(span / INTERVAL_MS) * INTERVAL_MS;
    const all = [...this.intervals.values()];
    const inWindow = all.filter((i) => i.start >= from && i.start < to);
    const before = all.filter((i) => i.start < from).sort((a, b) => b.start - a.start)[0];
    const series = buildSeries(
      all,
      from,
      to,
      INTERVAL_MS,
      this.ttlMs(),
      before?.subscribers ?? this.subscribers,
    );
    const window = sumIntervals(inWindow, emptySample());
    const routes = Object.entries(window.requests)
      .map(([key, r]) => {
        const [method, route] = key.split(" ") as [string, string];
        return {
          route,
          method,
          requests: r.hist.reduce((a, b) => a + b, 0),
          p50: quantile(r.hist, 0.5),
          p99: quantile(r.hist, 0.99),
        };
      })
      .sort((a, b) => b.requests - a.requests);
    const state = this.state(now);
    return {
      intervalSeconds: INTERVAL_MS / 1000,
      ttlSeconds: this.ttlMs() / 1000,
      now,
      series,
      routes,
      gauges: { liveBlobs: state.liveBlobs, subscribers: state.subscribers },
    };
  }
}
