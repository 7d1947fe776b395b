/** Types for closed-loop.mjs: a fixed number of operations with at most N in flight. */

export function sleep(ms: number): Promise<void>;
export function closedLoop(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<number>;
export function httpLoad(
  count: number,
  concurrency: number,
  makeRequest: (i: number) => [url: string, init: RequestInit | undefined, expectedStatus: number],
): Promise<{
  requests: number;
  ok: number;
  unexpected: Record<string, number>;
  seconds: number;
  rps: number;
  p50: number | null;
  p99: number | null;
}>;
