/** Types for stats.mjs: summary statistics shared by the benchmark scripts. */

export function ascending(values: ArrayLike<number> | Iterable<number>): Float64Array;
export function percentile(sorted: ArrayLike<number>, p: number): number | null;
export function median(values: ArrayLike<number> | Iterable<number>): number;
export function stats(values: ArrayLike<number> | Iterable<number>): {
  p50: number | null;
  p99: number | null;
  n: number;
};
export function prng(seed: number): () => number;
export function shuffle<T>(xs: T[], rand: () => number): T[];
