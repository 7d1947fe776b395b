/**
 * The CLI's persistent storage-token wallet (RFC 8816 §7.5, docs/tokens.md): `tokens fetch` fills it
 * ahead of calls, `place` and `gateway store` spend one token per store, across processes. Tokens and
 * their K_temp private keys live in `<home>/wallet/<cps>.json` (mode 0600). A thin file layer over the
 * client's TokenWallet, whose exported tokens are what the file holds.
 */
import { join } from "node:path";
import { StirClientError } from "../client/errors.js";
import type { RelayTransportOptions } from "../client/relay.js";
import type { StoreTokenSource } from "../client/store-tokens.js";
import { type ExportedToken, TokenWallet } from "../client/token-wallet.js";
import type { CanonicalTn } from "../stir/tn.js";
import { readJson, writeFileSafe } from "./common.js";

interface WalletFile {
  cps: string;
  tokens: ExportedToken[];
}

/** `<home>/wallet/<host>_<port>.json` for a CPS base URL. */
export function walletPath(home: string, cps: string): string {
  const u = new URL(cps);
  return join(
    home,
    "wallet",
    `${u.hostname.replace(/[^A-Za-z0-9.-]/g, "_")}_${u.port || (u.protocol === "https:" ? "443" : "80")}.json`,
  );
}

/**
 * A file-backed wallet for one CPS.
 * @example
 * const wallet = new FileWallet(home, cps, () => bearer(cred, cps, "tokens:issue"));
 * await wallet.refill(10, (done, total) => bar.update(done, total));
 */
export class FileWallet implements StoreTokenSource {
  constructor(
    readonly home: string,
    readonly cps: string,
    readonly authorization: (() => Promise<string>) | undefined,
    /** `--relay` / `--require-relay`: token fetches go through the relay too. */
    readonly transport: RelayTransportOptions = {},
    readonly batch = 10,
  ) {}

  async #load(): Promise<WalletFile> {
    const file = await readJson<WalletFile>(walletPath(this.home, this.cps), { cps: this.cps, tokens: [] });
    const now = Date.now();
    return { cps: this.cps, tokens: (file.tokens ?? []).filter((t) => t.notAfter > now && t.usesLeft > 0) };
  }

  async #save(file: WalletFile): Promise<void> {
    await writeFileSafe(walletPath(this.home, this.cps), `${JSON.stringify(file)}\n`, true);
  }

  /** Unspent tokens held. */
  async size(): Promise<number> {
    return (await this.#load()).tokens.length;
  }

  /**
   * Obtains `count` tokens from the CPS in batches (blinded, so the CPS cannot link them to stores),
   * one store per token so two stores cannot be linked by their token. Each batch is saved as it
   * arrives, so an interrupted refill keeps what it got. Without a credential: `NO_CREDENTIAL`.
   */
  async refill(count: number, onProgress?: (done: number, total: number) => void): Promise<number> {
    const wallet = new TokenWallet({
      cpsUrl: this.cps,
      ...(this.authorization ? { authorization: this.authorization } : {}),
      usesPerToken: 1,
      ...this.transport,
    });
    onProgress?.(0, count);
    return wallet.refill(count, async (added) => {
      const file = await this.#load();
      file.tokens.push(...(await wallet.exportTokens()));
      wallet.clear();
      await this.#save(file);
      onProgress?.(added, count);
    });
  }

  async prefetch(_cps: string, count: number): Promise<void> {
    const have = await this.size();
    if (have >= count || !this.authorization) return;
    await this.refill(Math.max(this.batch, count - have));
  }

  /** Spends one token: written to disk as spent before its headers are returned. */
  async headersForStore(_cps: string, tn: CanonicalTn, blob: Uint8Array): Promise<Record<string, string>> {
    const file = await this.#load();
    const held = file.tokens[0];
    if (!held) {
      throw new StirClientError("WALLET_EMPTY", "The token wallet is empty: run `stir-oob tokens fetch`");
    }
    held.usesLeft -= 1;
    if (held.usesLeft <= 0) file.tokens.shift();
    await this.#save(file);
    const one = new TokenWallet({ cpsUrl: this.cps });
    await one.importTokens([{ ...held, usesLeft: 1 }]);
    return one.storeHeaders(tn, blob);
  }
}
