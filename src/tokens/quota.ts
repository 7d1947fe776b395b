/**
 * Per-credential daily issuance quota for storage tokens, in Workers KV (docs/storage-schema.md,
 * `quota:` keys). COARSE on purpose: KV is eventually consistent and has no compare-and-set, so
 * concurrent requests (or requests at different edge locations) can each read a stale count and
 * together overshoot the quota. That is acceptable here: issuance is authenticated, so overshoot is
 * bounded and attributable; exact counting is only needed (and done, in a DO) for token spends.
 */
import { CpsError } from "../errors.js";

/** KV records live two days: a day's counter must outlive the day, and KV's minimum TTL is 60 s. */
const QUOTA_TTL_SECONDS = 2 * 86_400;

export interface QuotaRecord {
  /** Blind signatures issued to this credential on `day` (UTC). */
  count: number;
}

export function quotaKey(fingerprint: string, now = Date.now()): string {
  const day = new Date(now).toISOString().slice(0, 10);
  return `quota:${day}:${fingerprint}`;
}

/** Adds `n` to today's count for `fingerprint`, or throws 429 ISSUANCE_QUOTA when it would pass `limit`. */
export async function chargeIssuanceQuota(
  kv: KVNamespace,
  fingerprint: string,
  n: number,
  limit: number,
  now = Date.now(),
): Promise<void> {
  const key = quotaKey(fingerprint, now);
  const record = await kv.get<QuotaRecord>(key, "json");
  const count = typeof record?.count === "number" ? record.count : 0;
  if (count + n > limit) {
    const midnight = Date.UTC(
      new Date(now).getUTCFullYear(),
      new Date(now).getUTCMonth(),
      new Date(now).getUTCDate() + 1,
    );
    throw new CpsError("ISSUANCE_QUOTA", "Daily token issuance quota reached for this credential", {
      retryAfter: Math.max(1, (midnight - now) / 1000),
    });
  }
  const value: QuotaRecord = { count: count + n };
  await kv.put(key, JSON.stringify(value), { expirationTtl: QUOTA_TTL_SECONDS });
}
