/**
 * Typed configuration from the Worker's vars, checked once per isolate. A missing or malformed var is
 * a deployment mistake, so the message says exactly what to set (in wrangler.toml `[vars]`).
 */
import { CpsError } from "./errors.js";

export interface CpsConfig {
  /** Lifetime of a stored blob (RFC 8816 §7.5: no longer than the 60 s iat freshness window). */
  ttlSeconds: number;
  /** Live blobs allowed per called number. */
  maxLivePerNumber: number;
  /** Whether the benchmark's bare Durable Object baseline route is mounted. */
  benchBaseline: boolean;
}

function positiveInt(env: Env, name: keyof Env & string, fallback: number, max: number): number {
  const raw = (env as unknown as Record<string, unknown>)[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new CpsError(
      "MISCONFIGURED",
      `Set ${name} to a whole number from 1 to ${max} in wrangler.toml [vars]`,
    );
  }
  return value;
}

const cache = new WeakMap<object, CpsConfig>();

export function readConfig(env: Env): CpsConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const config: CpsConfig = {
    ttlSeconds: positiveInt(env, "PASSPORT_TTL_SECONDS", 60, 86_400),
    maxLivePerNumber: positiveInt(env, "MAX_LIVE_PER_NUMBER", 1000, 1_000_000),
    benchBaseline: env.BENCH_BASELINE === "true",
  };
  cache.set(env, config);
  return config;
}
