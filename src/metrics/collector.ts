/**
 * One isolate's counts between two flushes to the MetricsHub (docs/metrics.md "How it counts"):
 * plain in-memory sums per 5-second interval, so a request pays a few map updates and no I/O; at
 * most one flush per FLUSH_MS leaves the isolate, in the background (`waitUntil`).
 */
import { emptySample, INTERVAL_MS, type Sample } from "./sample.js";

/** Least time between two flushes of one isolate (ms). */
export const FLUSH_MS = 2_000;

export class Collector {
  private pending = new Map<number, Sample>();
  private lastFlush = Number.NEGATIVE_INFINITY;

  /** The sample of the interval `now` falls in. */
  at(now: number): Sample {
    const start = now - (now % INTERVAL_MS);
    let s = this.pending.get(start);
    if (s === undefined) {
      s = emptySample();
      this.pending.set(start, s);
    }
    return s;
  }

  /** True when a flush is due (and then counts it as done: the caller takes and sends). */
  due(now: number): boolean {
    if (this.pending.size === 0 || now - this.lastFlush < FLUSH_MS) return false;
    this.lastFlush = now;
    return true;
  }

  /** Everything counted so far, emptying the collector. */
  take(): { start: number; sample: Sample }[] {
    const out = [...this.pending].map(([start, sample]) => ({ start, sample }));
    this.pending = new Map();
    return out;
  }
}
