/**
 * Hot numbers (HOT_NUMBERS; docs/capacity.md "Hot numbers"): a call centre's single number can receive
 * more than one Durable Object serves (about 1,000 requests/s), so the operator spreads its queue over
 * several objects ("shards"). This module is the pure part: reading the var and choosing the shard of
 * a store. Object names are formed in src/storage/objects.ts.
 */
import { decodeBase64url } from "./base64url.js";
import { type CanonicalTn, canonicalTn } from "./tn.js";

/** Fewest shards a hot number has (1 would be a normal number). */
export const MIN_HOT_SHARDS = 2;
/** Most shards: a retrieval asks every shard, so each one more costs every list an RPC. */
export const MAX_HOT_SHARDS = 16;

/**
 * HOT_NUMBERS: comma-separated `<number>:<shards>`, e.g. `12025550100:4,18005551234:8`; each number
 * canonicalised as the routes do (so two spellings of one number are one entry, and a duplicate is a
 * mistake), shards a whole number from MIN_HOT_SHARDS to MAX_HOT_SHARDS. Empty: no hot number. Throws
 * a plain Error (config.ts makes it MISCONFIGURED naming the var).
 */
export function parseHotNumbers(raw: string): Map<CanonicalTn, number> {
  const hot = new Map<CanonicalTn, number>();
  const entries = raw.split(",").map((e) => e.trim());
  // The messages name entries by position, never by number: they reach the 500 answer's title, and
  // no answer carries a telephone number (docs/design.md invariant 6).
  for (const [i, item] of entries.entries()) {
    if (item === "") continue;
    const parts = item.split(":");
    if (parts.length !== 2) throw new Error(`entry ${i + 1} is not <number>:<shards>`);
    const [number, count] = parts.map((p) => p.trim()) as [string, string];
    let tn: CanonicalTn;
    try {
      tn = canonicalTn(number);
    } catch {
      throw new Error(`entry ${i + 1}: the number is not in E.164 form`);
    }
    const shards = /^[0-9]{1,2}$/.test(count) ? Number(count) : Number.NaN;
    if (!(shards >= MIN_HOT_SHARDS && shards <= MAX_HOT_SHARDS)) {
      throw new Error(
        `entry ${i + 1}: shards must be a whole number from ${MIN_HOT_SHARDS} to ${MAX_HOT_SHARDS}`,
      );
    }
    if (hot.has(tn)) throw new Error(`entry ${i + 1} lists a number already listed`);
    hot.set(tn, shards);
  }
  return hot;
}

/**
 * The shard (0 .. shards - 1) a store to a hot number goes to. With a retry key (a hash of the
 * number, blob and token signature: src/http/storage-token.ts), taken from it, so a retried store
 * reaches the shard that holds its first attempt and is answered with the same id there (the dedupe is
 * per object); without one (untokened local stores), uniformly at random. Either way the stores of
 * many callers spread evenly. The modulo's bias is below 2^-27 for any allowed count.
 */
export function storeShard(shards: number, retryKey?: string): number {
  const bytes =
    retryKey === undefined ? crypto.getRandomValues(new Uint8Array(4)) : decodeBase64url(retryKey);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0) % shards;
}
