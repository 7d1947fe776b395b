/**
 * Typed configuration from the Worker's vars, checked once per isolate. A missing or malformed var is
 * a deployment mistake, so the message says exactly what to set (in wrangler.toml `[vars]`).
 */
import { CpsError } from "./errors.js";
import { type Candidate, parseProvisionedRecords, parseServedPrefixes } from "./stir/discovery.js";
import { type NumberPattern, parseSpcNumberBlocks, type SpcNumberBlocks } from "./stir/number-blocks.js";

export interface CpsConfig {
  /** Lifetime of a stored blob (RFC 8816 §7.5: no longer than the 60 s iat freshness window). */
  ttlSeconds: number;
  /** Live blobs allowed per called number. */
  maxLivePerNumber: number;
  /** Whether the benchmark's bare Durable Object baseline route is mounted. */
  benchBaseline: boolean;
  /** Stores one storage token may pay for in total (docs/tokens.md). */
  tokenMaxUses: number;
  /** Stores one token may pay for under one called number per TTL window. */
  tokenMaxUsesPerNumber: number;
  /** Blind signatures one STIR credential may obtain per UTC day (coarse: counted in KV). */
  tokenDailyQuota: number;
  /** Local development only: stores without token headers are accepted (logged once per isolate). */
  allowUntokenedStores: boolean;
  /** SPC -> number prefixes it speaks for, for key and discovery registration (SPC_NUMBER_BLOCKS). */
  spcNumberBlocks: SpcNumberBlocks;
  /** Provisioned discovery records (DISCOVERY_RECORDS, RFC 8816 §10 closed deployments). */
  discoveryRecords: readonly Candidate[];
  /** Prefixes this CPS serves (SERVED_PREFIXES); `null` = every number. */
  servedPrefixes: readonly NumberPattern[] | null;
  /** max-age of key-directory answers (KEYS_CACHE_SECONDS). */
  keysCacheSeconds: number;
  /** Open digits `GET /keys?prefix=` may leave (KEYS_PREFETCH_MAX_OPEN_DIGITS). */
  keysPrefetchMaxOpenDigits: number;
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

/** Parses a JSON or list var with `parse`; any failure is MISCONFIGURED naming the var. */
function structured<T>(env: Env, name: keyof Env & string, fallback: string, parse: (raw: string) => T): T {
  const raw = (env as unknown as Record<string, unknown>)[name];
  try {
    return parse(typeof raw === "string" ? raw : fallback);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : "invalid";
    throw new CpsError("MISCONFIGURED", `Fix ${name} in wrangler.toml [vars]: ${why}`);
  }
}

const cache = new WeakMap<object, CpsConfig>();

export function readConfig(env: Env): CpsConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const config: CpsConfig = {
    ttlSeconds: positiveInt(env, "PASSPORT_TTL_SECONDS", 60, 86_400),
    maxLivePerNumber: positiveInt(env, "MAX_LIVE_PER_NUMBER", 1000, 1_000_000),
    benchBaseline: env.BENCH_BASELINE === "true",
    spcNumberBlocks: structured(env, "SPC_NUMBER_BLOCKS", "{}", parseSpcNumberBlocks),
    discoveryRecords: structured(env, "DISCOVERY_RECORDS", "[]", parseProvisionedRecords),
    servedPrefixes: structured(env, "SERVED_PREFIXES", "", parseServedPrefixes),
    keysCacheSeconds: positiveInt(env, "KEYS_CACHE_SECONDS", 60, 86_400),
    keysPrefetchMaxOpenDigits: positiveInt(env, "KEYS_PREFETCH_MAX_OPEN_DIGITS", 4, 6),
    tokenMaxUses: positiveInt(env, "TOKEN_MAX_USES", 10, 1_000_000),
    tokenMaxUsesPerNumber: positiveInt(env, "TOKEN_MAX_USES_PER_NUMBER", 2, 1_000_000),
    tokenDailyQuota: positiveInt(env, "TOKEN_DAILY_QUOTA", 1000, 100_000_000),
    allowUntokenedStores: env.ALLOW_UNTOKENED_STORES === "true",
  };
  cache.set(env, config);
  return config;
}
