/** The AS/gateway view of a token wallet (src/client/store-tokens.ts): prefetch in batches, low-water refill. */
import { describe, expect, it } from "vitest";
import { type WalletLike, walletTokens } from "../../src/client/store-tokens.js";
import { TokenWallet } from "../../src/client/token-wallet.js";
import { canonicalTn } from "../../src/stir/tn.js";

function fakeWallet(start: number) {
  const calls: number[] = [];
  const w = {
    held: start,
    get size() {
      return w.held;
    },
    async refill(n: number) {
      calls.push(n);
      w.held += n;
      return n;
    },
    async storeHeaders() {
      if (w.held === 0) throw new Error("empty");
      w.held--;
      return { "CPS-Token": "t", "CPS-Token-Signature": "s" };
    },
  };
  return { w, calls };
}

const TN = canonicalTn("22225552222");

describe("walletTokens", () => {
  it("the real TokenWallet fits the interface", () => {
    const wallet: WalletLike = new TokenWallet({ cpsUrl: "https://cps.test", authorization: async () => "" });
    expect(wallet.size).toBe(0);
  });

  it("prefetch refills in batches only when the wallet holds fewer than the stores need", async () => {
    const { w, calls } = fakeWallet(1);
    const tokens = walletTokens(w, { batch: 10 });
    await tokens.prefetch?.("https://cps.test", 1);
    expect(calls).toEqual([]);
    await tokens.prefetch?.("https://cps.test", 3);
    expect(calls).toEqual([10]);
    expect(w.held).toBe(11);
  });

  it("spending below the low-water mark starts one background refill", async () => {
    const { w, calls } = fakeWallet(3);
    const tokens = walletTokens(w, { batch: 5, lowWater: 3 });
    const headers = await tokens.headersForStore("https://cps.test", TN, new Uint8Array(1));
    expect(headers["CPS-Token"]).toBe("t");
    await tokens.headersForStore("https://cps.test", TN, new Uint8Array(1));
    await tokens.prefetch?.("https://cps.test", 1); // waits for the refill in flight
    expect(calls).toEqual([5]);
    expect(w.held).toBe(6);
  });
});
