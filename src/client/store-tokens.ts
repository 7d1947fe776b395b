/**
 * What the AS and the gateway need from a storage-token wallet (RFC 8816 §7.5, docs/tokens.md): one
 * token spent per store, turned into the store request's headers, and a way to top up ahead of need.
 * `src/client/token-wallet.ts` (issue 4) implements it; `untokenedStores` is for a CPS that runs with
 * the local-development switch ALLOW_UNTOKENED_STORES.
 */
import type { CanonicalTn } from "../stir/tn.js";

export interface StoreTokenSource {
  /** Request headers that pay for one store of `blob` under `tn` at the CPS `cps` (spends one token). */
  headersForStore(cps: string, tn: CanonicalTn, blob: Uint8Array): Promise<Record<string, string>>;
  /** Makes sure at least `count` stores at `cps` can be paid without a round trip (fetches a batch). */
  prefetch?(cps: string, count: number): Promise<void>;
}

/**
 * Sends stores without token headers: only for a CPS with ALLOW_UNTOKENED_STORES=true (local demos).
 * @example
 * const as = new AuthenticationService({ credential, discovery, tokens: untokenedStores });
 */
export const untokenedStores: StoreTokenSource = {
  headersForStore: async () => ({}),
};
