/** Per-operation counts of the soak: what was scheduled, sent, answered and refused, and the latencies. */
import { ascending, percentile } from "../lib/stats.mjs";
import { EXTRA, MIX, SHARES, WHAT } from "./config.mjs";

/** Answers that are what the request may get; anything else is an error of that operation. */
const EXPECTED = {
  issue: [200],
  "token-keys": [200],
  store: [201],
  "get-id": [200, 404],
  "list-live": [200],
  "list-empty": [200],
  "verify-get-id": [200, 404],
  "verify-list": [200],
};
const isExpected = (op, status, code) =>
  EXPECTED[op].includes(status) && (status !== 404 || code === "NOT_FOUND");

/** p50, p95, p99 and max of the values (ms), to 0.1; null where there are none. */
export function latencySummary(values) {
  const s = ascending(values);
  const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
  return {
    p50: round(percentile(s, 50)),
    p95: round(percentile(s, 95)),
    p99: round(percentile(s, 99)),
    max: round(s.length ? s[s.length - 1] : null),
  };
}

export class Stats {
  fiveXX = 0;
  capHits = 0;
  ops = Object.fromEntries(
    [...MIX, ...EXTRA].map((op) => [
      op,
      { scheduled: 0, sent: 0, answered: 0, ok: 0, skipped: {}, statuses: {}, latencies: [] },
    ]),
  );

  /** One answer of `op`: an HTTP status (and problem `code`), or a transport failure ("timeout"). */
  record(op, status, code, ms) {
    const s = this.ops[op];
    s.answered++;
    const key = code ? `${status} ${code}` : String(status);
    s.statuses[key] = (s.statuses[key] ?? 0) + 1;
    if (typeof status === "number") s.latencies.push(ms);
    if (isExpected(op, status, code)) s.ok++;
    if (typeof status === "number" && status >= 500) this.fiveXX++;
  }

  /** An answer counted as ok whose body turned out to be unusable. */
  unusable(op, status) {
    const s = this.ops[op];
    s.ok--;
    s.statuses[`${status} unparsable`] = (s.statuses[`${status} unparsable`] ?? 0) + 1;
  }

  /** A launch refused: `cap` (max in flight) or `no-ticket` (no store request ready). */
  skip(op, why) {
    const s = this.ops[op];
    s.skipped[why] = (s.skipped[why] ?? 0) + 1;
    if (why === "cap") this.capHits++;
  }

  totals() {
    const all = Object.values(this.ops);
    return {
      sent: all.reduce((n, s) => n + s.sent, 0),
      answered: all.reduce((n, s) => n + s.answered, 0),
      p99: latencySummary(all.flatMap((s) => s.latencies)).p99,
    };
  }

  summary(trafficSeconds) {
    const perSecond = (n) => Math.round((n / trafficSeconds) * 100) / 100;
    return Object.fromEntries(
      Object.entries(this.ops).map(([op, s]) => {
        const errors = {};
        for (const [key, n] of Object.entries(s.statuses)) {
          const [status, code] = key.split(" ");
          if (key.includes("unparsable") || !isExpected(op, Number(status), code)) errors[key] = n;
        }
        for (const [why, n] of Object.entries(s.skipped)) errors[`skipped: ${why}`] = n;
        const inMix = MIX.includes(op);
        return [
          op,
          {
            what: WHAT[op],
            share: inMix ? SHARES[op] : null,
            offeredPerSecond: inMix ? perSecond(s.scheduled) : null,
            achievedPerSecond: inMix ? perSecond(s.ok) : null,
            scheduled: s.scheduled,
            sent: s.sent,
            answered: s.answered,
            ok: s.ok,
            errorCount: Object.values(errors).reduce((n, x) => n + x, 0),
            errors,
            statuses: s.statuses,
            latencyMs: latencySummary(s.latencies),
          },
        ];
      }),
    );
  }
}
