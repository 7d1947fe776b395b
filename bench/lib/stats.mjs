/**
 * Summary statistics of the benchmark scripts (bench/*.mjs, and the bench/*.ts files that esbuild,
 * vitest or workerd load). Pure: no Node built-ins, so bench/tokens.workerd.ts can use it inside
 * workerd. Types: stats.d.mts.
 */

/** The values in ascending order, as a new Float64Array (the input is left alone). */
export function ascending(values) {
  return Float64Array.from(values).sort();
}

/**
 * The nearest-rank p-th percentile of values sorted ascending: the smallest value with at least p % of
 * the values at or below it (p50 of an even count is the lower middle value). null when there are none.
 */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The median: the middle value, or the mean of the two middle ones for an even count (NaN if none). */
export function median(values) {
  const s = ascending(values);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** p50, p99 (nearest rank) and the count of the values. */
export function stats(values) {
  const s = ascending(values);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

/** Deterministic PRNG (mulberry32): the same seed gives the same sequence in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `xs` in place (Fisher-Yates) with `rand` (a `prng`, for a repeatable order); returns it. */
export function shuffle(xs, rand) {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}
