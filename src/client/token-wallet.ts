/**
 * Client-side storage-token wallet (RFC 8816 §7.5; protocol in docs/tokens.md): fetches the CPS's
 * issuer keys, blinds a batch of fresh K_temp token messages, has the CPS blind-sign them with a STIR
 * credential, finalizes and holds the tokens, and spends one per store. Runs on Node >= 20 and in
 * Workers (WebCrypto + fetch only). Client blinding takes the library's big-number path (~35
 * tokens/s on Node), so fetch tokens ahead of calls, not during one.
 *
 * Unlinkability: issuance is authenticated, stores are anonymous. By default each token pays for one
 * store (`usesPerToken: 1`), so two stores cannot be linked to each other by their token either.
 *
 * Its HTTP goes through `CpsClient` (timeouts, Retry-After, problem+json -> `CpsError`), as stores do.
 */
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import {
  blindTokenRequest,
  encodeStorageToken,
  exportTempKey,
  finalizeToken,
  importIssuerPublicKey,
  importTempKey,
  parseStorageToken,
  type StorageToken,
  signStore,
  type TempKeyAlgorithm,
  TOKEN_HEADER,
  TOKEN_SIGNATURE_HEADER,
} from "../stir/storage-token.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { CpsClient, type IssuerKeysDocument } from "./cps-client.js";
import { StirClientError } from "./errors.js";
import type { RelayTransportOptions } from "./relay.js";

export type { IssuerKeysDocument } from "./cps-client.js";

export interface TokenWalletOptions extends RelayTransportOptions {
  /** Base URL of the CPS, e.g. `https://cps.example.com`. */
  cpsUrl: string;
  /**
   * A fresh `Authorization` header value (`Bearer <STIR credential token>`, action `tokens:issue`)
   * per call: credential tokens are single use. Without it the wallet only spends tokens it was
   * given (`importTokens`), and `refill` throws `NO_CREDENTIAL`.
   */
  authorization?: () => Promise<string>;
  /** Defaults to the global fetch. */
  fetch?: (request: Request) => Promise<Response>;
  /** K_temp algorithm (default Ed25519). */
  tempKeyAlgorithm?: TempKeyAlgorithm;
  /** Stores paid with one token before it is dropped (default 1; at most the CPS's maxUses). */
  usesPerToken?: number;
  /** Per-request timeout, milliseconds (default 10,000, as `CpsClient`). */
  timeoutMs?: number;
  /** Times a token request is sent again after a lost answer (default 2, as `CpsClient.issueRetries`). */
  retries?: number;
  /** Wait before the first retry, doubled for each next one, milliseconds (default 100). */
  retryDelayMs?: number;
}

/**
 * A token taken out of a wallet, as JSON-safe data: to save it to disk (the CLI's wallet file) or
 * hand it to another process. Holds K_temp's private key: keep it as secret as the wallet itself.
 */
export interface ExportedToken {
  /** The `CPS-Token` header value. */
  token: string;
  /** K_temp private key, PKCS#8, base64url. */
  kTemp: string;
  alg: TempKeyAlgorithm;
  /** The issuer key's notAfter, ms since the epoch: the token is void after it. */
  notAfter: number;
  usesLeft: number;
}

interface HeldToken {
  token: StorageToken;
  privateKey: CryptoKey;
  notAfter: number;
  usesLeft: number;
}

/** The headers a store carries: `CPS-Token` and `CPS-Token-Signature`. */
export type StoreTokenHeaders = Record<typeof TOKEN_HEADER | typeof TOKEN_SIGNATURE_HEADER, string>;

/**
 * @example
 * const wallet = new TokenWallet({ cpsUrl, authorization: async () => `Bearer ${await issueCredentialToken(...)}` });
 * await wallet.refill(10);
 * await fetch(`${cpsUrl}/cps/${tn}/ppts`, {
 *   method: "POST",
 *   headers: { "Content-Type": "application/passport", ...(await wallet.storeHeaders(tn, blob)) },
 *   body: encodeEnvelope(blob),
 * });
 */
export class TokenWallet {
  private readonly tokens: HeldToken[] = [];
  private readonly cps: CpsClient;

  constructor(private readonly options: TokenWalletOptions) {
    const own = options.fetch;
    this.cps = new CpsClient({
      baseUrl: options.cpsUrl,
      // The option takes one Request (as service bindings and test doubles are often written).
      ...(own ? { fetch: (input, init) => own(new Request(input, init)) } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.retries !== undefined ? { issueRetries: options.retries } : {}),
      ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
      ...(options.relay ? { relay: options.relay } : {}),
      ...(options.requireRelay ? { requireRelay: true } : {}),
    });
  }

  /** Tokens held that are still inside their issuer key's validity window. */
  get size(): number {
    this.dropExpired();
    return this.tokens.length;
  }

  /** The CPS's published issuer keys and spend limits. */
  fetchKeys(): Promise<IssuerKeysDocument> {
    return this.cps.tokenKeys();
  }

  /**
   * Obtains `count` new tokens for the current issuer key, in batches; returns how many it added.
   * `onBatch` runs after each batch (with the running total), e.g. to save or show progress.
   * Throws `StirClientError("NO_CREDENTIAL")` without `authorization`, before any request.
   */
  async refill(count: number, onBatch?: (added: number) => Promise<void> | void): Promise<number> {
    const authorization = this.options.authorization;
    if (!authorization) {
      throw new StirClientError("NO_CREDENTIAL", "No credential to obtain storage tokens with");
    }
    const doc = await this.fetchKeys();
    const current = doc.keys.find((k) => k.status === "current");
    if (!current) throw new CpsError("TOKEN_UNKNOWN_KEY", "The CPS publishes no current issuer key");
    const publicKey = await importIssuerPublicKey(decodeBase64url(current.publicKey));
    const notAfter = Date.parse(current.notAfter);
    const usesLeft = Math.max(1, Math.min(this.options.usesPerToken ?? 1, doc.limits.maxUses));
    let added = 0;
    while (added < count) {
      const n = Math.min(count - added, doc.limits.batchMax);
      const pending = await Promise.all(
        Array.from({ length: n }, () =>
          blindTokenRequest(publicKey, current.id, this.options.tempKeyAlgorithm),
        ),
      );
      const blindSignatures = await this.cps.issueTokens(
        current.id,
        pending.map((p) => encodeBase64url(p.blindedMessage)),
        authorization,
      );
      for (const [i, p] of pending.entries()) {
        const token = await finalizeToken(publicKey, p, decodeBase64url(blindSignatures[i] ?? ""));
        this.tokens.push({ token, privateKey: p.kTempPrivateKey, notAfter, usesLeft });
      }
      added += n;
      await onBatch?.(added);
    }
    return added;
  }

  /** Every unexpired token held, as data; the wallet keeps them too (use `clear` to hand them over). */
  async exportTokens(): Promise<ExportedToken[]> {
    this.dropExpired();
    return Promise.all(
      this.tokens.map(async (t) => ({
        token: encodeStorageToken(t.token),
        kTemp: encodeBase64url(await exportTempKey(t.privateKey)),
        alg: t.privateKey.algorithm.name === "Ed25519" ? "Ed25519" : "P-256",
        notAfter: t.notAfter,
        usesLeft: t.usesLeft,
      })),
    );
  }

  /** Adds exported tokens (spent or expired ones are skipped); throws TOKEN_MALFORMED on bad data. */
  async importTokens(tokens: readonly ExportedToken[]): Promise<void> {
    const now = Date.now();
    for (const t of tokens) {
      if (!(t.notAfter > now && t.usesLeft > 0)) continue;
      const privateKey = await importTempKey(decodeBase64url(t.kTemp), t.alg).catch((cause: unknown) => {
        throw new CpsError("TOKEN_MALFORMED", "A saved token's K_temp key does not import", { cause });
      });
      this.tokens.push({
        token: parseStorageToken(t.token),
        privateKey,
        notAfter: t.notAfter,
        usesLeft: t.usesLeft,
      });
    }
  }

  /** Forgets every token held. */
  clear(): void {
    this.tokens.length = 0;
  }

  /**
   * Spends one token use on storing `blob` under `tn`: the two headers of `POST /cps/{tn}/ppts`.
   * Throws `StirClientError("WALLET_EMPTY")` when no unspent token is held (call `refill`).
   */
  async storeHeaders(tn: string, blob: Uint8Array): Promise<StoreTokenHeaders> {
    this.dropExpired();
    const held = this.tokens[0];
    if (!held) throw new StirClientError("WALLET_EMPTY", "The token wallet is empty: refill it");
    held.usesLeft -= 1;
    if (held.usesLeft <= 0) this.tokens.shift();
    const number: CanonicalTn = canonicalTn(tn);
    const signature = await signStore(held.privateKey, number, blob);
    return {
      [TOKEN_HEADER]: encodeStorageToken(held.token),
      [TOKEN_SIGNATURE_HEADER]: encodeBase64url(signature),
    } as StoreTokenHeaders;
  }

  private dropExpired(now = Date.now()): void {
    for (let i = this.tokens.length - 1; i >= 0; i--) {
      if ((this.tokens[i]?.notAfter ?? 0) <= now) this.tokens.splice(i, 1);
    }
  }
}
