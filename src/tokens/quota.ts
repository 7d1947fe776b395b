/**
 * The per-credential issuance quota for storage tokens (docs/tokens.md "Issuance quota",
 * docs/storage-schema.md "TokenLedger").
 *
 * Who: the quota belongs to the credential *holder*, `quotaHolder`: a hash of the leaf certificate's
 * subject and its TNAuthList (normalised), not of the presented chain. Anything a client can vary
 * without its CA (the certificates after the leaf, their order, a self-made CA appended) leaves the
 * holder unchanged, and so does a renewed leaf (new key, same subject and scope).
 *
 * How much: TOKEN_DAILY_QUOTA tokens that can be spent within any one day. A token stays spendable
 * until its issuer key's `notAfter`, so a day-stamped counter could be saved up over several days and
 * spent at once. Instead each token counts against its holder from issuance until its key's
 * `notAfter` + one day + one TTL (`countsUntil`): then the tokens that can pay for stores whose blobs
 * are live within any one day are all counted together at the last issuance among them, and are at
 * most TOKEN_DAILY_QUOTA (proof and figures in docs/tokens.md). Keys no longer configured (revoked)
 * do not count: their tokens pay for nothing.
 *
 * Where: exact, in a TokenLedger Durable Object per holder (`quota:{holder}`), not in KV: KV has no
 * compare-and-set, and concurrent batches overshooting a KV count would void the bound. Issuance only;
 * the store path never touches it.
 */

import { CpsError } from "../errors.js";
import { hash128Hex } from "../stir/authority.js";
import type { VerifiedCredentialToken } from "../stir/credential-token.js";
import type { TnAuthEntry } from "../stir/tnauthlist.js";
import { quotaLedger } from "../storage/objects.js";
import type { IssuerKey, IssuerKeySet } from "./issuer-keys.js";

/** How long past its key's notAfter a token still counts: one day, so no day sees more than the quota. */
export const QUOTA_TAIL_MS = 86_400_000;

function entryText(entry: TnAuthEntry): string {
  switch (entry.type) {
    case "spc":
      return `spc:${entry.spc.toUpperCase()}`;
    case "one":
      return `one:${entry.tn}`;
    case "range":
      return `range:${entry.start}+${entry.count}`;
  }
}

/**
 * The quota holder of a credential: 32 hex characters (128 bits) of SHA-256 over
 * `"stir-oob token quota v1" || 0x00 || subject || 0x00 || TNAuthList`, the TNAuthList as its entries
 * in a fixed text form, deduplicated, sorted and joined by newlines (order and repeats do not matter).
 */
export async function quotaHolder(credential: VerifiedCredentialToken): Promise<string> {
  const scope = [...new Set(credential.tnAuthList.map(entryText))].sort().join("\n");
  return hash128Hex(`stir-oob token quota v1\0${credential.certificate.leaf.subject}\0${scope}`);
}

function quotaObject(env: Env, holder: string) {
  return quotaLedger(env, holder);
}

/**
 * Charges `n` tokens of issuer key `key` to `holder`, or throws 429 ISSUANCE_QUOTA (with Retry-After:
 * when enough of the holder's counted tokens stop counting) when that would pass `limit`.
 */
export async function chargeIssuanceQuota(
  env: Env,
  holder: string,
  key: IssuerKey,
  keys: IssuerKeySet,
  n: number,
  limit: number,
  ttlSeconds: number,
): Promise<void> {
  const result = await quotaObject(env, holder).chargeQuota(
    key.id,
    key.notAfter + QUOTA_TAIL_MS + ttlSeconds * 1000,
    keys.keys.map((k) => k.id),
    n,
    limit,
  );
  if (!result.ok) {
    throw new CpsError("ISSUANCE_QUOTA", "Token issuance quota reached for this credential", {
      retryAfter: result.retryAfterSeconds,
    });
  }
}
