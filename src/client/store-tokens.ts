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

/** The parts of `TokenWallet` (src/client/token-wallet.ts) this adapter uses. */
export interface WalletLike {
  readonly size: number;
  refill(count: number): Promise<number>;
  storeHeaders(tn: string, blob: Uint8Array): Promise<Record<string, string>>;
}

/**
 * Adapts an in-memory `TokenWallet` for the AS and the gateway: `prefetch` tops the wallet up in
 * batches of `batch` before the stores of a call when it holds too few, and after each spend a
 * background refill starts once fewer than `lowWater` remain, so calls rarely wait for blinding.
 * @example
 * const tokens = walletTokens(new TokenWallet({ cpsUrl, authorization }), { batch: 20, lowWater: 5 });
 * const as = new AuthenticationService({ credential, discovery, tokens });
 */
export function walletTokens(
  wallet: WalletLike,
  options: { batch?: number; lowWater?: number } = {},
): StoreTokenSource {
  const batch = options.batch ?? 10;
  const lowWater = options.lowWater ?? 0;
  let refilling: Promise<unknown> | undefined;
  const refill = (n: number) => {
    refilling ??= wallet.refill(n).finally(() => {
      refilling = undefined;
    });
    return refilling;
  };
  return {
    async prefetch(_cps, count) {
      if (refilling) await refilling.catch(() => undefined);
      if (wallet.size < count) await refill(Math.max(batch, count - wallet.size));
    },
    async headersForStore(_cps, tn, blob) {
      const headers = await wallet.storeHeaders(tn, blob);
      // Errors of a background refill are dropped here; the next prefetch tries again and reports.
      if (wallet.size < lowWater && !refilling) refill(batch).catch(() => undefined);
      return headers;
    },
  };
}
